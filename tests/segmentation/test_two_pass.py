"""Two-pass counts (segmentation/compiler.py): the covering index's conditions first, the rest on the
rows they leave. The two shapes select the same contacts for any definition, the split puts every
condition where it belongs, and a condition said to be covered reads only the index's columns."""

from __future__ import annotations

import pytest
from django.db import ProgrammingError, connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql as psycopg_sql

from healthmail.tenants.context import tenant_context
from segmentation import compiler, evaluator, services
from segmentation.registry import FIELDS
from segmentation.strategies import COVERED_COLUMNS
from tests.segmentation.test_language import CONDITIONS, DEFINITIONS, NOW, SLOW

pytestmark = pytest.mark.django_db

# A root "all" with several parts: most of these mix covered and uncovered conditions.
CONJUNCTIONS = st.lists(st.one_of(CONDITIONS, DEFINITIONS), min_size=2, max_size=5).map(lambda c: {"all": c})


def _ids(query_part) -> list:
    query, params = query_part
    return [row[0] for row in services._fetch(query, params)]


@SLOW
@given(definition=CONJUNCTIONS)
def test_two_pass_sql_selects_what_the_plain_sql_selects(tenant_a, audience_a, audience_b, definition):
    with tenant_context(tenant_a):
        compiled = services.segment_compile(tenant=tenant_a, definition=definition, now=NOW)
        plain = _ids(compiler.ids_query(compiled))
        if compiled.passes is not None:
            assert _ids(compiler.ids_query(compiled, two_pass=True)) == plain
            count = services._fetch(*compiler.count_query(compiled, two_pass=True))[0][0]
            assert count == len(plain)
        facts = evaluator.contact_facts(tenant=tenant_a)
    parsed = services.segment_parse(tenant=tenant_a, definition=definition)
    context = compiler.CompileContext(tenant=tenant_a, today=NOW.date(), now=NOW)
    assert plain == evaluator.members(parsed, facts, context)


MIXED = {
    "all": [
        {"field": "age", "op": "between", "value": [30, 80]},
        {
            "any": [
                {"field": "condition", "op": "in", "value": ["E11.9"]},
                {"field": "gender", "op": "eq", "value": "female"},
            ]
        },
        {"all": [{"field": "consent", "op": "granted", "value": "marketing_newsletters"}]},
        {"field": "engagement.opened", "op": "within_days", "value": 120},
        {"field": "tag", "op": "not_in", "value": ["vip"]},
    ]
}


def test_a_mixed_definition_splits_into_covered_and_heap_conditions(tenant_a, audience_a):
    with tenant_context(tenant_a):
        compiled = services.segment_compile(tenant=tenant_a, definition=MIXED, now=NOW)
        connection.ensure_connection()
        first, rest = (part.as_string(connection.connection) for part, _ in compiled.passes)
        assert "birth_year" in first
        assert "consent_consentstate" in first
        assert "delivery_engagementevent" in first  # nested "all" flattened into the first pass
        assert "clinical_tokens" in rest
        assert "tag_tokens" in rest
        assert "tokens" not in first
        assert _ids(compiler.ids_query(compiled, two_pass=True)) == _ids(compiler.ids_query(compiled))
        members = _ids(compiler.ids_query(compiled))
        assert services._count(compiled) == len(members)
    assert 0 < len(members) < 300  # the property is not vacuous for this definition


@pytest.mark.parametrize("cheaper", ["plain", "two_pass"])
def test_the_count_runs_the_shape_the_planner_costs_lower(tenant_a, audience_a, monkeypatch, cheaper):
    def cost(query, params):
        two_pass = "first_pass" in services._render(query)
        return 1.0 if two_pass == (cheaper == "two_pass") else 2.0

    monkeypatch.setattr(services, "_cost", cost)
    with tenant_context(tenant_a):
        compiled = services.segment_compile(tenant=tenant_a, definition=MIXED, now=NOW)
        with CaptureQueriesContext(connection) as queries:
            total = services._count(compiled)
        assert total == len(_ids(compiler.ids_query(compiled)))
    counted = [q["sql"] for q in queries.captured_queries if "count(*)" in q["sql"]]
    assert len(counted) == 1
    assert ("first_pass" in counted[0]) == (cheaper == "two_pass")


def test_only_a_root_conjunction_of_both_kinds_gets_two_passes(tenant_a):
    state = {"field": "state", "op": "eq", "value": "CA"}
    tag = {"field": "tag", "op": "in", "value": ["vip"]}
    covered_only = {"all": [state, {"field": "is_minor", "op": "eq", "value": False}]}
    for definition in (covered_only, {"any": [state, tag]}, {"not": {"all": [state, tag]}}, tag, {"all": []}):
        assert services.segment_compile(tenant=tenant_a, definition=definition, now=NOW).passes is None


def _example(field) -> dict | None:
    """One valid condition on `field`, or None for reference fields (segments are covered by
    whatever they contain, which the property test mixes)."""
    samples = {
        "age": {"op": "between", "value": [20, 60]},
        "is_minor": {"op": "eq", "value": True},
        "suppressed": {"op": "eq", "value": True},
        "consent": {"op": "granted", "value": "marketing_newsletters"},
        "added": {"op": "within_days", "value": 30},
        "region": {"op": "eq", "value": "west"},
        "zip3": {"op": "in", "value": ["900"]},
        "condition": {"op": "in", "value": ["E11.9"]},
    }
    if field.name in samples:
        return {"field": field.name, **samples[field.name]}
    if field.name.startswith("engagement."):
        return {"field": field.name, "op": "count_at_least", "value": [2, 30]}
    if field.name == "segment":
        return None
    if field.choices:
        return {"field": field.name, "op": "in", "value": [field.choices[0][0]]}
    operator = "in" if "in" in field.operators else field.operators[0]
    return {"field": field.name, "op": operator, "value": ["x"] if operator == "in" else "x"}


class _Undo(Exception):
    pass


def _runs_on_covered_columns(tenant, condition) -> bool:
    """Whether the condition's count runs when contacts have only the covering index's columns: a
    temporary table of those columns shadows the real one (pg_temp comes first in the search path)."""
    compiled = services.segment_compile(tenant=tenant, definition=condition, now=NOW)
    query, params = compiler.count_query(compiled)
    columns = psycopg_sql.SQL(", ").join(map(psycopg_sql.Identifier, sorted(COVERED_COLUMNS)))
    narrow = psycopg_sql.SQL("CREATE TEMP TABLE contacts_contact AS SELECT {} FROM public.contacts_contact")
    narrow = narrow.format(columns)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(services._render(narrow))
            cursor.execute(services._render(query), params)
            raise _Undo  # roll the temporary table back
    except _Undo:
        return True
    except ProgrammingError:
        return False


def test_every_condition_said_covered_reads_only_the_covering_index_columns(tenant_a, audience_a):
    said = {True: [], False: []}
    with tenant_context(tenant_a):
        for field in FIELDS.values():
            condition = _example(field)
            if condition is None:
                continue
            is_covered = compiler.covered(services.segment_parse(tenant=tenant_a, definition=condition).root)
            assert _runs_on_covered_columns(tenant_a, condition) is is_covered, field.name
            said[is_covered].append(field.name)
    assert {"age", "state", "gender", "consent", "engagement.opened", "added"} <= set(said[True])
    assert {"condition", "tag", "suppressed"} <= set(said[False])  # the check can say no
