"""segments: counting a nested 6-condition segment, and snapshotting ~500,000 members.

Set-up (not timed): two tenants with CONTACTS contacts each (1,000,000 full, 20,000 small). Rows
are generated inside PostgreSQL by one INSERT ... SELECT per tenant, as the application role inside
the tenant's context (row-level security applies, as in production). Identity columns stay empty:
only the de-identified columns and keyed tokens segmentation reads are filled, with tokens computed
by blind.token for each tenant's own key (a catalogue of codes, picked at random per row). This
skips encryption to keep set-up fast; the segment queries never read encrypted columns anyway.
About 40% of contacts get a current "marketing_newsletters" consent (ConsentEvent + ConsentState).

The segment: age 40-75 AND state in 4 states AND (condition E11.9 OR journey stage post-visit or
active) AND consented to newsletters AND opened an email within 90 days (about 30% of contacts get
one human open somewhere in the last 180 days).

Metrics: count_ms_p50/p95 over RUNS counts through services.segment_count as a marketer (no PHI
access) sees them: validation, compile, statement timeout, and the disclosure policy's audited path
compared with five recent counts of the same viewer; breakdowns off), and snapshot_500k_seconds
for services.segment_snapshot_take of a ~50% segment (gender = female). Same-run baseline of the
query shapes (segmentation/compiler.py): the plain and the two-pass count SQL, interleaved, each
timed at the database (count_sql_plain_ms_p50, count_sql_two_pass_ms_p50). EXPLAIN (ANALYZE,
BUFFERS) plans go to bench/results/segments_explain.txt for docs/benchmarks.md.

BENCH_KEEP=1 (healthmail/devstack.py) keeps the database: a later run at the same size reuses the
two filled tenants instead of generating them again (setup_seconds 0).
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from pathlib import Path

RUNS = 15
CONDITIONS = ["E11.9", "I10", "J45.909", "E78.5", "M54.5", "F32.9", "C50.911", "Z34.00"]
MEDICATIONS = ["METFORMIN", "LISINOPRIL", "ATORVASTATIN", "ALBUTEROL"]
DEMOGRAPHICS = [("insurance_type", v) for v in ("commercial", "medicare", "medicaid", "self_pay")]
STATES = ["CA", "TX", "FL", "NY", "WA", "IL", "MA", "NV", "CT", "PR", "WY", "NH"]
STAGES = ["prospect", "new_patient", "active", "post_visit", "overdue", "high_risk", "lapsed"]
LANGUAGES = ["en", "en", "en", "es", "es", "zh", "vi"]

SEGMENT = {
    "all": [
        {"field": "age", "op": "between", "value": [40, 75]},
        {"field": "state", "op": "in", "value": ["CA", "TX", "FL", "NY"]},
        {
            "any": [
                {"field": "condition", "op": "in", "value": ["E11.9"]},
                {"field": "journey_stage", "op": "in", "value": ["post_visit", "active"]},
            ]
        },
        {"field": "consent", "op": "granted", "value": "marketing_newsletters"},
        {"field": "engagement.opened", "op": "within_days", "value": 90},
    ]
}
HALF = {"field": "gender", "op": "eq", "value": "female"}
PRIOR_STATES = (["WA", "IL"], ["MA", "NV"], ["CT", "PR"], ["WY", "NH"], ["CA", "WA"])

_INSERT = """
INSERT INTO contacts_contact (
  id, tenant_id, birth_year, age_90_or_older, zip3, state, gender, language, demographic_tokens,
  clinical_tokens, sensitive_categories, is_minor, journey_stage, tag_tokens, created_at, updated_at)
SELECT gen_random_uuid(), %(tenant)s,
  CASE WHEN r.a < 0.03 THEN NULL ELSE 2026 - (r.age) END, r.a < 0.03,
  '900', (%(states)s::text[])[1 + floor(random() * %(n_states)s)::int],
  CASE WHEN random() < 0.5 THEN 'female' ELSE 'male' END,
  (%(languages)s::text[])[1 + floor(random() * %(n_languages)s)::int],
  ARRAY[(%(demographics)s::bigint[])[1 + floor(random() * %(n_demographics)s)::int]],
  ARRAY[(%(conditions)s::bigint[])[1 + floor(random() * %(n_conditions)s)::int],
        (%(conditions)s::bigint[])[1 + floor(random() * %(n_conditions)s)::int],
        (%(medications)s::bigint[])[1 + floor(random() * %(n_medications)s)::int]],
  '{}', r.age < 18,
  (%(stages)s::text[])[1 + floor(random() * %(n_stages)s)::int],
  '{}', now() - random() * interval '900 days', now()
