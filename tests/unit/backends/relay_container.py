"""A container for the relay tests: it answers what the request asks for, so the relay is seen exactly.

`{"status": N, "chunks": ["a", "b"], "delay_s": 0.2}` answers status N with the chunks streamed, waiting
delay_s between them; without `chunks` it answers the request back with the headers it received.
Run as `python -m relay_container --port P --model-dir D` with this folder on PYTHONPATH.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping

from local.containers.server import ContainerResponse, container_arguments, serve


def _answer(body: bytes, headers: Mapping[str, str]) -> ContainerResponse:
    request = json.loads(body)
    chunks = [chunk.encode() for chunk in request.get("chunks", [])]
    if "chunks" not in request:
        echo = {**request, "received_headers": {name.lower(): value for name, value in headers.items()}}
        return ContainerResponse(request.get("status", 200), "application/json", json.dumps(echo).encode())

    def stream() -> Iterator[bytes]:
        for chunk in chunks:
            yield chunk
            time.sleep(request.get("delay_s", 0))

    return ContainerResponse(request.get("status", 200), "application/jsonlines", stream())


if __name__ == "__main__":
    arguments = container_arguments("relay test container").parse_args()
    serve(lambda: _answer, arguments.port, arguments.host)
