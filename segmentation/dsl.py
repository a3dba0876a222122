"""The segment definition language: validation and parsing into a tree the compiler and the
evaluator both walk.

    {"all": [{"field": "age", "op": "between", "value": [40, 65]},
             {"any": [{"field": "condition", "op": "in", "value": ["E11.9"]},
                      {"field": "journey_stage", "op": "eq", "value": "post_visit"}]},
             {"not": {"field": "consent", "op": "granted", "value": "research"}}]}

A node is a group ({"all": [...]}, {"any": [...]}, {"not": node}) or a condition ({"field", "op",
"value"}). Anything else — whatever the JSON — ends in DefinitionError naming the offending node by
a JSON-pointer path ("/all/1/any/0/value"); the parser never raises anything else.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from healthmail.errors import ApplicationError

from .registry import LIST_OPERATORS, MAX_TIMES, PAIR_OPERATORS, Field, ValueType, field_get

MAX_DEPTH = 6  # nested groups
MAX_CONDITIONS = 100  # in one definition
MAX_EXPANDED_CONDITIONS = 400  # with every referenced segment inlined
MAX_REFERENCE_DEPTH = 5  # a segment in a segment in a segment...
MAX_LIST_VALUES = 500
MAX_DEFINITION_BYTES = 64_000
MAX_INTEGER = 130
MAX_DAYS = 3650
GROUP_KEYS = ("all", "any", "not")
CONDITION_KEYS = frozenset({"field", "op", "value"})


class DefinitionError(ApplicationError):
    status_code = 422
    title = "Invalid segment definition"

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        first = errors[0]
        super().__init__(
            f"{first[0] or '/'}: {first[1]}",
            code="invalid_definition",
            extra={"errors": [{"path": path or "/", "message": message} for path, message in errors]},
        )


@dataclass(frozen=True)
class Group:
    kind: str  # all | any | not
    children: tuple[Node, ...]
    path: str


@dataclass(frozen=True)
class Condition:
    field: Field
    op: str
    value: Any  # normalized: tuples for lists, TopicRef / SegmentRef for references
    path: str


Node = Group | Condition


@dataclass(frozen=True)
class TopicRef:
    key: str
    topic_id: uuid.UUID


@dataclass(frozen=True)
class SegmentRef:
    segment_id: uuid.UUID
    root: Node


@dataclass(frozen=True)
class Parsed:
    root: Node
    uses_phi: bool
    condition_count: int
    references: tuple[uuid.UUID, ...]  # segments referenced directly


@dataclass(frozen=True)
class Lookup:
    """Tenant-scoped resolution of what a definition names (provided by selectors)."""

    topic_id: Callable[[str], uuid.UUID | None]
    segment: Callable[[uuid.UUID], tuple[str, Any] | None]  # id -> (name, definition)


class _Invalid(Exception):
    def __init__(self, path: str, message: str):
        self.path, self.message = path, message


def parse(definition: Any, *, lookup: Lookup, segment_id: uuid.UUID | None = None) -> Parsed:
    """Validate and parse; `segment_id` is the segment being saved (a reference back is a cycle)."""
    try:
        size = len(json.dumps(definition, allow_nan=False))
    except (TypeError, ValueError, RecursionError):
        raise DefinitionError([("", "is not a JSON document")]) from None
    if size > MAX_DEFINITION_BYTES:
        raise DefinitionError([("", f"is larger than {MAX_DEFINITION_BYTES} bytes")])
    parser = _Parser(lookup, stack=(segment_id,) if segment_id else ())
    try:
        root = parser.node(definition, "", depth=0)
    except _Invalid as error:
        raise DefinitionError([(error.path, error.message)]) from None
    if parser.count > MAX_CONDITIONS:
        raise DefinitionError([("", f"has more than {MAX_CONDITIONS} conditions")])
    return Parsed(root, parser.uses_phi, parser.count, tuple(dict.fromkeys(parser.references)))


class _Parser:
    def __init__(self, lookup: Lookup, stack: tuple[uuid.UUID, ...], budget: list[int] | None = None):
        self.lookup = lookup
        self.stack = stack
        self.count = 0
        self.uses_phi = False
        self.references: list[uuid.UUID] = []
        # Shared with parsers of referenced segments: the whole inlined query stays bounded.
        self.budget = budget if budget is not None else [MAX_EXPANDED_CONDITIONS]

    def node(self, raw: Any, path: str, depth: int) -> Node:
        if not isinstance(raw, dict):
            raise _Invalid(path, "must be an object: a group (all / any / not) or a condition")
        group_keys = [key for key in GROUP_KEYS if key in raw]
        if group_keys:
            if len(raw) != 1:
                raise _Invalid(path, "a group has exactly one key: all, any or not")
            return self.group(group_keys[0], raw[group_keys[0]], path, depth + 1)
        if set(raw) != CONDITION_KEYS:
            unknown = sorted(str(key)[:40] for key in raw if key not in CONDITION_KEYS)
            if unknown:
                raise _Invalid(path, f"unknown keys: {', '.join(unknown)}")
            missing = sorted(CONDITION_KEYS - set(raw))
            raise _Invalid(path, f"a condition needs {', '.join(missing)}")
        return self.condition(raw, path)

    def group(self, kind: str, raw: Any, path: str, depth: int) -> Group:
        path = f"{path}/{kind}"
        if depth > MAX_DEPTH:
            raise _Invalid(path, f"groups nest more than {MAX_DEPTH} deep")
        if kind == "not":
            return Group(kind, (self.node(raw, path, depth),), path)
        if not isinstance(raw, list):
            raise _Invalid(path, "must be a list of conditions or groups")
        if len(raw) > MAX_CONDITIONS:
            raise _Invalid(path, f"has more than {MAX_CONDITIONS} items")
        return Group(kind, tuple(self.node(item, f"{path}/{i}", depth) for i, item in enumerate(raw)), path)

    def condition(self, raw: dict, path: str) -> Condition:
        self.count += 1
        self.budget[0] -= 1
        if self.count > MAX_CONDITIONS:
            raise _Invalid(path, f"the definition has more than {MAX_CONDITIONS} conditions")
        if self.budget[0] < 0:
            raise _Invalid(path, f"with referenced segments, more than {MAX_EXPANDED_CONDITIONS} conditions")
        field = field_get(raw["field"])
        if field is None:
            name = raw["field"] if isinstance(raw["field"], str) else ""
            shown = re.sub(r"[^A-Za-z0-9_.]", "", name)[:40]
            raise _Invalid(f"{path}/field", f"unknown field {shown!r}" if shown else "unknown field")
        op = raw["op"]
        if not isinstance(op, str) or op not in field.operators:
            raise _Invalid(f"{path}/op", f"{field.label} allows the operators: {', '.join(field.operators)}")
        value = self.value(field, op, raw["value"], f"{path}/value")
        self.uses_phi = self.uses_phi or field.is_phi
        return Condition(field, op, value, path)

    # --- values ------------------------------------------------------------------------------

    def value(self, field: Field, op: str, raw: Any, path: str) -> Any:
        if op in PAIR_OPERATORS:
            if not isinstance(raw, list) or len(raw) != 2:
                raise _Invalid(path, "must be a list of two numbers [times, days]")
            times, days = raw
            if isinstance(times, bool) or not isinstance(times, int) or not 1 <= times <= MAX_TIMES:
                raise _Invalid(f"{path}/0", f"must be a whole number from 1 to {MAX_TIMES}")
            return (times, self.scalar(field, days, f"{path}/1"))
        if op == "between":
            if not isinstance(raw, list) or len(raw) != 2:
                raise _Invalid(path, "must be a list of two numbers [from, to]")
            low, high = (self.scalar(field, item, f"{path}/{i}") for i, item in enumerate(raw))
            if low > high:
                raise _Invalid(path, "the first number must not be greater than the second")
            return (low, high)
        if op in LIST_OPERATORS:
            if not isinstance(raw, list) or not raw:
                raise _Invalid(path, "must be a non-empty list")
            if len(raw) > MAX_LIST_VALUES:
                raise _Invalid(path, f"may hold at most {MAX_LIST_VALUES} values")
            items = (self.scalar(field, item, f"{path}/{i}") for i, item in enumerate(raw))
            return tuple(dict.fromkeys(items))
        if op in ("lt", "lte", "gt", "gte") and field.type != ValueType.INTEGER:
            raise _Invalid(path, "must be a number")
        return self.scalar(field, raw, path)

    def scalar(self, field: Field, raw: Any, path: str) -> Any:
        kind = field.type
        if kind in (ValueType.INTEGER, ValueType.DAYS):
            low, high = (0, MAX_INTEGER) if kind == ValueType.INTEGER else (1, MAX_DAYS)
            if isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
                raw = int(raw)
            if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
                raise _Invalid(path, f"must be a whole number from {low} to {high}")
            return raw
        if kind == ValueType.BOOLEAN:
            if not isinstance(raw, bool):
                raise _Invalid(path, "must be true or false")
            return raw
        text = self.text(field, raw, path)
        if kind == ValueType.CHOICE:
            value = text.lower() if text.lower() in field.choice_values else text.upper()
            if value not in field.choice_values:
                raise _Invalid(path, f"is not one of the choices for {field.label}")
            return value
        if kind == ValueType.TOPIC:
            topic_id = self.lookup.topic_id(text)
            if topic_id is None:
                raise _Invalid(path, "is not a consent topic of this organization")
            return TopicRef(text, topic_id)
        if kind == ValueType.SEGMENT:
            return self.segment(text, path)
        if field.pattern and not re.fullmatch(field.pattern, text):
            raise _Invalid(path, f"is not a valid {field.label}")
        return text.lower() if field.lower else text.upper() if field.upper else text

    def text(self, field: Field, raw: Any, path: str) -> str:
        if not isinstance(raw, str):
            raise _Invalid(path, "must be text")
        text = raw.strip()
        if not text:
            raise _Invalid(path, "must not be empty")
        if len(text) > field.max_length:
            raise _Invalid(path, f"is longer than {field.max_length} characters")
        if any(ord(char) < 32 or 0xD800 <= ord(char) <= 0xDFFF for char in text):
            raise _Invalid(path, "contains control characters")
        return text

    def segment(self, text: str, path: str) -> SegmentRef:
        try:
            segment_id = uuid.UUID(text)
        except ValueError:
            raise _Invalid(path, "must be a segment id") from None
        if segment_id in self.stack:
            raise _Invalid(path, "this reference makes a cycle (a segment would contain itself)")
        if len(self.stack) >= MAX_REFERENCE_DEPTH:
            raise _Invalid(path, f"segments reference each other more than {MAX_REFERENCE_DEPTH} deep")
        found = self.lookup.segment(segment_id)
        if found is None:
            raise _Invalid(path, "is not a segment of this organization")
        name, definition = found
        inner = _Parser(self.lookup, (*self.stack, segment_id), self.budget)
        try:
            root = inner.node(definition, "", depth=0)
        except _Invalid as error:
            raise _Invalid(path, f"segment {name!r} cannot be used: {error.message}") from None
        self.uses_phi = self.uses_phi or inner.uses_phi
        self.references.append(segment_id)
        return SegmentRef(segment_id, root)
