"""The endpoint's shared configuration, and the tool that provisions it on AWS."""
