"""`make bench`: run every benchmark; each prints its figures against a baseline measured in the same run."""

from __future__ import annotations

import argparse
import importlib
import os

BENCHMARKS = {
    "endpoint": "bench.endpoint",  # local endpoint: batching, HTTP overhead, routing
    "engines": "bench.engines",  # vLLM and the HF toolkit vs the in-process backends, time to first token
    "api": "bench.api",  # conversations API: read units per turn, overhead, cold import
    "streaming": "bench.streaming",  # streamed answers: time to first delta vs full answer, 1 and 8 clients
    "transcripts": "bench.transcripts",  # batch pipeline: transcripts per minute, peak memory
    "parsing": "bench.parsing",  # transcript parsers: MB/s on the largest accepted file vs json.loads
    "hostile": "bench.hostile",  # hostile-file batch: corpus size, outcome counts, reconciliation, time per file
    "call_context": "bench.call_context",  # ask about a call: context build per question, tokens vs transcript
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks to run: {', '.join(BENCHMARKS)} (default: all)"
    )
    names = parser.parse_args(argv).names or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # tables only: no loading bars of the smoke models
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        importlib.import_module(BENCHMARKS[name]).main()


if __name__ == "__main__":
    main()
