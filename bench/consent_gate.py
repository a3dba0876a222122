"""consent_gate: the batch send gate over CONTACTS synthetic contacts (1,000,000; SIZE=small: 50,000).

Set-up (not timed): one tenant with a BAA, contacts inserted server-side in bulk (INSERT ... SELECT
generate_series, in tenant context so row-level security checks every row), then a realistic spread
of consent data: 60% opted in to the newsletter topic, 10% opted out, 30% with a marketing
authorization (a tenth of those not yet effective, a tenth past their end date), 3% suppressed
(mixed reasons), 5% with a preference row (a fifth of them paused). Tables are analyzed afterwards.

Timed:
- seconds_per_million: `may_send_batch(purpose="marketing", uses_phi=True, topic=newsletters)`
  over every contact, 10,000 ids per call (the way a campaign snapshot walks its audience): the SQL
  (contacts joined with consent state, authorizations, suppressions, preferences, waivers), the
  tenant-level reads each call makes (BAA, settings, topic) and one Decision per contact in Python.
- baseline_seconds_per_million: the same chunks with a plain `SELECT id FROM contacts_contact WHERE
  tenant_id = %s AND id = ANY(%s)`: the floor for fetching those rows on this machine.
- id_walk_seconds_per_million: keyset pagination of the ids themselves (what produces the chunks).
"""

from __future__ import annotations

import datetime
import time
import uuid
from collections import Counter

CHUNK = 10_000
INSERT_CHUNK = 250_000


def _contact_insert_sql() -> str:
    """INSERT ... SELECT for contacts, built from the model so new columns get a neutral value."""
    from django.contrib.postgres.fields import ArrayField
    from django.db import models

    from contacts.models import Contact

    explicit = {
        "id": "gen_random_uuid()",
        "tenant_id": "%(tenant)s",
        "email_index": "decode(md5('bench' || g::text), 'hex')",
        "state": "(ARRAY['', 'CA', 'WA', 'TX', 'NY', 'FL', 'NV', 'CT'])[1 + g %% 8]",
    }
    columns, values = [], []
    for field in Contact._meta.concrete_fields:
        column = field.column
        if column in explicit:
            value = explicit[column]
        elif field.null:
            continue
        elif isinstance(field, ArrayField):
            value = "'{}'"
        elif isinstance(field, models.BooleanField):
            value = "false"
        elif isinstance(field, models.DateTimeField):
            value = "now()"
        elif isinstance(field, models.JSONField):
            value = "'{}'::jsonb"
        elif isinstance(field, models.IntegerField | models.BigIntegerField | models.SmallIntegerField):
            value = "0"
        else:
            value = "''"
        columns.append(column)
        values.append(value)
    # Column names come from the model and values from the fixed table above: nothing user-given.
    return (
        f"INSERT INTO contacts_contact ({', '.join(columns)}) "  # noqa: S608
        f"SELECT {', '.join(values)} FROM generate_series(%(start)s, %(stop)s) g"
    )


_CONSENT_SQL = [
    # 60% granted, 10% revoked (the bucket is a stable hash of the id)
    """
    INSERT INTO consent_consentevent (tenant_id, contact_id, channel, topic_id, kind, source, occurred_at,
                                      recorded_at, ip_address, user_agent, actor_type, actor_id, text_id)
    SELECT c.tenant_id, c.id, 'email', %(topic)s,
           CASE WHEN b.bucket < 60 THEN 'granted' ELSE 'revoked' END,
           'import', now() - interval '30 days', now(), NULL, '', 'system', 'bench', NULL
      FROM contacts_contact c, LATERAL (SELECT abs(hashtext(c.id::text)) %% 100 AS bucket) b
     WHERE c.tenant_id = %(tenant)s AND b.bucket < 70
    """,
    """
    INSERT INTO consent_consentstate (tenant_id, contact_id, channel, topic_id, status, event_id, occurred_at)
    SELECT tenant_id, contact_id, channel, topic_id, kind, id, occurred_at
      FROM consent_consentevent WHERE tenant_id = %(tenant)s
    """,
    # 30% authorized; of those a tenth not yet effective and a tenth past its end date
    """
    INSERT INTO consent_authorization (id, tenant_id, contact_id, text_id, kind, signer_name, signed_on,
        signed_at, intent_confirmed, by_representative, effective_from, expires_at, expiry_event, channels,
        status, revoked_via, source, user_agent, submission_key)
    SELECT gen_random_uuid(), c.tenant_id, c.id, %(text)s, 'marketing', '\\x00'::bytea, current_date,
           now() - interval '10 days', true, false,
           CASE WHEN b.bucket %% 10 = 0 THEN now() + interval '5 days' ELSE now() - interval '10 days' END,
           CASE WHEN b.bucket %% 10 = 1 THEN now() - interval '1 day' ELSE now() + interval '300 days' END,
           '', ARRAY['email'], 'valid', '', 'web_form', '', c.id::text
      FROM contacts_contact c, LATERAL (SELECT abs(hashtext(c.id::text || 'a')) %% 100 AS bucket) b
     WHERE c.tenant_id = %(tenant)s AND b.bucket < 30
    """,
    """
    INSERT INTO consent_suppression (id, tenant_id, contact_id, email_index, reason, note, created_at,
                                     created_by, removed_by, removed_reason)
    SELECT gen_random_uuid(), c.tenant_id, c.id, c.email_index,
           (ARRAY['hard_bounce', 'complaint', 'unsubscribe_all', 'legal_request', 'manual'])
             [1 + abs(hashtext(c.id::text || 'r')) %% 5],
           '', now(), 'system:bench', '', ''
      FROM contacts_contact c, LATERAL (SELECT abs(hashtext(c.id::text || 's')) %% 100 AS bucket) b
     WHERE c.tenant_id = %(tenant)s AND b.bucket < 3
    """,
    """
    INSERT INTO consent_contactpreference (tenant_id, contact_id, frequency, paused_until, updated_at)
    SELECT c.tenant_id, c.id, 'monthly',
           CASE WHEN b.bucket = 0 THEN current_date + 10 END, now()
      FROM contacts_contact c, LATERAL (SELECT abs(hashtext(c.id::text || 'p')) %% 100 AS bucket) b
     WHERE c.tenant_id = %(tenant)s AND b.bucket < 5
    """,
]

