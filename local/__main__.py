"""`python -m local up`: run the whole product locally in the foreground (what `make up` does)."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from local.stack import LocalStack, PortInUseError, Ports
from provisioning.config import ConfigError, load_config


def _up(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}")
        return 2
    ports = Ports(moto=args.moto_port, endpoint=args.endpoint_port, api=args.api_port, ui=args.ui_port)
    stack = LocalStack(config=config, host=args.host, ports=ports, with_ui=not args.no_ui)
    try:
        stack.start(on_step=lambda step: print(f"starting {step} ...", flush=True))
    except PortInUseError as exc:
        print(f"error: {exc}")
        return 2
    try:
        print("\nThe local stack is up (Ctrl-C stops it):")
        print(f"  UI                       {stack.urls.get('ui', '(not started)')}")
        print(f"  REST API                 {stack.urls['api']}/v1/conversations   (Authorization: Bearer local-<user>)")
        print(f"  SageMaker endpoint       {stack.urls['endpoint']}  (status: {stack.urls['endpoint']}/status)")
        print(f"  moto (DynamoDB, S3, SQS) {stack.urls['moto']}")
        print(
            f"\n  try: curl -s -X POST {stack.urls['api']}/v1/conversations -H 'Authorization: Bearer local-alice'"
            " -H 'Content-Type: application/json' -d '{\"title\": \"Hello\"}'"
        )
        print(
            f"  transcripts: drop files into s3://{stack.bucket_name}/incoming/"
            " (or: python -m local.transcripts upload DIR)"
        )
        stopped = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stopped.set())
        stopped.wait()
        print("stopping ...")
    finally:
        stack.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the local stack in the foreground")
    up.add_argument(
        "--config", type=Path, default=None, help="endpoint configuration (default provisioning/endpoint.yaml)"
    )
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--moto-port", type=int, default=5000)
    up.add_argument("--endpoint-port", type=int, default=8080)
    up.add_argument("--api-port", type=int, default=3000)
    up.add_argument("--ui-port", type=int, default=8501)
    up.add_argument("--no-ui", action="store_true", help="do not start the Streamlit UI")
    up.set_defaults(run=_up)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
