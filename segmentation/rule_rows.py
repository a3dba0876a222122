"""The segment builder without JSON: groups of rule rows (field, operator, value) that a plain HTML
form posts, turned into the same definition the JSON API accepts (segmentation/dsl.py validates it).

Two levels cover what marketers build: the segment matches all or any of its groups, and each group
matches all, any or none of its rules. A definition nested deeper (possible through the API) is not
shown as rows: `rows_from_definition` returns None and the page offers the JSON view instead.

Form names: `match`, `g-<i>-match`, `g-<i>-r-<j>-field|op|value|value2`; several values of a
choice field come as repeated `g-<i>-r-<j>-value`. Indices only order rows; gaps are fine.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from .registry import LIST_OPERATORS, PAIR_OPERATORS, ValueType, field_get

GROUP_MATCHES = {"all": "all of", "any": "any of", "none": "none of"}
SEGMENT_MATCHES = {"all": "all of", "any": "any of"}
MAX_GROUPS = 20
MAX_RULES = 100  # per group; the definition language caps the whole at 100 conditions anyway
_RULE_KEY = re.compile(r"^g-(\d{1,3})-r-(\d{1,3})-field$")
_GROUP_KEY = re.compile(r"^g-(\d{1,3})-match$")


@dataclass
class Rule:
    field: str = ""
    op: str = ""
    # as typed: one entry, or one per chosen choice
    values: list[str] = dataclasses.field(default_factory=list)
    value2: str = ""  # the second number of "between" and "at least (times) within (days)"
    errors: list[str] = dataclasses.field(default_factory=list)


@dataclass
class RuleGroup:
    match: str = "all"
    rules: list[Rule] = dataclasses.field(default_factory=list)


@dataclass
class Rows:
    match: str = "all"
    groups: list[RuleGroup] = dataclasses.field(default_factory=list)

    def ensure_blank_rule(self) -> Rows:
        """A page with no rule offers one empty row to start from."""
        if not self.groups:
            self.groups.append(RuleGroup())
        for group in self.groups:
            if not group.rules:
                group.rules.append(Rule())
        return self


def rows_from_post(data: Any) -> Rows:
    """Read the rows from a POST (a QueryDict); unknown match words fall back to `all`."""
    group_indices = {int(m.group(1)) for key in data if (m := _GROUP_KEY.match(key))}
    rule_indices: dict[int, set[int]] = {}
    for key in data:
        if match := _RULE_KEY.match(key):
            rule_indices.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
    rows = Rows(match=_word(data.get("match"), SEGMENT_MATCHES))
    for g in sorted(group_indices | set(rule_indices))[:MAX_GROUPS]:
        group = RuleGroup(match=_word(data.get(f"g-{g}-match"), GROUP_MATCHES))
        for r in sorted(rule_indices.get(g, ()))[:MAX_RULES]:
            prefix = f"g-{g}-r-{r}-"
            group.rules.append(
                Rule(
                    field=data.get(f"{prefix}field", "").strip(),
                    op=data.get(f"{prefix}op", "").strip(),
                    values=[v.strip() for v in data.getlist(f"{prefix}value") if v.strip()],
                    value2=data.get(f"{prefix}value2", "").strip(),
                )
            )
        rows.groups.append(group)
    return rows


def _word(value: Any, allowed: dict[str, str]) -> str:
    return value if value in allowed else "all"


def rows_apply(rows: Rows, action: str) -> Rows:
    """The builder's buttons: add_rule:<group>, remove_rule:<group>:<rule>, add_group, refresh."""
    kind, _, where = action.partition(":")
    parts = [int(p) for p in where.split(":") if p.isdigit()]
    if kind == "add_group" and len(rows.groups) < MAX_GROUPS:
        rows.groups.append(RuleGroup(rules=[Rule()]))
    elif kind == "add_rule" and parts and parts[0] < len(rows.groups):
        rows.groups[parts[0]].rules.append(Rule())
    elif kind == "remove_rule" and len(parts) == 2 and parts[0] < len(rows.groups):
        rules = rows.groups[parts[0]].rules
        if parts[1] < len(rules):
            del rules[parts[1]]
        if not rules:
            del rows.groups[parts[0]]
    for group in rows.groups:
        for rule in group.rules:
            _fit_operator(rule)
    return rows


def _fit_operator(rule: Rule) -> None:
    """After the field changed, an operator the new field does not allow becomes its first one."""
    found = field_get(rule.field)
    if found is not None and rule.op not in found.operators:
        rule.op = found.operators[0]
        rule.values, rule.value2 = [], ""