FROM (SELECT random() AS a, floor(random() * 95)::int AS age FROM generate_series(1, %(count)s)) r
"""

_CONSENT = """
WITH chosen AS (
  SELECT id FROM contacts_contact WHERE tenant_id = %(tenant)s AND random() < 0.4
), events AS (
  INSERT INTO consent_consentevent (tenant_id, contact_id, channel, topic_id, kind, source,
    occurred_at, recorded_at, user_agent, actor_type, actor_id)
  SELECT %(tenant)s, id, 'email', %(topic)s, 'granted', 'import', now(), now(), '', 'system', 'bench'
  FROM chosen RETURNING id, contact_id, occurred_at
)
INSERT INTO consent_consentstate (tenant_id, contact_id, channel, topic_id, status, event_id, occurred_at)
SELECT %(tenant)s, contact_id, 'email', %(topic)s, 'granted', id, occurred_at FROM events
"""

_OPENS = """
INSERT INTO delivery_engagementevent (tenant_id, contact_id, kind, label, source_type, source_id, variant,
  occurred_at, is_bot, bot_reason)
SELECT %(tenant)s, id, 'open', '', 'campaign', 'bench', '', now() - random() * interval '180 days', false, ''
FROM contacts_contact WHERE tenant_id = %(tenant)s AND random() < 0.3
"""


def _tenant(label: str):
    from healthmail.tenants.models import Tenant

    return Tenant.objects.create(
        name=f"Bench {label}", slug=f"bench-{label}-{uuid.uuid4().hex[:6]}", postal_address="1 Bench Way"
    )


def _kept_tenants(count: int):
    """With BENCH_KEEP (healthmail/devstack.py keeps the database and its key), the two tenants a
    previous run filled with `count` contacts each, or None."""
    from healthmail.tenants.models import Tenant

    if os.environ.get("BENCH_KEEP", "") in ("", "0"):
        return None
    tenants = [Tenant.objects.filter(slug=f"bench-keep-{label}-{count}").first() for label in "ab"]
    return tenants if all(tenants) else None


def _tenants(count: int):
    """The measured tenant and a second one of the same size, filled, analyzed, and the seconds it took."""
    kept = _kept_tenants(count)
    if kept:
        return (*kept, 0.0)
    keep = os.environ.get("BENCH_KEEP", "") not in ("", "0")
    began = time.perf_counter()
    tenant, other = _tenant("a"), _tenant("b")
    _load(tenant, count)
    _load(other, count)
    _analyze()
    if keep:  # named only once filled, so an interrupted set-up is never reused
        for label, filled in zip("ab", (tenant, other), strict=True):
            filled.slug = f"bench-keep-{label}-{count}"
            filled.save(update_fields=["slug"])
    return tenant, other, time.perf_counter() - began


def _load(tenant, count: int) -> None:
    from django.db import connection

    from consent.services import topics_ensure_system
    from healthmail.crypto import blind
    from healthmail.tenants.context import db_setting, tenant_context

    topic = topics_ensure_system(tenant=tenant)["marketing_newsletters"]
    params = {
        "tenant": tenant.pk,
        "count": count,
        "states": STATES,
        "languages": LANGUAGES,
        "stages": STAGES,
        "conditions": [blind.token(tenant, "condition", code) for code in CONDITIONS],
        "medications": [blind.token(tenant, "medication", name) for name in MEDICATIONS],
        "demographics": [blind.token(tenant, kind, value) for kind, value in DEMOGRAPHICS],
        "topic": topic.pk,
    }
    params.update({f"n_{k}": len(v) for k, v in list(params.items()) if isinstance(v, list)})
    batch = 100_000
    # Set-up statements run longer than the application's statement timeout allows.
    for start in range(0, count, batch):
        with tenant_context(tenant), db_setting("statement_timeout", "0"), connection.cursor() as cursor:
            cursor.execute(_INSERT, {**params, "count": min(batch, count - start)})
    with tenant_context(tenant), db_setting("statement_timeout", "0"), connection.cursor() as cursor:
        cursor.execute(_CONSENT, params)
        cursor.execute(_OPENS, params)


def _analyze() -> None:
    """ANALYZE needs the table owner; the application role may not run it."""
    import psycopg

    from healthmail.settings.base import _database

    owner = _database(os.environ["DATABASE_URL"], as_owner=True)
    with psycopg.connect(
        host=owner["HOST"], port=owner["PORT"], user=owner["USER"], password=owner["PASSWORD"] or None,
        dbname=owner["NAME"], autocommit=True,
    ) as admin:  # fmt: skip
        for table in (
            "contacts_contact",
            "consent_consentstate",
            "consent_consentevent",
            "delivery_engagementevent",
        ):
            admin.execute(f"VACUUM ANALYZE {table}")


def _explain(tenant, definition, *, two_pass: bool = False) -> str:
    from django.db import connection

    from healthmail.tenants.context import tenant_context
    from segmentation import compiler, services

    with tenant_context(tenant):
        compiled = services.segment_compile(tenant=tenant, definition=definition)
        query, params = compiler.count_query(compiled, two_pass=two_pass)
        text = services._render(query)
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + text, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
    return f"-- {text}\n{plan}\n"


def _query_shapes(tenant, definition) -> dict[str, list[float]]:
    """The plain and the two-pass count SQL of one definition, interleaved, timed at the database."""
    from django.db import connection

    from healthmail.tenants.context import tenant_context
    from segmentation import compiler, services

    timings: dict[str, list[float]] = {"plain": [], "two_pass": []}
    with tenant_context(tenant):
        compiled = services.segment_compile(tenant=tenant, definition=definition)
        shapes = {name: compiler.count_query(compiled, two_pass=name == "two_pass") for name in timings}
        texts = {name: (services._render(query), params) for name, (query, params) in shapes.items()}
        answers = set()
        for _ in range(RUNS):
            for name, (text, params) in texts.items():
                with connection.cursor() as cursor:
                    started = time.perf_counter()
                    cursor.execute(text, params)
                    answers.add(cursor.fetchone()[0])
                    timings[name].append((time.perf_counter() - started) * 1000)
    if len(answers) != 1:
        raise AssertionError(f"the two query shapes disagree: {answers}")
    return timings


def run(size: str):
    from healthmail.actors import Actor
    from healthmail.disclosure import QueryRefused, Viewer
    from healthmail.tenants.context import tenant_context
    from segmentation import services

    count = 20_000 if size == "small" else 1_000_000
    tenant, _other, setup_seconds = _tenants(count)

    # Counted as a marketer sees it: the disclosure policy's audited path (log, budget, one scan that
    # also measures the difference to each of the viewer's recent clinical counts), noise, rounding.
    # A new marketer per run: a kept database still holds earlier runs' query logs.
    viewer = Viewer(key=f"user:bench-marketer-{uuid.uuid4().hex[:8]}", phi=False)
    for states in PRIOR_STATES:  # recent counts the timed one is compared with
        prior = {**SEGMENT, "all": [{"field": "state", "op": "in", "value": states}, *SEGMENT["all"][2:]]}
        services.segment_count(tenant=tenant, viewer=viewer, definition=prior, breakdown=False)
    services.segment_count(tenant=tenant, viewer=viewer, definition=SEGMENT, breakdown=False)  # warm
    timings, result = [], None
    for _ in range(RUNS):
        started = time.perf_counter()
        result = services.segment_count(tenant=tenant, viewer=viewer, definition=SEGMENT, breakdown=False)
        timings.append((time.perf_counter() - started) * 1000)
    # The same count for a viewer the policy trusts (exact, nothing logged): the same-run baseline,
    # so what the policy adds is told apart from what the machine does.
    trusted = []
    for _ in range(RUNS):
        started = time.perf_counter()
        services.segment_count(tenant=tenant, viewer=Viewer.trusted(), definition=SEGMENT, breakdown=False)
        trusted.append((time.perf_counter() - started) * 1000)
    shapes = _query_shapes(tenant, SEGMENT)
    # A new query (the builder after an edit) is compared in the database with every recent one of
    # a close size: time one, whether the policy answers or refuses it.
    edited = {**SEGMENT, "all": [{"field": "age", "op": "between", "value": [35, 75]}, *SEGMENT["all"][1:]]}
    started = time.perf_counter()
    try:
        services.segment_count(tenant=tenant, viewer=viewer, definition=edited, breakdown=False)
    except QueryRefused:
        pass
    new_query_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    with_breakdown = services.segment_count(tenant=tenant, viewer=viewer, definition=SEGMENT)
    breakdown_ms = (time.perf_counter() - started) * 1000

    with tenant_context(tenant):
        segment = services.segment_create(
            tenant=tenant, actor=Actor.system("bench"), name=f"Half {uuid.uuid4().hex[:8]}", definition=HALF
        )
        started = time.perf_counter()
        snapshot = services.segment_snapshot_take(
            tenant=tenant, actor=Actor.system("bench"), segment=segment, purpose="benchmark"
        )
        snapshot_seconds = time.perf_counter() - started

    explain = (
        "## count (6 conditions), plain\n"
        + _explain(tenant, SEGMENT)
        + "\n## count (6 conditions), two-pass\n"
        + _explain(tenant, SEGMENT, two_pass=True)
        + "\n## half\n"
        + _explain(tenant, HALF)
    )
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    (results / "segments_explain.txt").write_text(explain)

    metrics = {
        "contacts_per_tenant": count,
        "setup_seconds": round(setup_seconds, 1),
        "segment_members": result.count,
        "count_ms_p50": round(statistics.median(timings), 1),
        "count_ms_p95": round(sorted(timings)[int(len(timings) * 0.95) - 1], 1),
        "count_trusted_ms_p50": round(statistics.median(trusted), 1),
        "policy_overhead_ms_p50": round(statistics.median(timings) - statistics.median(trusted), 1),
        "count_sql_plain_ms_p50": round(statistics.median(shapes["plain"]), 1),
        "count_sql_two_pass_ms_p50": round(statistics.median(shapes["two_pass"]), 1),
        "count_new_query_ms": round(new_query_ms, 1),
        "count_with_breakdown_ms": round(breakdown_ms, 1),
        "breakdown_states": len(with_breakdown.breakdown.get("state", [])),
        "snapshot_members": snapshot.member_count,
        "snapshot_500k_seconds": round(snapshot_seconds, 2),
    }
    goal = {"count_ms_p50": "<= 300", "snapshot_500k_seconds": "<= 10"}
    return metrics, goal
