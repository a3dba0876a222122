"""How a field compiles: each strategy gives the SQL of one condition AND the same rule in Python.

Keeping both next to each other is what lets the property tests hold the compiler to the evaluator.
SQL is built with psycopg `sql` composition: identifiers come from the registry (never from the
definition), every user value travels as a bound parameter (`%s`). Contacts are aliased `c`.
Every condition is written so that it is never NULL (columns are NOT NULL or guarded with
IS NOT NULL), so NOT behaves the same in SQL and in Python.

`covered(value)` says whether a condition reads only columns of the contacts' covering index
(`contact_segment_cover`), looking other tables up by contact id: such conditions can be answered
without reading contact rows, the first pass of a two-pass count (segmentation/compiler.py).
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.db import models
from psycopg import sql

from consent.models import Channel, ConsentEvent, ConsentState, Suppression
from contacts import icd10
from contacts.models import Contact
from contacts.reference import AGE_FOLDED_AT
from healthmail.crypto import blind

SqlPart = tuple[sql.Composable, list[Any]]
MAX_AGE = 130


@dataclass(frozen=True)
class ContactFacts:
    """What the evaluator may read of a contact: the same plaintext columns and tokens the SQL reads
    (nothing is decrypted), plus consent and suppression looked up for it."""

    id: uuid.UUID
    birth_year: int | None
    age_90_or_older: bool
    zip3: str
    state: str
    gender: str
    language: str
    journey_stage: str
    is_minor: bool
    created_at: datetime.datetime
    clinical_tokens: frozenset[int]
    demographic_tokens: frozenset[int]
    tag_tokens: frozenset[int]
    sensitive_categories: frozenset[str]
    granted_topics: frozenset[uuid.UUID] = field(default_factory=frozenset)
    suppressed: bool = False
    # Human (not bot) engagement events: (kind, occurred_at), from the registered engagement source.
    engagement: tuple[tuple[str, datetime.datetime], ...] = ()


class Context(Protocol):
    """What a strategy reads while compiling (read only: the compiler's context is frozen)."""

    @property
    def tenant(self) -> Any: ...

    @property
    def today(self) -> datetime.date: ...

    @property
    def now(self) -> datetime.datetime: ...


class Strategy(Protocol):
    def sql(self, op: str, value: Any, ctx: Context) -> SqlPart: ...

    def test(self, op: str, value: Any, facts: ContactFacts, ctx: Context) -> bool: ...

    def covered(self, value: Any) -> bool: ...


def _index_columns(name: str) -> frozenset[str]:
    """The columns one of the contact model's indexes holds (keys and included payload)."""
    index = next(index for index in Contact._meta.indexes if index.name == name)
    return frozenset(_column(f) for f in (*index.fields, *index.include))


def _column(name: str) -> str:
    model_field = Contact._meta.get_field(name)
    if not isinstance(model_field, models.Field) or model_field.column is None:  # an index names columns
        raise TypeError(f"Contact.{name} is not a column")
    return model_field.column


COVERED_COLUMNS = _index_columns("contact_segment_cover")


def _col(name: str) -> sql.Composable:
    return sql.SQL("c.{}").format(sql.Identifier(name))


_P = sql.Placeholder()


@dataclass(frozen=True)
class Column:
    """A plaintext column compared with eq/neq/in/not_in (text or boolean)."""

    column: str

    def sql(self, op: str, value: Any, ctx: Context) -> SqlPart:
        col = _col(self.column)
        template = {
            "eq": "{} = {}",
            "neq": "{} <> {}",
            "in": "{} = ANY({})",
            "not_in": "{} <> ALL({})",
        }[op]
        return sql.SQL(template).format(col, _P), [list(value) if isinstance(value, tuple) else value]

    def covered(self, value: Any) -> bool:
        return self.column in COVERED_COLUMNS

    def test(self, op: str, value: Any, facts: ContactFacts, ctx: Context) -> bool:
        actual = getattr(facts, self.column)
        if op == "eq":
            return actual == value
        if op == "neq":
            return actual != value
        if op == "in":
            return actual in value
        return actual not in value


@dataclass(frozen=True)
class StateGroup:
    """A named group of states (a census region), compiled to the state column."""

    groups: dict[str, tuple[str, ...]]

    def _states(self, op: str, value: Any) -> list[str]:
        names = [value] if op in ("eq", "neq") else list(value)
        return sorted({state for name in names for state in self.groups[name]})

    def sql(self, op: str, value: Any, ctx: Context) -> SqlPart:
        template = "c.state = ANY({})" if op in ("eq", "in") else "c.state <> ALL({})"
        return sql.SQL(template).format(_P), [self._states(op, value)]

    def covered(self, value: Any) -> bool:
        return "state" in COVERED_COLUMNS

    def test(self, op: str, value: Any, facts: ContactFacts, ctx: Context) -> bool:
        inside = facts.state in self._states(op, value)
        return inside if op in ("eq", "in") else not inside


def age_interval(op: str, value: Any) -> tuple[int, int]:
    """The inclusive age range an operator selects (neq is the complement of eq)."""
    if op == "between":
        return value[0], value[1]
    return {
        "eq": (value, value),
        "neq": (value, value),
        "lt": (0, value - 1),
        "lte": (0, value),
        "gt": (value + 1, MAX_AGE),
        "gte": (value, MAX_AGE),
    }[op]


@dataclass(frozen=True)
class Age:
    """Age in whole years from the de-identified birth year (this year minus birth year); everyone
    folded into "90 or older" counts as 90. Compiled to a birth-year range so the index serves it."""

    def sql(self, op: str, value: Any, ctx: Context) -> SqlPart:
        low, high = age_interval(op, value)
        year = ctx.today.year
        part: sql.Composable = sql.SQL(
            "(NOT c.age_90_or_older AND c.birth_year IS NOT NULL AND c.birth_year BETWEEN {} AND {})"
        ).format(_P, _P)
        params: list[Any] = [year - high, year - low]
        if low <= AGE_FOLDED_AT <= high:
            part = sql.SQL("({} OR c.age_90_or_older)").format(part)
        if op == "neq":
            part = sql.SQL("NOT {}").format(part)
        return part, params

    def covered(self, value: Any) -> bool:
        return {"birth_year", "age_90_or_older"} <= COVERED_COLUMNS

    def test(self, op: str, value: Any, facts: ContactFacts, ctx: Context) -> bool:
        low, high = age_interval(op, value)
        if facts.age_90_or_older:
            age: int | None = AGE_FOLDED_AT
        elif facts.birth_year is not None:
            age = ctx.today.year - facts.birth_year
        else:
            age = None
        inside = age is not None and low <= age <= high
        return not inside if op == "neq" else inside


@dataclass(frozen=True)
class TokenArray:
    """Codes matched as keyed tokens (blind.token for the segment's tenant) in an array column:
    in = has any, all = has every one, not_in = has none."""

    column: str
    kind: str

    def code(self, code: str) -> str:
        """A code as tokenized (as typed: blind.normalize does the rest)."""
        return code

    def tokens(self, value: Any, ctx: Context) -> list[int]:
        return sorted({blind.token(ctx.tenant, self.kind, self.code(code)) for code in value})

    def token_sets(self, value: Any, ctx: Context) -> list[list[int]] | None:
        """Per code, every token a row having it may hold, while an index-key rotation gives each
        code two (rows are moved to the new version in batches, blind.py); None when each has one."""
        rotated = blind.chained(self.kind) or blind.rotates(self.kind)
        if not rotated or not blind.versions(ctx.tenant).reindexing:
            return None
        return [blind.token_lookup(ctx.tenant, self.kind, self.code(code)) for code in value]

    def sql(self, op: str, value: Any, ctx: Context) -> SqlPart:
        sets = self.token_sets(value, ctx)
        if sets is not None:
            flat = sorted({token for tokens in sets for token in tokens})
            if op == "all":  # each code by either of its tokens
                parts = [sql.SQL("{} && {}::bigint[]").format(_col(self.column), _P) for _ in sets]
                return sql.SQL("({})").format(sql.SQL(" AND ").join(parts)), [sorted(s) for s in sets]
            template = "{} && {}::bigint[]" if op == "in" else "NOT ({} && {}::bigint[])"
            return sql.SQL(template).format(_col(self.column), _P), [flat]
        template = {
            "in": "{} && {}::bigint[]",
            "all": "{} @> {}::bigint[]",
            "not_in": "NOT ({} && {}::bigint[])",
        }[op]
        return sql.SQL(template).format(_col(self.column), _P), [self.tokens(value, ctx)]

    def covered(self, value: Any) -> bool:
        return False  # arrays are never in the covering index (unbounded size)

    def test(self, op: str, value: Any, facts: ContactFacts, ctx: Context) -> bool:
        have: frozenset[int] = getattr(facts, self.column)
        sets = self.token_sets(value, ctx)
        if sets is not None:
            if op == "all":
                return all(have & set(tokens) for tokens in sets)
            hit = any(have & set(tokens) for tokens in sets)
            return hit if op == "in" else not hit
        wanted = set(self.tokens(value, ctx))
        if op == "in":
            return bool(have & wanted)
        if op == "all":
            return wanted <= have
        return not have & wanted


@dataclass(frozen=True)
class ConditionCodes(TokenArray):
    """ICD-10-CM conditions: a code given without its dot is read with it (E119 is E11.9), and a
    category or subcategory matches every code below it (E11 covers E11.0-E11.9), because each
    stored condition also carries the tokens of its ancestors (contacts/icd10.py)."""

    def code(self, code: str) -> str:
        return icd10.canonical(code)


@dataclass(frozen=True)
class TextArray:
    """A plaintext array column (sensitive categories): in = has any, not_in = has none."""

    column: str

    def sql(self, op: str, value: Any, ctx: Context) -> SqlPart:
        template = "{} && {}::varchar[]" if op == "in" else "NOT ({} && {}::varchar[])"
        return sql.SQL(template).format(_col(self.column), _P), [list(value)]

    def covered(self, value: Any) -> bool:
        return False

    def test(self, op: str, value: Any, facts: ContactFacts, ctx: Context) -> bool:
        hit = bool(getattr(facts, self.column) & set(value))
        return hit if op == "in" else not hit


@dataclass(frozen=True)
class Recency:
    """A timestamp column compared with "within the last N days" relative to the count's moment."""

    column: str

    def sql(self, op: str, value: Any, ctx: Context) -> SqlPart:
        since = ctx.now - datetime.timedelta(days=value)
        template = "{} >= {}" if op == "within_days" else "{} < {}"
        return sql.SQL(template).format(_col(self.column), _P), [since]

    def covered(self, value: Any) -> bool:
        return self.column in COVERED_COLUMNS

    def test(self, op: str, value: Any, facts: ContactFacts, ctx: Context) -> bool:
        recent = getattr(facts, self.column) >= ctx.now - datetime.timedelta(days=value)
        return recent if op == "within_days" else not recent


@dataclass(frozen=True)
class ConsentTopic:
    """Current consent for a topic on email (consent.ConsentState, maintained by consent services).
    The definition names the topic key; the validator resolves it to the tenant's topic id."""

    def sql(self, op: str, value: Any, ctx: Context) -> SqlPart:

        exists = sql.SQL(
            "EXISTS (SELECT 1 FROM {} s WHERE s.tenant_id = c.tenant_id AND s.contact_id = c.id"
            " AND s.channel = {} AND s.topic_id = {} AND s.status = {})"
        ).format(sql.Identifier(ConsentState._meta.db_table), _P, _P, _P)
        params = [Channel.EMAIL.value, value.topic_id, ConsentEvent.Kind.GRANTED.value]
        return (exists if op == "granted" else sql.SQL("NOT {}").format(exists)), params

    def covered(self, value: Any) -> bool:
        return True  # by contact id, from consent_state_topic_contact

    def test(self, op: str, value: Any, facts: ContactFacts, ctx: Context) -> bool:
        granted = value.topic_id in facts.granted_topics
        return granted if op == "granted" else not granted


@dataclass(frozen=True)
class Suppressed:
    """On the do-not-email list (consent.Suppression), by contact or by the email's blind index."""

    def sql(self, op: str, value: Any, ctx: Context) -> SqlPart:

        # Either row may hold the address's index under a newer index-key version as its next
        # index (blind.py: chained kinds). Compared both ways whatever this process's view of a
        # rotation is: the rows were written by processes whose view may differ from ours
        # (consent/gate.py, _BATCH_SQL, says the same). Outside a rotation the next columns are empty.
        by_address = (
            "x.email_index = c.email_index OR x.email_index = c.email_index_next"
            " OR x.email_index_next = c.email_index"
        )
        exists = sql.SQL(
            "EXISTS (SELECT 1 FROM {} x WHERE x.tenant_id = c.tenant_id AND x.removed_at IS NULL"
            " AND (x.contact_id = c.id OR (c.email_index IS NOT NULL AND ({}))))"
        ).format(sql.Identifier(Suppression._meta.db_table), sql.SQL(by_address))
        return (exists if value else sql.SQL("NOT {}").format(exists)), []

    def covered(self, value: Any) -> bool:
        return "email_index" in COVERED_COLUMNS

    def test(self, op: str, value: Any, facts: ContactFacts, ctx: Context) -> bool:
        return facts.suppressed == value


@dataclass(frozen=True)
class SegmentMembership:
    """Membership of another saved segment: its parsed definition is inlined (the validator
    resolved it and refused cycles), so the whole audience is still one query."""

    def sql(self, op: str, value: Any, ctx: Context) -> SqlPart:
        from .compiler import compile_node

        inner, params = compile_node(value.root, ctx)
        return (inner if op == "in_segment" else sql.SQL("NOT {}").format(inner)), params

    def covered(self, value: Any) -> bool:
        from .compiler import covered

        return covered(value.root)

    def test(self, op: str, value: Any, facts: ContactFacts, ctx: Context) -> bool:
        from .evaluator import evaluate_node

        inside = evaluate_node(value.root, facts, ctx)
        return inside if op == "in_segment" else not inside


@dataclass(frozen=True)
class Engagement:
    """Opens, clicks or conversions (the registered engagement source, bots excluded) relative to the count's
    moment: any within N days, none within N days, or at least K within N days ([K, N])."""

    kind: str

    def _since(self, op: str, value: Any, ctx: Context) -> datetime.datetime:
        days = value[1] if op == "count_at_least" else value
        return ctx.now - datetime.timedelta(days=days)

    def sql(self, op: str, value: Any, ctx: Context) -> SqlPart:
        from .engagement import engagement_source

        table = sql.Identifier(engagement_source().table)
        where = sql.SQL(
            "e.tenant_id = c.tenant_id AND e.contact_id = c.id AND e.kind = {} AND NOT e.is_bot"
            " AND e.occurred_at >= {}"
        ).format(_P, _P)
        params: list[Any] = [self.kind, self._since(op, value, ctx)]
        if op == "count_at_least":
            part = sql.SQL("(SELECT count(*) FROM {} e WHERE {}) >= {}").format(table, where, _P)
            return part, [*params, value[0]]
        exists = sql.SQL("EXISTS (SELECT 1 FROM {} e WHERE {})").format(table, where)
        return (exists if op == "within_days" else sql.SQL("NOT {}").format(exists)), params

    def covered(self, value: Any) -> bool:
        return True  # by contact id, from engagement_recent_human / engagement_contact

    def test(self, op: str, value: Any, facts: ContactFacts, ctx: Context) -> bool:
        since = self._since(op, value, ctx)
        recent = sum(1 for kind, at in facts.engagement if kind == self.kind and at >= since)
        if op == "count_at_least":
            return recent >= value[0]
        return recent > 0 if op == "within_days" else recent == 0
