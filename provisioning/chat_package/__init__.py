"""Files shipped in the chat component's model package (see provisioning/packaging.py); model.py runs in LMI."""
