"""Invoke one function of template.yaml with one event, in its own execution environment, against the running
local stack (`make up`): what `sam local invoke -e` does, without Docker.

    python -m local.invoke ConversationsFunction events/conversations/list-conversations.json
    python -m local.invoke BatchSummarizeFunction events/transcripts/sqs-s3-notification.json

Prints the function's response as JSON (its logs go to stderr); exits 1 if the invocation failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from local.aws import moto_environment
from local.lambda_runtime import FunctionDefinition, FunctionRuntime, InvocationError
from local.stack import Ports, endpoint_parameters
from local.template import DEFAULT_TEMPLATE_PATH, Template
from provisioning.config import load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.invoke", description=__doc__.splitlines()[0])
    parser.add_argument("function", help="logical id in template.yaml, e.g. ConversationsFunction")
    parser.add_argument("event", type=Path, help="a JSON event file, e.g. from events/")
    parser.add_argument("--moto-url", default=f"http://127.0.0.1:{Ports.moto}")
    parser.add_argument("--endpoint-url", default=f"http://127.0.0.1:{Ports.endpoint}")
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE_PATH)
    args = parser.parse_args(argv)
    template = Template(args.template, endpoint_parameters(load_config()))
    platform = {**moto_environment(args.moto_url), "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": args.endpoint_url}
    runtime = FunctionRuntime(FunctionDefinition.from_template(template, args.function), platform)
    try:
        result = runtime.invoke(json.loads(args.event.read_text(encoding="utf-8")))
    except InvocationError as exc:
        print(json.dumps({"errorType": exc.error_type, "errorMessage": exc.error_message}, indent=2))
        return 1
    finally:
        runtime.stop()
    print(json.dumps(result.response, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
