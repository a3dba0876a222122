"""Benchmark runner: `python -m bench.run [NAME ...]` (through `make bench`, which prepares a
throw-away database). Each benchmark module defines `run(size) -> (metrics, goal)`; the runner
writes bench/results/NAME.json and prints it."""

from __future__ import annotations

import datetime
import importlib
import json
import os
import platform
import sys
from pathlib import Path

BENCHMARKS = [
    "crypto_audit",
    "contacts_import",
    "consent_gate",
    "segments",
    "delivery",
    "delivery_peers",
    "transactional_latency",
    "disposal",
    "journeys",
    "claims",
    "epochs",
]
RESULTS = Path(__file__).parent / "results"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def main(names: list[str]) -> int:
    import django

    django.setup()
    size = os.environ.get("SIZE", "full")
    RESULTS.mkdir(exist_ok=True)
    for name in names or BENCHMARKS:
        if name not in BENCHMARKS:
            print(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
            return 2
        module = importlib.import_module(f"bench.{name}")
        metrics, goal = module.run(size)
        result = {
            "name": name,
            "size": size,
            "metrics": metrics,
            "goal": goal,
            "machine": machine(),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
