"""What the chaos runs share: the seeded randomness a failing run can be replayed with, a broker
database of their own, and the report (printed, and written to artifacts/chaos/). The workers, their
environment and the campaign they send come from tests/outages/real_workers.py."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import redis
from django.conf import settings

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "chaos"


def chaos_random() -> tuple[int, random.Random]:
    """The run's seed (CHAOS_SEED replays a run) and a generator seeded with it."""
    seed = int(os.environ.get("CHAOS_SEED", random.SystemRandom().randrange(10**6)))
    return seed, random.Random(seed)


def private_broker(variable: str, default: str) -> str:
    """The URL of the Redis database named by `variable` (the run's alone), emptied."""
    url = settings.REDIS_URL.rsplit("/", 1)[0] + "/" + os.environ.get(variable, default)
    redis.Redis.from_url(url).flushdb()
    return url


def report_write(name: str, report: dict, *, label: str) -> None:
    """Write the report to artifacts/chaos/<name>.json and print it after `label`."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{label}:", json.dumps(report))
