"""Parsed definition → one parameterized SQL query over contacts, always scoped to one tenant.

Composed with psycopg `sql`: identifiers come from the registry, every value from the definition is
a bound parameter. The query also runs as the application role inside the tenant's context, so
row-level security applies on top of the explicit `c.tenant_id = %s`. The same definition, tenant
and moment always give the same SQL and the same parameters (deterministic).

Two shapes select the same contacts. The plain one reads every contact row the index conditions
leave. The two-pass one first narrows the tenant's contacts with the conditions the covering index
answers alone (the plaintext columns, consent and engagement by contact id), then reads only those
rows for the rest (token arrays): much less to read when the first pass is selective, more when it is
not, so the caller lets the planner's estimate choose (segmentation/services.py).
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from contacts.models import Contact

from .dsl import Condition, Group, Node, Parsed
from .models import SegmentSnapshotMember
from .strategies import Context, SqlPart


@dataclass(frozen=True)
class CompileContext:
    tenant: Any
    today: datetime.date
    now: datetime.datetime


@dataclass(frozen=True)
class Compiled:
    where: sql.Composable
    params: list[Any]
    uses_phi: bool
    tenant_id: uuid.UUID
    # The same WHERE as two conjunctions, (covered, rest), when it has conditions of both kinds.
    passes: tuple[SqlPart, SqlPart] | None = None


def compile_node(node: Node, ctx: Context) -> SqlPart:
    if isinstance(node, Condition):
        return node.field.strategy.sql(node.op, node.value, ctx)
    if node.kind == "not":
        inner, params = compile_node(node.children[0], ctx)
        return sql.SQL("NOT ({})").format(inner), params
    if not node.children:
        # all of nothing is everyone; any of nothing is no one (the evaluator agrees)
        return sql.SQL("TRUE" if node.kind == "all" else "FALSE"), []
    parts, params = [], []
    for child in node.children:
        part, child_params = compile_node(child, ctx)
        parts.append(part)
        params.extend(child_params)
    joiner = sql.SQL(" AND " if node.kind == "all" else " OR ")
    return sql.SQL("({})").format(joiner.join(parts)), params


def covered(node: Node) -> bool:
    """Whether the covering index alone answers `node` (see segmentation/strategies.py)."""
    if isinstance(node, Condition):
        return node.field.strategy.covered(node.value)
    return all(covered(child) for child in node.children)


def _conjuncts(node: Node) -> list[Node]:
    """The conditions an "all" at the root ANDs together, nested "all"s flattened."""
    if isinstance(node, Group) and node.kind == "all":
        return [part for child in node.children for part in _conjuncts(child)]
    return [node]


def _conjunction(nodes: list[Node], ctx: CompileContext) -> SqlPart:
    return compile_node(Group("all", tuple(nodes), ""), ctx)


def compile_segment(parsed: Parsed, ctx: CompileContext) -> Compiled:
    where, params = compile_node(parsed.root, ctx)
    tenant_id = uuid.UUID(str(getattr(ctx.tenant, "pk", ctx.tenant)))
    conjuncts = _conjuncts(parsed.root)
    first = [node for node in conjuncts if covered(node)]
    rest = [node for node in conjuncts if not covered(node)]
    passes = (_conjunction(first, ctx), _conjunction(rest, ctx)) if first and rest else None
    return Compiled(where, params, parsed.uses_phi, tenant_id, passes)


_CONTACTS = sql.Identifier(Contact._meta.db_table)
_NOTHING = sql.SQL("")


def _select(columns: sql.Composable, compiled: Compiled, tail: sql.Composable = _NOTHING) -> SqlPart:
    query = sql.SQL(
        "SELECT {columns} FROM {contacts} c"
        " WHERE c.tenant_id = {tenant} AND c.deleted_at IS NULL AND {where}{tail}"
    ).format(columns=columns, contacts=_CONTACTS, tenant=sql.Placeholder(), where=compiled.where, tail=tail)
    return query, [compiled.tenant_id, *compiled.params]


def _select_two_pass(columns: sql.Composable, compiled: Compiled, tail: sql.Composable = _NOTHING) -> SqlPart:
    """The first pass's ids (its own alias `c`, so the conditions compile unchanged), joined back to
    their rows for the remaining conditions. Ids are unique, so the join neither adds nor loses a
    row. The first pass is a materialized CTE: it runs once, as the index-only scan it is meant to
    be, whatever join the planner picks (inlined, it could be merged back into one scan or rescanned
    for every row of a nested loop)."""
    if compiled.passes is None:
        raise ValueError("this definition has no two-pass form")
    (first, first_params), (rest, rest_params) = compiled.passes
    query = sql.SQL(
        "WITH first_pass AS MATERIALIZED (SELECT c.id FROM {contacts} c"
        " WHERE c.tenant_id = {tenant} AND c.deleted_at IS NULL AND {first})"
        " SELECT {columns} FROM first_pass JOIN {contacts} c ON c.id = first_pass.id"
        " WHERE c.tenant_id = {tenant} AND c.deleted_at IS NULL AND {rest}{tail}"
    ).format(columns=columns, contacts=_CONTACTS, tenant=sql.Placeholder(), first=first, rest=rest, tail=tail)
    return query, [compiled.tenant_id, *first_params, compiled.tenant_id, *rest_params]


def count_query(compiled: Compiled, *, two_pass: bool = False) -> SqlPart:
    """`two_pass` only when `compiled.passes` is set."""
    return (_select_two_pass if two_pass else _select)(sql.SQL("count(*)"), compiled)


def difference_query(compiled: Compiled, other: Compiled) -> SqlPart:
    """How many contacts are in exactly one of the two: |Q or R| - |Q and R|, over Q OR R so the
    indexes that serve either definition serve this too."""
    query = sql.SQL(
        "SELECT count(*) - count(*) FILTER (WHERE ({q}) AND ({r})) FROM {contacts} c"
        " WHERE c.tenant_id = {tenant} AND c.deleted_at IS NULL AND (({q2}) OR ({r2}))"
    ).format(
        q=compiled.where,
        r=other.where,
        contacts=_CONTACTS,
        tenant=sql.Placeholder(),
        q2=compiled.where,
        r2=other.where,
    )
    return query, [*compiled.params, *other.params, compiled.tenant_id, *compiled.params, *other.params]


def population_query(compiled: Compiled) -> SqlPart:
    """The tenant's live contacts: the group a count's complement is taken in."""
    return _select(sql.SQL("count(*)"), Compiled(sql.SQL("TRUE"), [], False, compiled.tenant_id))


def ids_query(compiled: Compiled, *, two_pass: bool = False) -> SqlPart:
    return (_select_two_pass if two_pass else _select)(sql.SQL("c.id"), compiled, sql.SQL(" ORDER BY c.id"))


def ids_among_query(compiled: Compiled, contact_ids: list[uuid.UUID]) -> SqlPart:
    """The members among the given contacts only: the primary key narrows the read to those rows,
    whatever the definition (a trigger checks the contacts a write changed, not everyone)."""
    query, params = _select(
        sql.SQL("c.id"), compiled, sql.SQL(" AND c.id = ANY({})").format(sql.Placeholder())
    )
    return query, [*params, contact_ids]


AGE_BANDS = (("0-17", 0, 17), ("18-29", 18, 29), ("30-44", 30, 44), ("45-64", 45, 64), ("65-89", 65, 89))
BREAKDOWNS = ("state", "age_band", "language")


def breakdown_query(compiled: Compiled, dimension: str, *, year: int) -> SqlPart:
    """Counts per value of one dimension (masking small cells is the caller's job)."""
    if dimension == "age_band":
        whens = sql.SQL(" ").join(
            sql.SQL("WHEN {} - c.birth_year BETWEEN {} AND {} THEN {}").format(
                sql.Literal(year), sql.Literal(low), sql.Literal(high), sql.Literal(label)
            )
            for label, low, high in AGE_BANDS
        )
        key = sql.SQL(
            "CASE WHEN c.age_90_or_older THEN '90+' WHEN c.birth_year IS NULL THEN '' {} ELSE '' END"
        ).format(whens)
    elif dimension in ("state", "language"):
        key = sql.SQL("c.{}").format(sql.Identifier(dimension))
    else:
        raise ValueError(f"unknown breakdown {dimension}")
    query, params = _select(sql.SQL("{} AS k, count(*)").format(key), compiled, sql.SQL(" GROUP BY 1"))
    return query, params


def snapshot_insert_query(compiled: Compiled, snapshot_id: uuid.UUID) -> SqlPart:
    """One INSERT ... SELECT: members never travel through Python."""
    select, params = _select(sql.SQL("c.tenant_id, {}::uuid, c.id").format(sql.Placeholder()), compiled)
    query = sql.SQL("INSERT INTO {} (tenant_id, snapshot_id, contact_id) {}").format(
        sql.Identifier(SegmentSnapshotMember._meta.db_table), select
    )
    return query, [snapshot_id, *params]
