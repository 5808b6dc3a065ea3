#!/bin/sh
# AWS_LAMBDA_EXEC_WRAPPER of the streaming function: run our Runtime API loop (chatbot.response_stream), which can
# stream responses, instead of the Python runtime's own loop, which cannot. The runtime's arguments are not needed.
export PYTHONPATH="/opt/python:${LAMBDA_TASK_ROOT}${PYTHONPATH:+:$PYTHONPATH}"
exec python3 -m chatbot.response_stream
