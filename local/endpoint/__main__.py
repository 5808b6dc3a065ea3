"""Run the local endpoint alone in the foreground: `python -m local.endpoint [--config PATH] [--host] [--port]`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from local.endpoint.placement import PlacementError
from local.endpoint.server import start_endpoint
from provisioning.config import ConfigError, load_config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m local.endpoint", description=__doc__)
    parser.add_argument("--config", help="endpoint configuration (default: provisioning/endpoint.yaml)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
        running = start_endpoint(config, args.host, args.port)
    except (ConfigError, PlacementError) as exc:
        sys.exit(f"error: {exc}")
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    with running:
        print(f"endpoint {config.endpoint.name} serving at {running.url}", flush=True)
        for name, component in running.endpoint.components.items():
            print(f"  component {name}: {component.copy_count} copies, backend {component.backend_label}", flush=True)
        print(f"  status: {running.url}/status  (Ctrl-C stops)", flush=True)
        stopping.wait()


if __name__ == "__main__":
    main()
