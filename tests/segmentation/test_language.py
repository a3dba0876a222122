"""The compiled SQL selects exactly what the pure-Python evaluator selects, for random valid
definitions over the same synthetic contacts; bad definitions only ever raise DefinitionError."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contacts.models import JourneyStage, SensitiveCategory
from healthmail.disclosure import Viewer
from healthmail.tenants.context import tenant_context
from segmentation import compiler, evaluator, services
from segmentation.dsl import MAX_DEPTH, MAX_LIST_VALUES, DefinitionError
from segmentation.registry import FIELDS, REGIONS

pytestmark = pytest.mark.django_db
NOW = datetime.datetime(2026, 3, 1, 12, tzinfo=datetime.UTC)
SLOW = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _values(options, op, k=3):
    if op in ("in", "not_in", "all"):
        return st.lists(st.sampled_from(options), min_size=1, max_size=k)
    return st.sampled_from(options)


def _choice(field, options, ops=("eq", "neq", "in", "not_in")):
    return st.sampled_from(ops).flatmap(
        lambda op: _values(options, op).map(lambda v: {"field": field, "op": op, "value": v})
    )


def _tokens(field, options):
    return _choice(field, options, ("in", "not_in", "all"))


def _age():
    single = st.tuples(st.sampled_from(["eq", "neq", "lt", "lte", "gt", "gte"]), st.integers(0, 100))
    between = st.tuples(st.just("between"), st.lists(st.integers(0, 100), min_size=2, max_size=2).map(sorted))
    return st.one_of(single, between).map(lambda t: {"field": "age", "op": t[0], "value": t[1]})


CONDITIONS = st.one_of(
    _age(),
    _choice("gender", ["female", "male", "nonbinary", "other"]),
    _choice("language", ["en", "es", "zh", "fr"]),
    _choice("state", ["CA", "tx", "FL", "NY", "WA", "NH", "PR", "AK"]),
    _choice("zip3", ["900", "750", "331", "000", "123"]),
    _choice("region", list(REGIONS)),
    _choice("journey_stage", list(JourneyStage.values)),
    st.booleans().map(lambda b: {"field": "is_minor", "op": "eq", "value": b}),
    st.booleans().map(lambda b: {"field": "suppressed", "op": "eq", "value": b}),
    _tokens("insurance_type", ["commercial", "Medicare", "medicaid", "none"]),
    _tokens("marital_status", ["single", "married", "widowed"]),
    _tokens("condition", ["E11.9", "I10", "e78.5", "F32.9", "E11", "B20"]),
    _tokens("medication", ["METFORMIN", "lisinopril", "SERTRALINE", "ASPIRIN"]),
    _tokens("vaccination", ["INFLUENZA-2024", "TDAP", "HPV"]),
    _tokens("procedure", ["45378", "77067", "99999"]),
    _tokens("provider", ["Dr. Synthetic Alpha", "dr. synthetic beta", "Dr. Nobody"]),
    _tokens("tag", ["newsletter", "VIP", "telehealth", "none"]),
    _choice("sensitive_category", list(SensitiveCategory.values), ("in", "not_in")),
    st.tuples(
        st.sampled_from(["granted", "not_granted"]),
        st.sampled_from(["research", "marketing_newsletters", "fundraising"]),
    ).map(lambda t: {"field": "consent", "op": t[0], "value": t[1]}),
    st.tuples(st.sampled_from(["within_days", "not_within_days"]), st.integers(1, 500)).map(
        lambda t: {"field": "added", "op": t[0], "value": t[1]}
    ),
    st.tuples(
        st.sampled_from(["engagement.opened", "engagement.clicked", "engagement.converted"]),
        st.sampled_from(["within_days", "not_within_days"]),
        st.integers(1, 150),
    ).map(lambda t: {"field": t[0], "op": t[1], "value": t[2]}),
    st.tuples(
        st.sampled_from(["engagement.opened", "engagement.clicked"]), st.integers(1, 4), st.integers(1, 150)
    ).map(lambda t: {"field": t[0], "op": "count_at_least", "value": [t[1], t[2]]}),
)


def _groups(children):
    return st.one_of(
        st.lists(children, min_size=0, max_size=4).map(lambda c: {"all": c}),
        st.lists(children, min_size=0, max_size=4).map(lambda c: {"any": c}),
        children.map(lambda c: {"not": c}),
    )


DEFINITIONS = st.recursive(CONDITIONS, _groups, max_leaves=12)


def _expected(tenant, definition, facts):
    parsed = services.segment_parse(tenant=tenant, definition=definition)
    ctx = compiler.CompileContext(tenant=tenant, today=NOW.date(), now=NOW)
    return evaluator.members(parsed, facts, ctx)


@SLOW
@given(definition=DEFINITIONS)
def test_compiled_sql_selects_what_the_evaluator_selects(tenant_a, audience_a, audience_b, definition):
    with tenant_context(tenant_a):
        facts = evaluator.contact_facts(tenant=tenant_a)
    assert len(facts) == 300
    got = services.segment_member_ids(tenant=tenant_a, definition=definition, now=NOW)
    assert got == _expected(tenant_a, definition, facts)


def test_the_property_is_not_vacuous(tenant_a, audience_a):
    """The audience is varied enough that typical conditions split it."""
    for definition in (
        {"field": "condition", "op": "in", "value": ["E11.9"]},
        {"field": "age", "op": "between", "value": [40, 65]},
        {"field": "consent", "op": "granted", "value": "marketing_newsletters"},
        {"field": "suppressed", "op": "eq", "value": True},
        {"field": "age", "op": "gte", "value": 90},
        {"field": "added", "op": "within_days", "value": 100},
    ):
        count = len(services.segment_member_ids(tenant=tenant_a, definition=definition, now=NOW))
        assert 0 < count < 300, definition


def test_segment_counts_only_its_own_tenant(tenant_a, tenant_b, audience_a, audience_b):
    everyone = {"all": []}
    assert (
        services.segment_count(
            viewer=Viewer.trusted(), tenant=tenant_a, definition=everyone, breakdown=False
        ).count
        == 300
    )
    assert (
        services.segment_count(
            viewer=Viewer.trusted(), tenant=tenant_b, definition=everyone, breakdown=False
        ).count
        == 60
    )
    # Tokens are keyed per tenant: B's codes computed for A match nothing of B's contacts.
    ids_a = services.segment_member_ids(
        tenant=tenant_a, definition={"field": "condition", "op": "in", "value": ["I10"]}
    )
    with tenant_context(tenant_b):
        b_ids = {c.pk for c in audience_b}
    assert ids_a
    assert not set(ids_a) & b_ids


def test_compiled_query_is_deterministic_and_parameterized(tenant_a):
    definition = {
        "all": [
            {"field": "tag", "op": "in", "value": ["x'); DROP TABLE contacts_contact; --"]},
            {"field": "gender", "op": "eq", "value": "' OR 1=1 --"},
        ]
    }
    first = services.segment_compile(tenant=tenant_a, definition=definition, now=NOW)
    second = services.segment_compile(tenant=tenant_a, definition=definition, now=NOW)
    query, params = compiler.count_query(first)
    connection.ensure_connection()
    text = query.as_string(connection.connection)
    assert text == compiler.count_query(second)[0].as_string(connection.connection)
    assert params == compiler.count_query(second)[1]
    assert "DROP" not in text
    assert "OR 1=1" not in text
    assert "' or 1=1 --" in params  # gender is matched lower-cased, as stored


def test_sql_looking_values_are_only_values(tenant_a, audience_a):
    definition = {
        "any": [
            {"field": "gender", "op": "in", "value": ["' OR '1'='1", "female); DELETE FROM x; --"]},
            {"field": "tag", "op": "all", "value": ["'; DROP TABLE contacts_contact; --"]},
        ]
    }
    nobody = services.segment_count(viewer=Viewer.trusted(), tenant=tenant_a, definition=definition)
    assert (nobody.display, nobody.empty) == ("0", True)
    assert (
        services.segment_count(
            viewer=Viewer.trusted(), tenant=tenant_a, definition={"all": []}, breakdown=False
        ).count
        == 300
    )


def test_uses_phi_is_derived_from_the_fields(tenant_a):
    plain = {"all": [{"field": "state", "op": "eq", "value": "CA"}]}
    clinical = {"not": {"any": [plain, {"field": "medication", "op": "in", "value": ["METFORMIN"]}]}}
    assert services.segment_parse(tenant=tenant_a, definition=plain).uses_phi is False
    assert services.segment_parse(tenant=tenant_a, definition=clinical).uses_phi is True


@pytest.mark.parametrize(
    ("definition", "path", "words"),
    [
        ({"field": "ssn", "op": "eq", "value": "1"}, "/field", "unknown field"),
        ({"field": "age", "op": "in", "value": [1]}, "/op", "operators"),
        ({"field": "age", "op": "eq", "value": "forty"}, "/value", "whole number"),
        ({"field": "age", "op": "eq", "value": True}, "/value", "whole number"),
        ({"field": "age", "op": "between", "value": [65, 40]}, "/value", "greater"),
        (
            {
                "all": [
                    {"field": "state", "op": "eq", "value": "CA"},
                    {"field": "state", "op": "eq", "value": "XX"},
                ]
            },
            "/all/1/value",
            "choices",
        ),
        (
            {"all": [{"any": [{"field": "tag", "op": "in", "value": list(range(3))}]}]},
            "/all/0/any/0/value/0",
            "text",
        ),
        ({"field": "tag", "op": "in", "value": ["a"] * (MAX_LIST_VALUES + 1)}, "/value", "at most"),
        ({"field": "tag", "op": "in", "value": ["x" * 101]}, "/value/0", "longer"),
        ({"field": "consent", "op": "granted", "value": "no-such-topic"}, "/value", "topic"),
        (
            {"field": "segment", "op": "in_segment", "value": "00000000-0000-0000-0000-000000000000"},
            "/value",
            "not a segment",
        ),
        ({"all": [], "any": []}, "", "exactly one key"),
        ({"field": "age", "op": "eq"}, "", "needs value"),
        ([1, 2], "", "must be an object"),
    ],
)
def test_invalid_definitions_name_the_node(tenant_a, definition, path, words):
    with pytest.raises(DefinitionError) as caught:
        services.segment_parse(tenant=tenant_a, definition=definition)
    (error_path, message), *_ = caught.value.errors
    assert error_path == path
    assert words in message


def test_depth_and_size_limits(tenant_a):
    leaf = {"field": "is_minor", "op": "eq", "value": False}
    nested = leaf
    for _ in range(MAX_DEPTH):
        nested = {"not": nested}
    services.segment_parse(tenant=tenant_a, definition=nested)
    with pytest.raises(DefinitionError, match="deep"):
        services.segment_parse(tenant=tenant_a, definition={"all": [nested]})
    with pytest.raises(DefinitionError, match="more than 100"):
        services.segment_parse(tenant=tenant_a, definition={"all": [leaf] * 101})


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
KEYS = st.sampled_from(["all", "any", "not", "field", "op", "value"]) | st.text(max_size=6)
NEAR_VALID = st.recursive(
    CONDITIONS
    | st.fixed_dictionaries(
        {
            "field": st.sampled_from(list(FIELDS)) | JSON,
            "op": st.sampled_from(["eq", "in", "between", "granted", "all", "lt"]) | JSON,
            "value": JSON,
        }
    ),
    lambda children: st.dictionaries(KEYS, children | st.lists(children, max_size=3), min_size=1, max_size=2),
    max_leaves=10,
)


@SLOW
@given(definition=JSON | NEAR_VALID)
def test_fuzzed_definitions_only_raise_definition_errors(tenant_a, definition):
    try:
        result = services.segment_count(
            viewer=Viewer.trusted(), tenant=tenant_a, definition=definition, breakdown=False
        )
    except DefinitionError as error:  # the only exception allowed
        errors = error.errors
    else:
        assert (result.count, result.empty) == (0, True)  # no contacts in this test
        return
    assert errors
    assert all(path == "" or path.startswith("/") for path, _ in errors)
