"""claims: do claims collide as sending processes grow from 2 to 32? (docs/scaling.md)

For each process count (2, 4, 8, 16, 32): ROWS outbox rows are launched (message_enqueue_many, as a
campaign is), then that many forked processes claim them with the engine's own claim
(`message_claim_batch`: FOR UPDATE SKIP LOCKED under the tenant's row-level security, BATCH rows) and
settle each batch with one state-transition UPDATE guarded by `claimed_by` (no SMTP: the database's
side of sending only). Every process reports the ids it claimed and settled.

Metrics per count: claims per second (claim statements), rows per second, claim latency p50/p95,
`collisions` (ids claimed by more than one process: must be 0), `unclaimed` (launched rows no process
took: must be 0), `settled` (rows the UPDATEs changed, from their rowcounts), and the CPU of the
processes and of PostgreSQL per row.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import statistics
import time
import uuid
from collections import Counter
from datetime import timedelta

from bench.delivery import launch, server_pids, world
from bench.delivery_floor import process_tree_cpu, wal_bytes

SIZES = {"small": 4000, "full": 20000}
COUNTS = [int(n) for n in os.environ.get("BENCH_CLAIMS_PROCESSES", "2,4,8,16,32").split(",")]
BATCH = 50

_SETTLE = """
UPDATE delivery_message SET state = 'delivered_tls', updated_at = now()
 WHERE id = ANY(%(ids)s::uuid[]) AND claimed_by = %(worker)s AND state = 'sending'
"""


def claimer(tenant_id, stream: str, start, results) -> None:
    from django.db import connection, connections

    from delivery.engine.claim import message_claim_batch, worker_name
    from healthmail.tenants.context import tenant_context

    connections.close_all()  # never the parent's connection
    worker = worker_name()
    claimed, settled, latencies = [], 0, []
    start.wait()
    while True:
        began = time.perf_counter()
        ids = message_claim_batch(
            tenant_id=tenant_id, stream=stream, worker=worker, limit=BATCH, lease=timedelta(minutes=5)
        )
        latencies.append(time.perf_counter() - began)
        if not ids:
            break
        claimed += [str(i) for i in ids]
        with tenant_context(tenant_id), connection.cursor() as cursor:
            cursor.execute(_SETTLE, {"ids": ids, "worker": worker})
            settled += cursor.rowcount
    results.put(
        {"ids": claimed, "settled": settled, "latencies": latencies, "cpu": time.process_time(),
         "finished_at": time.time()}
    )  # fmt: skip


def one_count(processes: int, tenant, sender, contact_ids, postgresql_pid: int) -> dict:
    from django.db import connections

    from delivery.models import Stream

    launch(tenant, sender, contact_ids, source_id=uuid.uuid4().hex)
    connections.close_all()
    context = multiprocessing.get_context("fork")
    start, results = context.Event(), context.Queue()
    children = [
        context.Process(target=claimer, args=(tenant.pk, Stream.MARKETING, start, results))
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    database_cpu, wal = process_tree_cpu(postgresql_pid), wal_bytes()
    began = time.time()
    start.set()
    reports = []
    while len(reports) < processes:
        try:
            reports.append(results.get(timeout=5))
        except queue.Empty:
            if any(child.exitcode not in (None, 0) for child in children):
                raise RuntimeError("a claiming process died: see its traceback above") from None
    for child in children:
        child.join(timeout=30)
    seconds = max(r["finished_at"] for r in reports) - began
    database_cpu, wal = process_tree_cpu(postgresql_pid) - database_cpu, wal_bytes() - wal
    counts = Counter(i for r in reports for i in r["ids"])
    rows = len(contact_ids)
    latencies = sorted(x for r in reports for x in r["latencies"])
    return {
        "processes": processes,
        "rows": rows,
        "seconds": round(seconds, 2),
        "claims_per_second": round(len(latencies) / seconds, 1),
        "rows_per_second": round(sum(counts.values()) / seconds, 1),
        "claim_ms_p50": round(1000 * statistics.median(latencies), 2),
        "claim_ms_p95": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 2),
        "collisions": sum(1 for n in counts.values() if n > 1),
        "unclaimed": rows - len(counts),
        "settled": sum(r["settled"] for r in reports),
        "client_cpu_ms_per_row": round(1000 * sum(r["cpu"] for r in reports) / rows, 3),
        "postgresql_cpu_ms_per_row": round(1000 * database_cpu / rows, 3),
        "wal_bytes_per_row": round(wal / rows),
    }


def run(size: str):
    rows = SIZES.get(size, SIZES["full"])
    tenant, sender, contact_ids = world(rows)
    postgresql = server_pids()["postgresql"]
    results = [one_count(n, tenant, sender, contact_ids, postgresql) for n in COUNTS]
    for result in results:
        assert result["collisions"] == 0, result
        assert result["unclaimed"] == 0, result
        assert result["settled"] == result["rows"], result
    metrics = {"per_process_count": results, "collisions": sum(r["collisions"] for r in results)}
    goal = {"collisions": "== 0", "unclaimed": "== 0 at every process count"}
    return metrics, goal
