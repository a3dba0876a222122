"""delivery_peers: the engine next to django-post-office, same sink, same message shape, same run.

Three interleaved rounds (BENCH_PEERS_ROUNDS) of: the engine (as bench/delivery.py runs it: launch,
claim, gate, render, DKIM, verified STARTTLS, outcome rows), post-office with its default settings,
post-office tuned (bench/peers/post_office_run.py says what each does). Every sender verifies the
sink's certificate (test CA, host name "localhost") over STARTTLS; the sink offers PIPELINING as
Postfix does (post-office's smtplib does not use it).

The peer is installed by this benchmark with pip from PyPI into its own virtual environment under
$TMPDIR/healthmail-bench-peers (BENCH_PEERS_DIR; kept between runs, PEERS_REQUIREMENTS changes make a
new one), outside the repository; none of its code enters the project. It keeps its tables in a
schema of its own in the benchmark's database.

ratio_to_post_office (the goal, >= 2.0): the median of the per-round ratios engine / post-office with
its default settings; ratio_to_post_office_tuned beside it. CPU per message of each sender (the
peer's processes are children of this one: getrusage), of the sink and of PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.delivery import SIZES, WORKERS, Meter, engine_run, median, server_pids, world

ROUNDS = int(os.environ.get("BENCH_PEERS_ROUNDS", "3"))
PEERS_REQUIREMENTS = ["django-post-office==3.12.0", "django>=5.2,<5.3", "psycopg[binary]>=3.2,<4"]
# Outside the repository, so nothing that walks the project's files (linters, the settings registry
# test) meets the peer's code.
PEERS = Path(os.environ.get("BENCH_PEERS_DIR", Path(tempfile.gettempdir()) / "healthmail-bench-peers"))
RUNNER = Path(__file__).parent / "peers" / "post_office_run.py"
SCHEMA = "peer_post_office"
SINK_HOST = "localhost"


def peer_python() -> str:
    """The peer's virtual environment (created and filled with pip on first use)."""
    tag = hashlib.sha256("\n".join(PEERS_REQUIREMENTS).encode()).hexdigest()[:12]
    environment = PEERS / f"post-office-{tag}"
    python = environment / "bin" / "python"
    if not (environment / ".installed").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(environment)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEERS_REQUIREMENTS], check=True)
        (environment / ".installed").write_text("\n".join(PEERS_REQUIREMENTS) + "\n")
    return str(python)


def peer_run(python: str, sink, *, config: str, count: int, migrate: bool = False) -> dict:
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "SSL_CERT_FILE": sink.ca_file,  # smtplib's default context then trusts the test CA (only)
    }
    command = [
        python, str(RUNNER), "--config", config, "--count", str(count), "--processes", str(WORKERS),
        "--schema", SCHEMA, "--host", SINK_HOST, "--port", str(sink.port),
        *(["--migrate"] if migrate else []),
    ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"post-office ({config}) failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["cpu_seconds"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result


def schema_create() -> None:
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")


def run(size: str):
    from tests.delivery.sink import SinkProcess

    count = SIZES.get(size, SIZES["full"])
    python = peer_python()
    directory = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    sink = SinkProcess(directory, hostname=SINK_HOST, pipelining=True)
    rounds = []
    try:
        schema_create()
        peer_run(python, sink, config="default", count=0, migrate=True)
        tenant, sender, contact_ids = world(count)
        meter = Meter(sink, server_pids())
        for _ in range(ROUNDS):
            row = {}
            received = len(sink.records())
            engine, cpu = meter.measure(lambda: engine_run(tenant, sender, contact_ids, sink), count)
            assert engine["states"].get("delivered_tls", 0) == count, engine["states"]
            assert engine["delivered_once"] == count
            row["engine"] = {
                "messages_per_second": round(count / engine["seconds"], 1),
                "cpu_ms_per_message": {"workers": round(1000 * engine["cpu_seconds"] / count, 3), **cpu},
            }
            for config in ("default", "tuned"):
                received = len(sink.records())
                peer, cpu = meter.measure(
                    lambda c=config: peer_run(python, sink, config=c, count=count), count
                )
                assert peer["sent"] == count, peer
                assert len(sink.records()) - received == count, peer
                row[f"post_office_{config}"] = {
                    "messages_per_second": round(count / peer["seconds"], 1),
                    "enqueue_seconds": round(peer["enqueue_seconds"], 2),
                    "cpu_ms_per_message": {"peer": round(1000 * peer["cpu_seconds"] / count, 3), **cpu},
                }
            rate = row["engine"]["messages_per_second"]
            row["ratio_to_post_office"] = round(rate / row["post_office_default"]["messages_per_second"], 3)
            row["ratio_to_post_office_tuned"] = round(
                rate / row["post_office_tuned"]["messages_per_second"], 3
            )
            rounds.append(row)
            time.sleep(1)
    finally:
        sink.stop()
    metrics = {
        "messages": count,
        "rounds": len(rounds),
        "workers": WORKERS,
        "ratio_to_post_office": median([r["ratio_to_post_office"] for r in rounds]),
        "ratio_to_post_office_tuned": median([r["ratio_to_post_office_tuned"] for r in rounds]),
        "messages_per_second": median([r["engine"]["messages_per_second"] for r in rounds]),
        "post_office_default_messages_per_second": median(
            [r["post_office_default"]["messages_per_second"] for r in rounds]
        ),
        "post_office_tuned_messages_per_second": median(
            [r["post_office_tuned"]["messages_per_second"] for r in rounds]
        ),
        "peer": PEERS_REQUIREMENTS[0],
        "per_round": rounds,
    }
    goal = {
        "ratio_to_post_office": ">= 2.0 (median of per-round ratios, post-office with its default settings)"
    }
    return metrics, goal
