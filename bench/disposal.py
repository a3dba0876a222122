"""disposal: a disposal run over MESSAGES expired messages (1,000,000 full, 20,000 small).

Set-up (not timed): one tenant; one message is written through the outbox (sealed content under
its own object key), then copied server-side (INSERT ... SELECT generate_series, as the application
role in tenant context, so row-level security checks every row): MESSAGES object keys, MESSAGES
messages created eight years ago (past the seven-year default maximum), each with its own key and
one delivery attempt. A second tenant gets PROBE_CONTACTS contacts for the probe.

Timed: plan (candidates by INSERT ... SELECT, preview counts), approve, execute every batch (each
batch: lock, hold/exception/policy re-check, Collector delete of messages + attempts, key shredding,
candidate update, audit event), certificate. Meanwhile a probe thread runs an indexed lookup in the
OTHER tenant every PROBE_INTERVAL seconds (the kind of query a web request makes), and one in the
disposing tenant's messages table, to show the database stays responsive: p50/p95/max latency.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid

PROBE_INTERVAL = 0.2


def _tenant(name: str):
    from healthmail.tenants.models import Tenant
    from tests.factories import BaaFactory

    tenant = Tenant.objects.create(
        name=name, slug=f"{name}-{uuid.uuid4().hex[:8]}", postal_address="1 Bench Way"
    )
    BaaFactory(tenant=tenant)
    return tenant


def _columns(model) -> list[str]:
    return [f.column for f in model._meta.concrete_fields]


def _setup_messages(tenant, count: int) -> None:
    from django.db import connection

    from delivery.models import Message, MessageAttempt, Stream
    from delivery.outbox import OutboxRecipient, RenderedContent, message_enqueue_many
    from healthmail.crypto.models import ObjectKey
    from healthmail.tenants.context import tenant_context

    (template,) = message_enqueue_many(
        tenant=tenant,
        stream=Stream.TRANSACTIONAL,
        source_type="api",
        source_id="bench",
        purpose="treatment",
        recipients=[OutboxRecipient(None, "synthetic.patient@example.org")],
        content=RenderedContent(
            subject="Your appointment", html="<p>See you Tuesday at 9:00.</p>", text="Tuesday 9:00"
        ),
    )
    key_overrides = {"id": "md5('k' || g)::uuid"}
    message_overrides = {
        "id": "md5('m' || g)::uuid",
        "content_key_id": "md5('k' || g)::uuid",
        "message_id": "'<' || g || '.bench@example.org>'",
        "state": "'delivered_tls'",
        "created_at": "now() - interval '8 years' - g * interval '1 second'",
        "finished_at": "now() - interval '8 years'",
    }
    attempt_overrides = {"message_id": "md5('m' || g)::uuid"}

    def copy(table: str, model, overrides: dict, template_id) -> str:
        columns = [c for c in _columns(model) if not (c == "id" and c not in overrides)]  # serial ids
        values = ", ".join(overrides.get(c, f"t.{c}") for c in columns)
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT {values} FROM {table} t, "  # noqa: S608
            f"generate_series(1, %(count)s) g WHERE t.id = '{template_id}'"
        )

    with tenant_context(tenant):
        attempt = MessageAttempt.objects.create(
            tenant=tenant,
            message=template,
            started_at=template.created_at,
            finished_at=template.created_at,
            outcome="delivered",
            smtp_code=250,
            detail="250 ok",
            mx_host="mx.example.org",
            evidence={"tls": "1.3"},
        )
    with tenant_context(tenant), connection.cursor() as cursor:
        params = {"tenant": tenant.pk, "count": count}
        cursor.execute(copy("crypto_objectkey", ObjectKey, key_overrides, template.content_key_id), params)
        cursor.execute(copy("delivery_message", Message, message_overrides, template.pk), params)
        cursor.execute(copy("delivery_messageattempt", MessageAttempt, attempt_overrides, attempt.pk), params)
        cursor.execute("DELETE FROM delivery_messageattempt WHERE id = %s", [attempt.pk])
        cursor.execute("DELETE FROM delivery_message WHERE id = %s", [template.pk])
        cursor.execute("DELETE FROM crypto_objectkey WHERE id = %s", [template.content_key_id])
    # Planner statistics, as autovacuum keeps them in a running system, taken as the owner (the
    # application role's ANALYZE is skipped with a warning).
    from bench.delivery import analyze

    analyze()


def _setup_probe_tenant(count: int):
    from django.db import connection

    from healthmail.tenants.context import tenant_context

    tenant = _tenant("probe")
    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO contacts_contact (id, tenant_id, email_index, age_90_or_older, zip3, state,"
            " gender, language, demographic_tokens, clinical_tokens, sensitive_categories, is_minor,"
            " journey_stage, tag_tokens, created_at, updated_at)"
            " SELECT gen_random_uuid(), %s, sha256(g::text::bytea), false, '900', 'CA', '', '', '{}', '{}',"
            " '{}', false, '', '{}', now(), now() FROM generate_series(1, %s) g",
            [tenant.pk, count],
        )
    return tenant


class Probe(threading.Thread):
    """Indexed lookups on its own connection while the run goes on."""

    def __init__(self, probe_tenant, disposing_tenant):
        super().__init__(daemon=True)
        self.probe_tenant, self.disposing_tenant = probe_tenant, disposing_tenant
        self.latencies: dict[str, list[float]] = {"other_tenant": [], "same_tenant": []}
        self.stop = threading.Event()

    def run(self) -> None:
        import hashlib

        from django.db import connection, connections

        from healthmail.tenants.context import tenant_context

        n = 0
        while not self.stop.is_set():
            n += 1
            for name, tenant, sql, value in (
                (
                    "other_tenant",
                    self.probe_tenant,
                    "SELECT id FROM contacts_contact WHERE tenant_id = %s AND email_index = %s",
                    hashlib.sha256(str(n % 5000 + 1).encode()).digest(),
                ),
                (
                    "same_tenant",
                    self.disposing_tenant,
                    "SELECT count(*) FROM delivery_message WHERE tenant_id = %s AND to_address_index = %s",
                    b"x" * 32,
                ),
            ):
                started = time.perf_counter()
                with tenant_context(tenant), connection.cursor() as cursor:
                    cursor.execute(sql, [tenant.pk, value])
                    cursor.fetchall()
                self.latencies[name].append((time.perf_counter() - started) * 1000)
            self.stop.wait(PROBE_INTERVAL)
        connections.close_all()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def run(size: str) -> tuple[dict, dict]:
    from unittest import mock

    from django.db import connection

    from delivery.models import Message
    from healthmail.accounts.roles import Role
    from healthmail.actors import Actor
    from healthmail.tenants.context import tenant_context
    from retention import certificates, disposal
    from retention.models import DestructionCertificate
    from tests.factories import MembershipFactory

    count = 20_000 if size == "small" else 1_000_000
    tenant = _tenant("disposal")
    setup_started = time.perf_counter()
    _setup_messages(tenant, count)
    probe_tenant = _setup_probe_tenant(5_000)
    setup_seconds = time.perf_counter() - setup_started
    officer = Actor.for_user(MembershipFactory(tenant=tenant, role=Role.COMPLIANCE_OFFICER).user)

    probe = Probe(probe_tenant, tenant)
    probe.start()
    time.sleep(1.0)  # baseline probes before the run starts
    baseline = {k: list(v) for k, v in probe.latencies.items()}
    started = time.perf_counter()
    with mock.patch.object(disposal, "enqueue", return_value=None):  # the bench itself is the worker
        (run_,) = disposal.disposal_plan(tenant=tenant, actor=officer)
        planned = time.perf_counter()
        second = Actor.for_user(MembershipFactory(tenant=tenant, role=Role.COMPLIANCE_OFFICER).user)
        disposal.disposal_approve(tenant=tenant, actor=second, run=run_)  # four eyes
    batches = disposal.disposal_run_execute(tenant_id=tenant.pk, run_id=run_.pk)
    finished = time.perf_counter()
    probe.stop.set()
    probe.join()

    with tenant_context(tenant):
        left = Message.objects.filter(tenant=tenant).count()
        certificate = DestructionCertificate.objects.get(run=run_)
    problems = certificates.certificate_verify(tenant=tenant, certificate=certificate)
    connection.close()
    during = {k: v[len(baseline[k]) :] for k, v in probe.latencies.items()}
    seconds = finished - started
    metrics = {
        "messages": count,
        "seconds": round(seconds, 1),
        "seconds_per_million": round(seconds * 1_000_000 / count, 1),
        "plan_seconds": round(planned - started, 1),
        "execute_seconds": round(finished - planned, 1),
        "batches": batches + 1,
        "batch_size": disposal.BATCH_SIZE,
        "destroyed": certificate.record_count,
        "messages_left": left,
        "certificate_verified": not problems,
        "probe_count": sum(len(v) for v in during.values()),
        "probe_other_tenant_ms_p50": _percentile(during["other_tenant"], 0.5),
        "probe_other_tenant_ms_p95": _percentile(during["other_tenant"], 0.95),
        "probe_other_tenant_ms_max": _percentile(during["other_tenant"], 1.0),
        "probe_same_table_ms_p50": _percentile(during["same_tenant"], 0.5),
        "probe_same_table_ms_p95": _percentile(during["same_tenant"], 0.95),
        "probe_same_table_ms_max": _percentile(during["same_tenant"], 1.0),
        "probe_baseline_ms_p50": round(statistics.median(baseline["other_tenant"] or [0]), 1),
        "setup_seconds": round(setup_seconds, 1),
    }
    goal = {
        "seconds_per_million": "<= 600",
        "messages_left": 0,
        "certificate_verified": True,
        "probe_other_tenant_ms_p95": "<= 100 (choice)",
    }
    return metrics, goal
