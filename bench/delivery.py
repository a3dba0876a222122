"""delivery: end to end from a campaign launch to a local SMTP sink, and a bare client on the same sink.

- messages_per_second: N outbox rows created through message_enqueue_many (a campaign launch: rows
  committed in chunks of LAUNCH_CHUNK, content rendered at send time by a registered renderer: ~3 KB
  of text as a text and an HTML part, ~7 KB on the wire) → worker processes running the engine
  (claim, send gate per batch, render, RFC 5322 build, DKIM RSA-2048, verified STARTTLS with the
  test CA, outcome rows) → an aiosmtpd sink in its own process. Timed from the first enqueue to the
  last row reaching a final state; every row must be delivered_tls and the sink must hold every
  Message-ID exactly once.
- ratio_to_floor (the goal): against a floor client in the same run (bench/delivery_floor.py): the
  same messages built, DKIM-signed with the same key, sent over verified STARTTLS on reused
  connections (PIPELINING, which the sink offers as Postfix does), one outcome row per message written
  to PostgreSQL in batches, by as many processes as the engine has workers.
- ratio_to_bare_client (information only): pre-built, pre-signed messages over 20 verified STARTTLS
  connections, no PostgreSQL.
- ROUNDS (BENCH_DELIVERY_ROUNDS, 3) interleaved rounds engine → floor → bare; rates and ratios are
  medians (each ratio the median of the per-round ratios).
- worker_peak_rss_mb: the largest peak resident set (VmHWM) of the engine's worker processes.
- CPU per message of each component in each phase (engine workers / floor or bare client, the sink,
  PostgreSQL with its backends, Redis) and the sink's TLS handshakes per 1,000 messages: steadier than
  the rates on a shared machine (two cores hold the workers, PostgreSQL, Redis and the sink).

BENCH_PROFILE=DIR makes each worker write its cProfile statistics (CPU time) there.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import statistics
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

SIZES = {"small": 3000, "full": 20000}
# Sending is I/O-bound between CPU bursts (SMTP replies, database round trips): two processes per core.
WORKERS = int(os.environ.get("BENCH_DELIVERY_WORKERS", str(2 * (os.cpu_count() or 2))))
ROUNDS = int(os.environ.get("BENCH_DELIVERY_ROUNDS", "3"))
LAUNCH_CHUNK = 2000
DOMAIN = "sink.test"
DOMAIN_RATE = 5000


def world(count: int):
    from consent import services as consent
    from consent.models import Source
    from contacts.models import Contact
    from healthmail.crypto.blind import blind_index
    from healthmail.tenants.context import tenant_context
    from tests.delivery.engine_support import SYSTEM, verified_sender_domain
    from tests.factories import BaaFactory, TenantFactory

    slug = f"bench-{uuid.uuid4().hex[:8]}"
    tenant = TenantFactory(name=f"Bench {slug}", slug=slug)
    BaaFactory(tenant=tenant)
    sender, _ = verified_sender_domain(tenant, f"mail.{slug}.test")
    contact_ids = []
    with tenant_context(tenant):
        for start in range(0, count, 5000):
            contacts = []
            for index in range(start, min(count, start + 5000)):
                email = f"synthetic.patient.{index:06d}@{DOMAIN}"
                contacts.append(
                    Contact(tenant=tenant, email=email, email_index=blind_index(tenant, "email", email))
                )
            Contact.objects.bulk_create(contacts, batch_size=1000)
            contact_ids += [c.pk for c in contacts]
    from django.utils import timezone

    for start in range(0, count, 5000):
        rows = [
            (cid, "marketing_newsletters", Source.IMPORT, timezone.now())
            for cid in contact_ids[start : start + 5000]
        ]
        consent.consent_import_evidence(tenant=tenant, actor=SYSTEM, rows=rows)
    analyze()
    return tenant, sender, contact_ids


def analyze() -> None:
    """Planner statistics, as autovacuum keeps them in a running system (the tables were just
    filled). Only the owner may ANALYZE."""
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as owner:
        owner.execute("ANALYZE")


def launch(tenant, sender, contact_ids, *, source_id: str, wake=lambda: None) -> None:
    from delivery.models import EncryptionPolicy, Stream
    from delivery.outbox import OutboxRecipient, message_enqueue_many

    for start in range(0, len(contact_ids), LAUNCH_CHUNK):
        message_enqueue_many(
            tenant=tenant,
            stream=Stream.MARKETING,
            source_type="synthetic",
            source_id=source_id,
            purpose="marketing",
            topic="marketing_newsletters",
            uses_phi=False,
            encryption_policy=EncryptionPolicy.TLS_ELSE_PORTAL,
            sender_domain=sender,
            recipients=[
                OutboxRecipient(cid, f"synthetic.patient.{start + i:06d}@{DOMAIN}")
                for i, cid in enumerate(contact_ids[start : start + LAUNCH_CHUNK])
            ],
        )
        wake()  # committed: the chunk's wake-up


def dependencies(sink, *, stream: str):
    from delivery.engine.config import EngineSettings
    from delivery.engine.send import Dependencies
    from delivery.smtp.connection import TransportSettings
    from delivery.smtp.timeouts import SmtpTimeouts
    from delivery.tls.mta_sts import HttpsPolicyFetcher
    from delivery.tls.probe import starttls_prober
    from delivery.tls.zone import zone_resolver

    environment = sink.environment(DOMAIN)
    os.environ.update(environment)
    transport = TransportSettings(
        ca_file=sink.ca_file, local_hostname="sender.healthmail.test", timeouts=SmtpTimeouts.every(30)
    )
    return Dependencies(
        resolver=zone_resolver(environment["DELIVERY_DNS_ZONE_FILE"]),
        fetcher=HttpsPolicyFetcher(ca_file=sink.ca_file),
        prober=starttls_prober(transport),
        transport=transport,
        # Every recipient is at one sink domain, which stands for the thousands of domains of a real
        # campaign: the per-domain politeness limit (500/s by default) is raised above what is
        # measured so it does not cap the figure. Its token bucket still runs (Redis, per batch).
        engine=replace(EngineSettings.from_settings(), domain_rate=DOMAIN_RATE, domain_burst=DOMAIN_RATE),
        portal=None,
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU of another process so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def unfinished(tenant_id, source_id: str) -> bool:
    """Whether any row of the launch is not final yet (stops at the first one: idle workers ask this
    while others still send, and a COUNT over the launch would take CPU from them)."""
    from delivery.models import Message
    from healthmail.tenants.context import tenant_context

    with tenant_context(tenant_id):
        return Message.objects.filter(source_id=source_id).exclude(state__in=Message.FINAL_STATES).exists()


class Wakes:
    """The launch's wake-ups: a Celery worker is woken by the task each committed enqueue sends
    (delivery/outbox.py, on_commit), it does not poll. A bench worker that found nothing to claim
    waits here for the next committed chunk instead of asking PostgreSQL again every few ms (which
    cost the engine CPU per message the floor never pays, more the more workers there are)."""

    def __init__(self, context):
        self.chunks = context.Value("i", 0)
        self.condition = context.Condition()

    def wake(self) -> None:
        with self.condition:
            self.chunks.value += 1
            self.condition.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        with self.condition:
            self.condition.wait_for(lambda: self.chunks.value != seen, timeout)
            return self.chunks.value


# After the launch, a worker with nothing to claim looks again this often while others finish (a row
# they give back, e.g. a deferral, must still be sent); the run's end is read from the rows' own
# finished_at, so this wait does not lengthen the measured time.
IDLE_SECONDS = 0.25


def worker(tenant_id, source_id, sink, stream, launched, wakes, results) -> None:
    """One engine process: drain until the launch is complete and nothing is left."""
    from django.db import connections

    from delivery.engine.worker import drain

    connections.close_all()  # never share the parent's connection
    deps = dependencies(sink, stream=stream)
    profile = _profiler()
    loop_profile = _loop_profiler()
    sent, seen = 0, 0
    while True:
        # A drain lasts DELIVERY_DRAIN_SECONDS, as a Celery task's (each one starts with a journal
        # replay, a take-back of dead claims and a heartbeat on a connection of its own).
        report = drain(tenant_id=tenant_id, stream=stream, deps=deps)
        sent += report.claimed
        if report.claimed == 0:
            if not launched.is_set():
                seen = wakes.wait(seen, timeout=IDLE_SECONDS)
            elif not unfinished(tenant_id, source_id):
                break
            else:
                time.sleep(IDLE_SECONDS)
    if profile is not None:
        profile.disable()
        profile.dump_stats(Path(os.environ["BENCH_PROFILE"]) / f"worker-{os.getpid()}.prof")
    if loop_profile is not None:
        loop_profile()
    results.put(
        {"claimed": sent, "rss_mb": peak_rss_mb(), "cpu": time.process_time(), "finished_at": time.time()}
    )


def _profiler():
    """BENCH_PROFILE=DIR: each worker writes its cProfile statistics there (`python -m pstats`)."""
    if not os.environ.get("BENCH_PROFILE"):
        return None
    import cProfile

    Path(os.environ["BENCH_PROFILE"]).mkdir(parents=True, exist_ok=True)
    # This thread's CPU time: wall time would count waiting for others, and process time the SMTP loop's
    # thread too (profiled apart, _loop_profiler).
    profile = cProfile.Profile(time.thread_time)
    profile.enable()
    return profile


def _loop_profiler():
    """BENCH_PROFILE=DIR: the SMTP loop's thread (delivery/smtp/pool.py) profiled too, into
    smtp-loop-PID.prof; returns what stops it and writes the file."""
    if not os.environ.get("BENCH_PROFILE"):
        return None
    import asyncio
    import cProfile

    from delivery.smtp.pool import ProcessSessions

    loop = ProcessSessions.current().loop
    profile = cProfile.Profile(time.thread_time)  # this thread's CPU only (the worker's is profiled apart)
    asyncio.run_coroutine_threadsafe(_call(profile.enable), loop).result()

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(_call(profile.disable), loop).result()
        profile.dump_stats(Path(os.environ["BENCH_PROFILE"]) / f"smtp-loop-{os.getpid()}.prof")

    return stop


async def _call(function) -> None:
    function()


def start_workers(count, tenant, source_id, sink, stream="marketing"):
    from django.db import connections

    from healthmail.celery import load_urls

    load_urls()  # as the Celery main process does before its pool forks
    connections.close_all()
    context = multiprocessing.get_context("fork")  # the renderer registration and settings carry over
    launched, wakes, results = context.Event(), Wakes(context), context.Queue()
    processes = [
        context.Process(target=worker, args=(tenant.pk, source_id, sink, stream, launched, wakes, results))
        for _ in range(count)
    ]
    for process in processes:
        process.start()
    return processes, launched, wakes, results


def collect(processes, results) -> list[dict]:
    """Each worker's report; fails at once (not after an hour) when a worker process died."""
    reports = []
    while len(reports) < len(processes):
        try:
            reports.append(results.get(timeout=5))
        except queue.Empty:
            dead = [process.exitcode for process in processes if process.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(
                    f"engine workers died (exit codes {dead}): see their traceback above"
                ) from None
    return reports


def engine_run(tenant, sender, contact_ids, sink) -> dict:
    from django.db.models import Count, Max

    import tests.delivery.synthetic_renderer  # noqa: F401 - registers the campaign renderer (forked)
    from delivery.models import Message
    from healthmail.tenants.context import tenant_context

    source_id = uuid.uuid4().hex
    processes, launched, wakes, results = start_workers(WORKERS, tenant, source_id, sink)
    started = time.time()
    launch_cpu = time.process_time()
    launch(tenant, sender, contact_ids, source_id=source_id, wake=wakes.wake)
    launched.set()
    wakes.wake()
    launch_seconds, launch_cpu = time.time() - started, time.process_time() - launch_cpu
    reports = collect(processes, results)
    for process in processes:
        process.join(timeout=60)
    with tenant_context(tenant):
        # When the last row reached its final state (the settle's own clock), not when the idle
        # workers noticed.
        last = Message.objects.filter(source_id=source_id).aggregate(last=Max("finished_at"))["last"]
        states = dict(
            Message.objects.filter(source_id=source_id)
            .values_list("state")
            .annotate(n=Count("id"))
            .order_by()
        )
        message_ids = set(Message.objects.filter(source_id=source_id).values_list("message_id", flat=True))
    received = sink.ids()
    delivered_once = sum(1 for mid in message_ids if received.get(mid) == 1)
    return {
        "seconds": last.timestamp() - started,
        "states": states,
        "delivered_once": delivered_once,
        "rss_mb": max(r["rss_mb"] for r in reports),
        "cpu_seconds": sum(r["cpu"] for r in reports),
        "launch_seconds": launch_seconds,
        "launch_cpu_seconds": launch_cpu,
    }


def sample_message(key) -> bytes:
    """One message as the engine builds it (same headers, size and DKIM key)."""
    from delivery import dkim
    from delivery.smtp.message import build_message
    from tests.delivery.synthetic_renderer import render

    content = render(type("M", (), {"contact_id": uuid.uuid4()})())
    headers = [
        ("From", f"Bench Clinic <news@{key.domain}>"),
        ("To", "synthetic.patient.000001@sink.test"),
        ("Subject", content.subject),
        ("Date", "Mon, 05 Jan 2026 10:00:00 +0000"),
        ("Message-ID", f"<{uuid.uuid4().hex}@{key.domain}>"),
        ("List-Unsubscribe", "<https://healthmail.test/p/unsubscribe/" + "x" * 120 + ">"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("Feedback-ID", "campaign:bench:0123456789ab:hm-marketing"),
    ]
    return dkim.sign_message(build_message(headers, text=content.text, html=content.html), key)


def server_pids() -> dict[str, int]:
    """PostgreSQL's postmaster (the parent of our backend) and the Redis server, for their CPU."""
    import redis
    from django.conf import settings
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    pids = {"postgresql": int(Path(f"/proc/{backend}/stat").read_text().rpartition(")")[2].split()[1])}
    pids["redis"] = int(redis.Redis.from_url(settings.REDIS_URL).info("server")["process_id"])
    return pids


class Meter:
    """Wall time, the sink's CPU and TLS handshakes, PostgreSQL's and Redis's CPU over one phase."""

    def __init__(self, sink, servers: dict[str, int]):
        from bench.delivery_floor import process_tree_cpu

        self.sink, self.servers, self.tree = sink, servers, process_tree_cpu

    def snapshot(self) -> dict[str, float]:
        from bench.delivery_floor import wal_bytes

        values = {name: self.tree(pid) for name, pid in self.servers.items()}
        return values | {
            "sink": cpu_seconds(self.sink.process.pid),
            "tls": self.sink.tls_sessions(),
            "wal": wal_bytes(),
        }

    def measure(self, phase, count: int) -> tuple[dict, dict]:
        before = self.snapshot()
        result = phase()
        after = self.snapshot()
        per_message = {
            name: round(1000 * (after[name] - before[name]) / count, 3)
            for name in after
            if name not in ("tls", "wal")
        }
        per_message["postgresql_wal_bytes_per_message"] = round((after["wal"] - before["wal"]) / count)
        per_message["tls_handshakes_per_1000_messages"] = round(
            1000 * (after["tls"] - before["tls"]) / count, 1
        )
        return result, per_message


def median(values):
    return round(statistics.median(values), 3)


def run(size: str):
    from bench.delivery_floor import bare_run, floor_run, outcomes_table_create
    from delivery.sender_domains.services import sender_domain_signing_key
    from healthmail.tenants.context import tenant_context
    from tests.delivery.sink import SinkProcess

    count = SIZES.get(size, SIZES["full"])
    database_url = os.environ["DATABASE_URL"]
    directory = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    # PIPELINING offered as Postfix does (BENCH_SINK_PIPELINING=0: not offered); the floor and the
    # engine use it when offered.
    sink = SinkProcess(directory, pipelining=os.environ.get("BENCH_SINK_PIPELINING", "1") == "1")
    rounds = []
    try:
        tenant, sender, contact_ids = world(count)
        with tenant_context(tenant):
            key = sender_domain_signing_key(tenant=tenant, domain=sender.domain)
        outcomes_table_create(database_url)
        meter = Meter(sink, server_pids())
        for _ in range(ROUNDS):  # interleaved, so a load change of the machine weighs on both alike
            engine, engine_cpu = meter.measure(lambda: engine_run(tenant, sender, contact_ids, sink), count)
            floor, floor_cpu = meter.measure(
                lambda: floor_run(count, processes=WORKERS, key=key, sink=sink, database_url=database_url),
                count,
            )
            bare, bare_cpu = meter.measure(lambda: bare_run(count, sink, sample_message(key)), count)
            assert engine["states"].get("delivered_tls", 0) == count, engine["states"]
            assert engine["delivered_once"] == count
            assert floor["recorded"] == count, floor
            rounds.append(round_metrics(count, engine, engine_cpu, floor, floor_cpu, bare, bare_cpu))
    finally:
        sink.stop()
    return summary(count, rounds), GOAL


GOAL = {
    "ratio_to_floor": ">= 0.85",
    "messages_per_second": ">= 278",
    "worker_peak_rss_mb": "<= 300",
    "ratio_to_bare_client": "information only (the old goal >= 0.6 is withdrawn, issue 22)",
}


def round_metrics(count, engine, engine_cpu, floor, floor_cpu, bare, bare_cpu) -> dict:
    rate, floor_rate, bare_rate = count / engine["seconds"], count / floor["seconds"], count / bare[0]
    return {
        "messages_per_second": round(rate, 1),
        "floor_messages_per_second": round(floor_rate, 1),
        "bare_client_messages_per_second": round(bare_rate, 1),
        "ratio_to_floor": round(rate / floor_rate, 3),
        "ratio_to_bare_client": round(rate / bare_rate, 3),
        "engine_cpu_ms_per_message": {
            "workers": round(1000 * engine["cpu_seconds"] / count, 3),
            "launch": round(1000 * engine["launch_cpu_seconds"] / count, 3),
            **engine_cpu,
        },
        "floor_cpu_ms_per_message": {"client": round(1000 * floor["cpu_seconds"] / count, 3), **floor_cpu},
        "bare_client_cpu_ms_per_message": {"client": round(1000 * bare[1] / count, 3), **bare_cpu},
        "launch_seconds": round(engine["launch_seconds"], 2),
        "worker_peak_rss_mb": round(engine["rss_mb"], 1),
        "delivered_tls": engine["states"].get("delivered_tls", 0),
        "delivered_exactly_once_at_sink": engine["delivered_once"],
        "floor_outcome_rows": floor["recorded"],
    }


def summary(count: int, rounds: list[dict]) -> dict:
    """Medians over the rounds; each ratio is the median of the per-round ratios (same-run figures)."""

    def cpu(name):
        keys = rounds[0][name].keys()
        return {key: median([r[name][key] for r in rounds]) for key in keys}

    rate = median([r["messages_per_second"] for r in rounds])
    return {
        "messages": count,
        "workers": WORKERS,
        "rounds": len(rounds),
        "messages_per_second": rate,
        "messages_per_hour": int(rate * 3600),
        "floor_messages_per_second": median([r["floor_messages_per_second"] for r in rounds]),
        "ratio_to_floor": median([r["ratio_to_floor"] for r in rounds]),
        "bare_client_messages_per_second": median([r["bare_client_messages_per_second"] for r in rounds]),
        "ratio_to_bare_client": median([r["ratio_to_bare_client"] for r in rounds]),
        "engine_cpu_ms_per_message": cpu("engine_cpu_ms_per_message"),
        "floor_cpu_ms_per_message": cpu("floor_cpu_ms_per_message"),
        "bare_client_cpu_ms_per_message": cpu("bare_client_cpu_ms_per_message"),
        "worker_peak_rss_mb": max(r["worker_peak_rss_mb"] for r in rounds),
        "delivered_tls": min(r["delivered_tls"] for r in rounds),
        "delivered_exactly_once_at_sink": min(r["delivered_exactly_once_at_sink"] for r in rounds),
        "per_round": rounds,
    }