_ANALYZE = [
    "contacts_contact",
    "consent_consentevent",
    "consent_consentstate",
    "consent_authorization",
    "consent_suppression",
    "consent_contactpreference",
]


def _setup(contacts: int):
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from consent import authorizations, services
    from healthmail.actors import Actor
    from healthmail.tenants.context import tenant_context
    from healthmail.tenants.models import BusinessAssociateAgreement, Service, Tenant

    slug = f"bench-gate-{uuid.uuid4().hex[:8]}"
    tenant = Tenant.objects.create(name="Bench gate", slug=slug, postal_address="1 Bench Way")
    today = timezone.localdate()
    with tenant_context(tenant):
        BusinessAssociateAgreement.objects.create(
            tenant=tenant,
            counterparty="Bench",
            signed_on=today - datetime.timedelta(days=1),
            effective_on=today - datetime.timedelta(days=1),
            signatory_name="Bench",
            document_sha256="b" * 64,
            services=list(Service.values),
        )
    topic = services.topics_ensure_system(tenant=tenant)["marketing_newsletters"]
    text = authorizations.authorization_text_create(
        tenant=tenant,
        actor=Actor.system("bench"),
        kind="marketing",
        title="Bench authorization",
        elements={
            "phi_description": "d",
            "disclosers": "d",
            "recipients": "r",
            "purpose": "p",
            "expiration": "one year",
            "expiry_days": 365,
            "revocation_rights": "r",
            "conditioning_statement": "c",
            "redisclosure_statement": "r",
        },
    )
    insert = _contact_insert_sql()
    params = {"tenant": tenant.pk, "topic": topic.pk, "text": text.pk}
    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = 0")
        for start in range(1, contacts + 1, INSERT_CHUNK):
            stop = min(start + INSERT_CHUNK - 1, contacts)
            cursor.execute(insert, {**params, "start": start, "stop": stop})
        for statement in _CONSENT_SQL:
            cursor.execute(statement, params)
    # Fresh statistics, as autovacuum would give a long-lived table (ANALYZE needs the owner).
    import psycopg

    with psycopg.connect(settings.DATABASE_URL, autocommit=True) as owner:
        for table in _ANALYZE:
            owner.execute(f"ANALYZE {table}")
    return tenant, topic


def _id_chunks(tenant) -> tuple[list[list[uuid.UUID]], float]:
    from django.db import connection

    from healthmail.tenants.context import tenant_context

    chunks, last = [], uuid.UUID(int=0)
    started = time.perf_counter()
    with tenant_context(tenant), connection.cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT id FROM contacts_contact WHERE tenant_id = %s AND id > %s ORDER BY id LIMIT %s",
                [tenant.pk, last, CHUNK],
            )
            ids = [row[0] for row in cursor.fetchall()]
            if not ids:
                break
            chunks.append(ids)
            last = ids[-1]
    return chunks, time.perf_counter() - started


def _baseline(tenant, chunks) -> float:
    from django.db import connection

    from healthmail.tenants.context import tenant_context

    started = time.perf_counter()
    for ids in chunks:
        with tenant_context(tenant), connection.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM contacts_contact WHERE tenant_id = %s AND id = ANY(%s)", [tenant.pk, ids]
            )
            cursor.fetchall()
    return time.perf_counter() - started


def _gate(tenant, topic, chunks) -> tuple[float, Counter]:
    from consent.gate import may_send_batch

    codes: Counter = Counter()
    started = time.perf_counter()
    for ids in chunks:
        decisions = may_send_batch(
            tenant=tenant, contact_ids=ids, purpose="marketing", uses_phi=True, topic=topic
        )
        codes.update(decision.code for decision in decisions.values())
    return time.perf_counter() - started, codes


def run(size: str) -> tuple[dict, dict]:
    contacts = 50_000 if size == "small" else 1_000_000
    setup_started = time.perf_counter()
    tenant, topic = _setup(contacts)
    setup_seconds = time.perf_counter() - setup_started
    chunks, walk_seconds = _id_chunks(tenant)
    counted = sum(len(c) for c in chunks)
    assert counted == contacts, (counted, contacts)
    _baseline(tenant, chunks[:3])  # warm the caches the same way for both
    baseline_seconds = _baseline(tenant, chunks)
    gate_seconds, codes = _gate(tenant, topic, chunks)
    scale = 1_000_000 / contacts
    metrics = {
        "contacts": contacts,
        "ids_per_call": CHUNK,
        "seconds_per_million": round(gate_seconds * scale, 2),
        "baseline_seconds_per_million": round(baseline_seconds * scale, 2),
        "gate_over_baseline": round(gate_seconds / baseline_seconds, 1) if baseline_seconds else None,
        "id_walk_seconds_per_million": round(walk_seconds * scale, 2),
        "allowed_share": round(sum(n for code, n in codes.items() if code == "opted_in") / contacts, 3),
        "decisions_by_code": dict(codes.most_common()),
        "setup_seconds_untimed": round(setup_seconds, 1),
    }
    goal = {"seconds_per_million": "<= 30"}
    return metrics, goal
