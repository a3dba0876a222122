"""crypto_audit: field encryption throughput, and audit inserts with the sealer running.

- encrypt_decrypt_per_second: one PHI field value (a 40-byte email) encrypted and decrypted under a
  tenant data key, including AAD binding (envelope.encrypt + envelope.decrypt), one core.
- baselines measured in the same run: bare AES-GCM without the envelope, and plain INSERTs of the
  same rows into an unindexed temporary table (no RLS, triggers, chain or WAL) by the same writers:
  a ceiling for what PostgreSQL takes on this machine, not a like-for-like.
- audit_events_per_second: WRITERS processes call audit.services.record() in tenant context, ten
  events per transaction (a request or task records several), for SECONDS while one sealer process
  seals continuously; audit_events_per_second_one_per_transaction is the worst case, one event per
  transaction. The sealer keeps up when the backlog left at the end is at most one seal batch.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid

WRITERS = int(__import__("os").environ.get("BENCH_WRITERS", "3"))


def _tenant():
    from healthmail.tenants.models import Tenant

    return Tenant.objects.create(
        name="Bench", slug=f"bench-{uuid.uuid4().hex[:8]}", postal_address="1 Bench Way"
    )


def _crypto(iterations: int, tenant_id) -> float:
    from healthmail.crypto import envelope

    value = b"synthetic.patient.0001@example.org"
    aad = f"{tenant_id}|contacts_contact|email|{uuid.uuid4()}".encode()
    envelope.decrypt(tenant_id, envelope.encrypt(tenant_id, value, aad), aad)  # warm the key cache
    started = time.perf_counter()
    for _ in range(iterations):
        envelope.decrypt(tenant_id, envelope.encrypt(tenant_id, value, aad), aad)
    return iterations / (time.perf_counter() - started)


def _crypto_baseline(iterations: int) -> float:
    """Bare AES-GCM on the same value with a fixed key: what the envelope's bookkeeping costs on top."""
    import os

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    cipher, value, aad = AESGCM(AESGCM.generate_key(256)), b"synthetic.patient.0001@example.org", b"aad"
    started = time.perf_counter()
    for _ in range(iterations):
        nonce = os.urandom(12)
        cipher.decrypt(nonce, cipher.encrypt(nonce, value, aad), aad)
    return iterations / (time.perf_counter() - started)


def _writer(tenant_id: str, seconds: float, per_transaction: int, start, counter, busy, bare=False) -> None:
    import django

    django.setup()
    from django.db import connection, transaction

    from audit import services as audit
    from healthmail.actors import Actor
    from healthmail.tenants.context import tenant_context

    tenant = uuid.UUID(tenant_id)
    actor = Actor.system("bench")
    written = 0
    if bare:
        with connection.cursor() as cursor:
            # A temporary table: the application role may not create others (and it skips the WAL,
            # so this baseline is a ceiling, not a like-for-like).
            cursor.execute("CREATE TEMP TABLE bare_events (LIKE audit_auditevent)")
    start.wait()
    began = time.perf_counter()
    deadline = began + seconds
    while bare and time.perf_counter() < deadline:
        with transaction.atomic(), connection.cursor() as cursor:
            for _ in range(per_transaction):
                cursor.execute(
                    "INSERT INTO bare_events (id, tenant_id, occurred_at, actor_type,"
                    " actor_id, action, target_type, target_id, outcome, reason, details, request_id, hash)"
                    " VALUES (%s, %s, now(), 'system', 'bench', 'bench.event', 'bench.thing', %s,"
                    " 'success', '', '{}', '', '')",
                    [written, tenant, str(written)],
                )
                written += 1
    while not bare and time.perf_counter() < deadline:
        with tenant_context(tenant):
            for _ in range(per_transaction):
                audit.record(
                    actor=actor,
                    action="bench.event",
                    target=("bench.thing", str(written)),
                    tenant=tenant,
                    details={"n": written},
                )
                written += 1
    with counter.get_lock():
        counter.value += written
    with busy.get_lock():
        busy.value = max(busy.value, time.perf_counter() - began)


def _sealer(tenant_id: str, stop, sealed) -> None:
    import django

    django.setup()
    from audit import chain

    total = 0
    while not stop.is_set():
        count = chain.seal_pending(uuid.UUID(tenant_id))
        total += count
        if count == 0:
            time.sleep(0.05)
    with sealed.get_lock():
        sealed.value += total


def _audit_load(
    tenant_id, seconds: float, *, per_transaction: int, bare: bool = False
) -> tuple[float, int, int]:
    """(events per second, events written, events sealed while writing) for WRITERS processes."""
    context = multiprocessing.get_context("spawn")
    counter, sealed, busy = context.Value("q", 0), context.Value("q", 0), context.Value("d", 0.0)
    start, stop = context.Event(), context.Event()
    sealer = context.Process(target=_sealer, args=(str(tenant_id), stop, sealed))
    sealer.start()
    writers = [
        context.Process(
            target=_writer, args=(str(tenant_id), seconds, per_transaction, start, counter, busy, bare)
        )
        for _ in range(WRITERS)
    ]
    for process in writers:
        process.start()
    time.sleep(3.0)  # let every process finish django.setup() before the clock starts
    start.set()
    for process in writers:
        process.join()
    elapsed = busy.value
    time.sleep(1.0)  # the sealer's last pass
    stop.set()
    sealer.join()
    return counter.value / elapsed, counter.value, sealed.value


def run(size: str) -> tuple[dict, dict]:
    from django.db import connection

    from audit import chain
    from audit.models import AuditEvent
    from healthmail.tenants.context import tenant_context

    small = size == "small"
    tenant = _tenant()
    crypto_rate = _crypto(5_000 if small else 100_000, tenant.pk)
    crypto_baseline = _crypto_baseline(5_000 if small else 100_000)
    seconds = 3.0 if small else 20.0
    connection.close()

    baseline_inserts = _audit_load(tenant.pk, seconds, per_transaction=10, bare=True)
    batched = _audit_load(tenant.pk, seconds, per_transaction=10)
    single = _audit_load(tenant.pk, seconds, per_transaction=1)
    with tenant_context(tenant):
        backlog = AuditEvent.objects.filter(tenant=tenant, seq__isnull=True).count()
    verify_started = time.perf_counter()
    report = chain.verify_chain(tenant.pk)
    verify_seconds = time.perf_counter() - verify_started
    metrics = {
        "encrypt_decrypt_per_second": round(crypto_rate),
        "baseline_bare_aesgcm_per_second": round(crypto_baseline),
        "baseline_bare_inserts_per_second": round(baseline_inserts[0]),
        "audit_events_per_second": round(batched[0]),
        "audit_events_per_second_one_per_transaction": round(single[0]),
        "audit_events_written": batched[1] + single[1],
        "audit_sealed_during_run": batched[2] + single[2],
        "audit_backlog_after_run": backlog,
        "audit_chain_verified": report.ok,
        "audit_verify_rows_per_second": round(report.rows / verify_seconds) if verify_seconds else None,
        "writers": WRITERS,
        "seconds": seconds,
    }
    goal = {
        "audit_events_per_second": 5000,
        "audit_backlog_after_run": f"<= {chain.SEAL_BATCH}",
        "audit_chain_verified": True,
    }
    return metrics, goal
