"""The rule rows: what a plain form posts becomes the definition the JSON API accepts, saved
definitions come back as rows, and the validator's errors land on the row they are about."""

from __future__ import annotations

import pytest
from django.http import QueryDict

from segmentation import rule_rows
from segmentation.dsl import DefinitionError, Lookup, parse

AGE_1 = {"field": "age", "op": "gte", "value": 1}
NO_LOOKUP = Lookup(topic_id=lambda key: None, segment=lambda segment_id: None)


def post(**fields) -> QueryDict:
    data = QueryDict(mutable=True)
    for key, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            data.appendlist(key.replace("_", "-"), item)
    return data


def test_two_rules_in_one_group_make_one_flat_group():
    data = post(
        g_0_match="all",
        g_0_r_0_field="age",
        g_0_r_0_op="between",
        g_0_r_0_value="40",
        g_0_r_0_value2="65",
        g_0_r_1_field="state",
        g_0_r_1_op="in",
        g_0_r_1_value=["CA", "NY"],
    )
    definition, _ = rule_rows.rows_definition(rule_rows.rows_from_post(data))
    assert definition == {
        "all": [
            {"field": "age", "op": "between", "value": [40, 65]},
            {"field": "state", "op": "in", "value": ["CA", "NY"]},
        ]
    }
    assert parse(definition, lookup=NO_LOOKUP).condition_count == 2


def test_groups_combine_and_none_of_is_not_any():
    data = post(
        match="any",
        g_0_match="all",
        g_0_r_0_field="condition",
        g_0_r_0_op="in",
        g_0_r_0_value="E11.9, I10",
        g_3_match="none",
        g_3_r_5_field="is_minor",
        g_3_r_5_op="eq",
        g_3_r_5_value="yes",
        g_3_r_6_field="",  # a row left blank is not a rule
    )
    rows = rule_rows.rows_from_post(data)
    definition, _ = rule_rows.rows_definition(rows)
    assert definition == {
        "any": [
            {"all": [{"field": "condition", "op": "in", "value": ["E11.9", "I10"]}]},
            {"not": {"any": [{"field": "is_minor", "op": "eq", "value": True}]}},
        ]
    }
    again = rule_rows.rows_from_definition(definition)
    assert again is not None
    assert rule_rows.rows_definition(again)[0] == definition


@pytest.mark.parametrize(
    "definition",
    [
        {"all": []},
        {"any": [{"field": "tag", "op": "all", "value": ["vip", "2026"]}]},
        {"all": [{"field": "engagement.opened", "op": "count_at_least", "value": [2, 30]}]},
        {"any": [{"field": "age", "op": "gte", "value": 18}, {"not": {"any": [AGE_1]}}]},
    ],
)
def test_saved_definitions_come_back_as_the_same_rows(definition):
    rows = rule_rows.rows_from_definition(definition)
    assert rows is not None
    assert rule_rows.rows_definition(rows)[0] == _wrap_conditions(definition)


def _wrap_conditions(definition):
    """A condition beside groups comes back as a group of one rule (the same meaning)."""
    ((key, children),) = definition.items()
    if len(children) < 2 or all("field" in child for child in children):
        return definition
    return {key: [{"all": [child]} if "field" in child else child for child in children]}


@pytest.mark.parametrize(
    ("definition", "expected"),
    [
        ({"field": "age", "op": "gte", "value": 18}, {"all": [{"field": "age", "op": "gte", "value": 18}]}),
        ({"not": {"any": [AGE_1]}}, {"all": [{"not": {"any": [AGE_1]}}]}),
    ],
)
def test_a_lone_condition_or_exclusion_is_kept_in_meaning(definition, expected):
    rows = rule_rows.rows_from_definition(definition)
    assert rows is not None
    assert rule_rows.rows_definition(rows)[0] == expected


@pytest.mark.parametrize(
    "definition",
    [
        {"all": [{"all": [{"any": [{"field": "age", "op": "gte", "value": 1}]}]}]},
        {
            "not": {
                "all": [{"field": "age", "op": "gte", "value": 1}, {"field": "age", "op": "lt", "value": 9}]
            }
        },
        [],
    ],
)
def test_deeper_definitions_are_not_forced_into_rows(definition):
    assert rule_rows.rows_from_definition(definition) is None


def test_errors_land_on_their_row_with_the_field_named():
    data = post(
        match="all",
        g_0_match="all",
        g_0_r_0_field="age",
        g_0_r_0_op="gte",
        g_0_r_0_value="18",
        g_1_match="any",
        g_1_r_0_field="zip3",
        g_1_r_0_op="eq",
        g_1_r_0_value="9021",
        g_1_r_1_field="age",
        g_1_r_1_op="gte",
        g_1_r_1_value="old",
    )
    rows = rule_rows.rows_from_post(data)
    definition, places = rule_rows.rows_definition(rows)
    with pytest.raises(DefinitionError) as raised:
        parse(definition, lookup=NO_LOOKUP)
    messages = rule_rows.rows_place_errors(raised.value.extra["errors"], places, rows)
    assert messages == ["Group 2, rule 1: Value: ZIP code (first 3 digits) is longer than 3 characters"]
    assert rows.groups[1].rules[0].errors == ["Value: ZIP code (first 3 digits) is longer than 3 characters"]
    assert rows.groups[1].rules[1].errors == []


def test_changing_the_field_resets_an_operator_it_does_not_allow():
    rows = rule_rows.rows_from_post(post(g_0_r_0_field="state", g_0_r_0_op="between", g_0_r_0_value="4"))
    rows = rule_rows.rows_apply(rows, "refresh")
    assert (rows.groups[0].rules[0].op, rows.groups[0].rules[0].values) == ("eq", [])


def test_buttons_add_and_remove_rows():
    rows = rule_rows.rows_from_post(post(g_0_r_0_field="age", g_0_r_0_op="gte", g_0_r_0_value="1"))
    rows = rule_rows.rows_apply(rows, "add_rule:0")
    rows = rule_rows.rows_apply(rows, "add_group")
    assert [len(g.rules) for g in rows.groups] == [2, 1]
    rows = rule_rows.rows_apply(rows, "remove_rule:1:0")
    assert [len(g.rules) for g in rows.groups] == [2]
    rows = rule_rows.rows_apply(rows, "remove_rule:7:0")  # out of range: nothing happens
    assert [len(g.rules) for g in rows.groups] == [2]