def rows_definition(rows: Rows) -> tuple[dict, dict[str, Rule]]:
    """The definition the rows mean, and which rule each condition's JSON path came from (so the
    validator's errors can be put back on the row). Rows with no field chosen are left out."""
    places: dict[str, Rule] = {}
    nodes: list[dict] = []
    single = len([g for g in rows.groups if _chosen(g)]) == 1
    for group in (g for g in rows.groups if _chosen(g)):
        rules = [rule for rule in group.rules if rule.field]
        if single and group.match != "none":
            base = f"/{group.match}"
        else:
            inner = "/not/any" if group.match == "none" else f"/{group.match}"
            base = f"/{rows.match}/{len(nodes)}{inner}"
        for i, rule in enumerate(rules):
            places[f"{base}/{i}"] = rule
        conditions = [_condition(rule) for rule in rules]
        nodes.append({"not": {"any": conditions}} if group.match == "none" else {group.match: conditions})
    if single and "not" not in nodes[0]:
        return nodes[0], places
    return {rows.match: nodes}, places


def _chosen(group: RuleGroup) -> bool:
    return any(rule.field for rule in group.rules)


def _condition(rule: Rule) -> dict:
    return {"field": rule.field, "op": rule.op, "value": _value(rule)}


def _value(rule: Rule) -> Any:
    """Typed as the definition language expects; what cannot be read is passed on as typed, so the
    validator names the problem on its row."""
    found = field_get(rule.field)
    first = rule.values[0] if rule.values else ""
    if rule.op in PAIR_OPERATORS or rule.op == "between":
        return [_number(first), _number(rule.value2)]
    if rule.op in LIST_OPERATORS:
        if found is not None and found.choices:
            return list(rule.values)
        return [part.strip() for value in rule.values for part in value.split(",") if part.strip()]
    if found is not None and found.type == ValueType.BOOLEAN:
        return {"yes": True, "no": False}.get(first, first)
    if found is not None and found.type in (ValueType.INTEGER, ValueType.DAYS):
        return _number(first)
    return first


def _number(text: str) -> Any:
    return int(text) if re.fullmatch(r"-?\d{1,9}", text) else text


def rows_from_definition(definition: Any) -> Rows | None:
    """Rows for a saved definition, or None when it nests deeper than the rows can show."""
    if _is_condition(definition):
        return Rows(groups=[RuleGroup(rules=[_rule(definition)])])
    if not isinstance(definition, dict) or len(definition) != 1:
        return None
    ((key, children),) = definition.items()
    group = _group(definition)
    if group is not None:
        return Rows(groups=[group])
    if key not in SEGMENT_MATCHES or not isinstance(children, list):
        return None
    groups = []
    for child in children:
        found = RuleGroup(rules=[_rule(child)]) if _is_condition(child) else _group(child)
        if found is None:
            return None
        groups.append(found)
    return Rows(match=key, groups=groups)


def _group(node: Any) -> RuleGroup | None:
    """One level: all/any of conditions, or none of them (`{"not": {"any": [...]}}`)."""
    if not isinstance(node, dict) or len(node) != 1:
        return None
    ((key, children),) = node.items()
    match = key
    if key == "not":
        if _is_condition(children):
            return RuleGroup(match="none", rules=[_rule(children)])
        if not isinstance(children, dict) or list(children) != ["any"]:
            return None
        match, children = "none", children["any"]
    if match not in GROUP_MATCHES or not isinstance(children, list):
        return None
    if not all(_is_condition(child) for child in children):
        return None
    return RuleGroup(match=match, rules=[_rule(child) for child in children])


def _is_condition(node: Any) -> bool:
    return isinstance(node, dict) and set(node) == {"field", "op", "value"}


def _rule(node: dict) -> Rule:
    value = node["value"]
    if node["op"] in PAIR_OPERATORS or node["op"] == "between":
        pair = value if isinstance(value, list) and len(value) == 2 else ["", ""]
        return Rule(node["field"], node["op"], [str(pair[0])], str(pair[1]))
    if isinstance(value, list):
        found = field_get(node["field"])
        values = [str(v) for v in value]
        return Rule(node["field"], node["op"], values if found and found.choices else [", ".join(values)])
    if isinstance(value, bool):
        return Rule(node["field"], node["op"], ["yes" if value else "no"])
    return Rule(node["field"], node["op"], [str(value)])


def rows_place_errors(errors: list[dict], places: dict[str, Rule], rows: Rows) -> list[str]:
    """Put each validator error on the rule it names ("Group 1, rule 2: …"); the rest are returned."""
    numbers = {
        id(rule): (g + 1, r + 1) for g, group in enumerate(rows.groups) for r, rule in enumerate(group.rules)
    }
    general = []
    for error in errors:
        path = error["path"]
        prefix = max((p for p in places if path == p or path.startswith(p + "/")), key=len, default=None)
        if prefix is None:
            general.append(error["message"])
            continue
        rule = places[prefix]
        found = field_get(rule.field)
        what = "Value" if path[len(prefix) :].startswith("/value") else "Operator"
        if path.endswith("/field"):
            what = "Field"
        label = found.label if found else rule.field
        message = f"{label} {error['message']}" if what == "Value" else error["message"]
        rule.errors.append(f"{what}: {message}")
        g, r = numbers[id(rule)]
        general.append(f"Group {g}, rule {r}: {rule.errors[-1]}")
    return general


def is_rule_key(key: str) -> bool:
    return bool(_RULE_KEY.match(key))
