"""Segment writes and the rules around them: validation, counts (through the disclosure policy),
breakdowns, snapshots.

Every query runs inside the segment's tenant context (row-level security) with an explicit tenant
filter, under a statement timeout so no crafted definition can hold the database.
"""

from __future__ import annotations

import datetime
import json
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone
from psycopg import errors as pg_errors
from psycopg import sql

from audit import services as audit
from healthmail import disclosure
from healthmail.actors import Actor
from healthmail.disclosure import Viewer
from healthmail.errors import ApplicationError, Conflict, PermissionRefused
from healthmail.tenants.context import current_tenant_id, db_setting, tenant_context
from healthmail.tenants.models import Tenant

from . import compiler, selectors
from .dsl import DefinitionError, Parsed, parse
from .models import CountQuery, Segment, SegmentSnapshot

MAX_NAME = 120
POPULATION_CACHE_SECONDS = 300


class ClinicalCriteriaRefused(PermissionRefused):
    title = "Clinical criteria need PHI access"


def _require_clinical(viewer: Viewer | None, uses_phi: bool) -> None:
    if uses_phi and viewer is not None and not viewer.clinical_criteria:
        raise ClinicalCriteriaRefused(
            "Choosing contacts by clinical fields needs the contacts:phi scope.", code="phi_scope_required"
        )


class SegmentTooSlow(ApplicationError):
    status_code = 422
    title = "Segment too slow to count"


@dataclass(frozen=True)
class Cell:
    key: str
    count: int | None  # None when masked
    display: str


@dataclass(frozen=True)
class CountResult:
    count: int | None  # what may be shown (None when masked); noisy and rounded for sensitive counts
    display: str
    uses_phi: bool
    breakdown: dict[str, list[Cell]]
    counted_at: datetime.datetime
    exact: bool = True
    empty: bool = False  # no contact matches, and saying so is safe (healthmail/disclosure.py)


def segment_count_disclosed(
    *, tenant: Tenant, viewer: Viewer, segment: Segment
) -> disclosure.Disclosed | None:
    """The remembered count of a saved segment as `viewer` may see it (None: never counted).

    A clinical segment's count is shown to a viewer without PHI access only if that viewer's own
    count of it is in their query audit: someone else's count would be an answer the viewer's
    audit never weighed (an alias of a group they could not count, say)."""
    if segment.last_count is None:
        return None
    query = disclosure.canonical(segment.definition)
    if segment.uses_phi and not viewer.phi and disclosure.enabled() and not _answered(tenant, viewer, query):
        return NOT_COUNTED_BY_VIEWER
    return disclosure.disclose(
        segment.last_count, tenant=tenant, viewer=viewer, query=query, sensitive=segment.uses_phi
    )


NOT_COUNTED_BY_VIEWER = disclosure.Disclosed(None, "not shown until you count it", exact=False)


def _answered(tenant: Tenant, viewer: Viewer, query: str) -> bool:
    window = datetime.timedelta(hours=disclosure.policy_for(tenant).window_hours)
    return selectors.count_query_answered(
        tenant=tenant, actor=viewer.key, query=query, since=timezone.now() - window
    )


def segment_parse(*, tenant: Tenant, definition: Any, segment_id: uuid.UUID | None = None) -> Parsed:
    with tenant_context(tenant):
        return parse(definition, lookup=selectors.segment_lookup(tenant=tenant), segment_id=segment_id)


def _context(tenant: Tenant, now: datetime.datetime | None = None) -> compiler.CompileContext:
    now = now or timezone.now()
    return compiler.CompileContext(tenant=tenant, today=now.date(), now=now)


def segment_compile(
    *, tenant: Tenant, definition: Any, now: datetime.datetime | None = None
) -> compiler.Compiled:
    return compiler.compile_segment(
        segment_parse(tenant=tenant, definition=definition), _context(tenant, now)
    )


def _render(query: sql.Composable) -> str:
    connection.ensure_connection()
    return query.as_string(connection.connection)


def _timeout_ms() -> int:
    return int(getattr(settings, "SEGMENT_STATEMENT_TIMEOUT_MS", 2000))


def _fetch(query: sql.Composable, params: list[Any]) -> list[tuple]:
    """Run one read under the statement timeout (restored afterwards)."""
    return _fetch_each([(query, params)])[0]


def _fetch_each(queries: list[compiler.SqlPart]) -> list[list[tuple]]:
    """Run reads one statement after another, each under the statement timeout (a per-statement
    limit: set once for all of them, which saves the round trips of setting and restoring it per
    read when a count compares itself with many recent ones)."""
    if not queries:
        return []
    try:
        with db_setting("statement_timeout", str(_timeout_ms())), connection.cursor() as cursor:
            results = []
            for query, params in queries:
                cursor.execute(_render(query), params)
                results.append(cursor.fetchall())
            return results
    except OperationalError as error:
        if isinstance(error.__cause__, pg_errors.QueryCanceled):
            raise SegmentTooSlow(
                "Counting this segment took too long. Simplify it (fewer conditions or values) and retry.",
                code="segment_too_slow",
            ) from None
        raise


def _cost(query: sql.Composable, params: list[Any]) -> float:
    """The planner's estimated total cost of a query (planned, not run)."""
    (plan,) = _fetch(sql.SQL("EXPLAIN (FORMAT JSON) {}").format(query), params)[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return float(plan[0]["Plan"]["Total Cost"])


def _count(compiled: compiler.Compiled) -> int:
    """The true count, by whichever of the plain and the two-pass query the planner expects to be
    cheaper (segmentation/compiler.py; both select the same contacts). Planning both costs a few
    milliseconds; picking the wrong shape can cost hundreds at a million contacts."""
    plain = compiler.count_query(compiled)
    if compiled.passes is not None:
        two_pass = compiler.count_query(compiled, two_pass=True)
        if _cost(*two_pass) < _cost(*plain):
            return _fetch(*two_pass)[0][0]
    return _fetch(*plain)[0][0]


def segment_member_ids(*, tenant: Tenant, definition: Any, now: datetime.datetime | None = None) -> list:
    """Every member id, sorted (tests and small internal uses; people get masked pages)."""
    with tenant_context(tenant):
        compiled = segment_compile(tenant=tenant, definition=definition, now=now)
        return [row[0] for row in _fetch(*compiler.ids_query(compiled))]


def segment_members_among(
    *, tenant: Tenant, definition: Any, contact_ids: list, now: datetime.datetime | None = None
) -> set:
    """Which of `contact_ids` are members now (one query restricted to those ids)."""
    if not contact_ids:
        return set()
    with tenant_context(tenant):
        compiled = segment_compile(tenant=tenant, definition=definition, now=now)
        return {row[0] for row in _fetch(*compiler.ids_among_query(compiled, list(contact_ids)))}


def segment_members_query(
    *, tenant: Tenant, definition: Any, now: datetime.datetime | None = None
) -> compiler.SqlPart:
    """The ids query of every member (`SELECT c.id ...`), to compose into a set-based write."""
    with tenant_context(tenant):
        return compiler.ids_query(segment_compile(tenant=tenant, definition=definition, now=now))


def segment_count(
    *,
    tenant: Tenant,
    viewer: Viewer,
    definition: Any,
    segment: Segment | None = None,
    breakdown: bool = True,
    now: datetime.datetime | None = None,
) -> CountResult:
    """The size of an audience (and per state / age band / language) as `viewer` may see it, through
    the disclosure policy; the true count is remembered on `segment`."""
    now = now or timezone.now()
    with tenant_context(tenant):
        compiled = segment_compile(tenant=tenant, definition=definition, now=now)
        _require_clinical(viewer, compiled.uses_phi)
        query = disclosure.canonical(definition)
        population = None
        audit_log = None
        total = _count(compiled)
        if compiled.uses_phi and not viewer.phi and disclosure.enabled():
            audit_log = _QueryAudit(tenant, viewer, now)
            audit_log.answer(definition, query, compiled, total)
            population = _population(tenant, compiled)
        shown = disclosure.disclose(
            total,
            tenant=tenant,
            viewer=viewer,
            query=query,
            sensitive=compiled.uses_phi,
            population=population,
        )
        cells: dict[str, list[Cell]] = {}
        if breakdown and shown.value:
            for dimension in compiler.BREAKDOWNS:
                query_part, params = compiler.breakdown_query(compiled, dimension, year=now.year)
                rows = sorted(_fetch(query_part, params), key=lambda row: (-row[1], row[0] or ""))
                cells[dimension] = _cells(
                    tenant, viewer, definition, query, dimension, rows, compiled.uses_phi, audit_log
                )
        if audit_log is not None:
            audit_log.save()
        if segment is not None:
            Segment.objects.filter(pk=segment.pk).update(last_count=total, last_counted_at=now)
            segment.last_count, segment.last_counted_at = total, now
    return CountResult(
        shown.value, shown.display, compiled.uses_phi, cells, now, exact=shown.exact, empty=shown.empty
    )


NOT_SHOWN = "not shown"


def segment_answer_audit(*, tenant: Tenant, viewer: Viewer, definition: Any, count: int) -> None:
    """Put an answer about a segment's members that another page shows (a campaign's audience
    preview) through the viewer's query audit, as the builder's count would be: raises
    QueryRefused when it may not be shown. The caller shows it keyed by `canonical(definition)`."""
    if viewer.phi or not disclosure.enabled():
        return
    now = timezone.now()
    with tenant_context(tenant):
        compiled = segment_compile(tenant=tenant, definition=definition, now=now)
        audit_log = _QueryAudit(tenant, viewer, now)
        audit_log.answer(definition, disclosure.canonical(definition), compiled, count)
        audit_log.save()


def _cells(
    tenant: Tenant,
    viewer: Viewer,
    definition: Any,
    query: str,
    dimension: str,
    rows: list[tuple],
    sensitive: bool,
    audit_log: _QueryAudit | None,
) -> list[Cell]:
    """One breakdown's cells. Each cell is the query "definition AND this value": when the count
    was audited, so is each cell shown as a number, like a query of its own (compared with the
    viewer's recent queries and cells, and remembered for the next ones), or it is not shown."""
    unit = f"{query}#{dimension}"
    keys = [key for key, _ in rows if key]
    found = []
    for key, count in rows:
        cell_query = f"{unit}={key or ''}"
        shown = disclosure.disclose(
            count, tenant=tenant, viewer=viewer, query=cell_query, sensitive=sensitive
        )
        if audit_log is not None and shown.value is not None:
            cell_definition = {"all": [definition, _cell_criterion(dimension, key, keys)]}
            if not audit_log.try_answer(cell_definition, cell_query, count, unit=unit):
                found.append(Cell(key or "unknown", None, NOT_SHOWN))
                continue
        found.append(Cell(key or "unknown", shown.value, shown.display))
    return found


def _cell_criterion(dimension: str, key: str | None, keys: list[str]) -> dict:
    """The segment criterion that picks a breakdown cell (compiler.breakdown_query's groups)."""
    if key:
        if dimension == "age_band":
            return _age_band(key)
        return {"field": dimension, "op": "eq", "value": key}
    # The "unknown" cell: everyone of the group in none of the other cells.
    if dimension == "age_band":
        return {"not": {"any": [_age_band(other) for other in keys]}}
    return {"not": {"field": dimension, "op": "in", "value": keys}}


def _age_band(label: str) -> dict:
    if label == "90+":
        return {"field": "age", "op": "gte", "value": 90}
    low, high = next((low, high) for name, low, high in compiler.AGE_BANDS if name == label)
    return {"field": "age", "op": "between", "value": [low, high]}


class _QueryAudit:
    """The query audit of one viewer's count (healthmail/disclosure.py): its recent sensitive
    queries, each new answer checked against them and remembered."""

    def __init__(self, tenant: Tenant, viewer: Viewer, now: datetime.datetime):
        if current_tenant_id() != tenant.pk:
            raise RuntimeError("the query audit runs inside the count's tenant context")
        self.tenant, self.viewer, self.now = tenant, viewer, now
        self.policy = disclosure.policy_for(tenant)
        self.pending: list[CountQuery] = []
        self.recent = selectors.count_queries_recent(
            tenant=tenant, actor=viewer.key, since=now - datetime.timedelta(hours=self.policy.window_hours)
        )
        # Each recent query compiled once per count, not once per cell compared with it; keyed by the
        # row object (kept alive in `recent`): an "unknown" cell's definition depends on the other
        # cells of its time, so equal query texts need not mean equal definitions.
        self._compiled: dict[int, compiler.Compiled | None] = {}

    def answer(
        self, definition: Any, query: str, compiled: compiler.Compiled, count: int, unit: str = ""
    ) -> None:
        """Check the query against the recent ones (raises QueryRefused), then remember it."""
        disclosure.audit_check(
            tenant=self.tenant,
            viewer=self.viewer,
            query=query,
            used=[row.query for row in self.recent],
            spent=[row.unit or row.query for row in self.recent],
            unit=unit or query,
            differences=lambda: self._differences(compiled, query, count, unit),
        )
        row = CountQuery(
            tenant=self.tenant,
            actor=self.viewer.key[:80],
            query=query,
            unit=unit,
            definition=definition,
            count=count,
        )
        self.recent.insert(0, row)
        self.pending.append(row)
        self._compiled[id(row)] = compiled

    def save(self) -> None:
        """Write the answers remembered since the last save (one INSERT for a count's cells)."""
        CountQuery.objects.bulk_create(self.pending)
        self.pending = []

    def try_answer(self, definition: Any, query: str, count: int, *, unit: str) -> bool:
        """A breakdown cell: False when it may not be shown (refused, or not expressible as a query)."""
        try:
            compiled = self._compile_definition(definition)
            self.answer(definition, query, compiled, count, unit=unit)
        except (DefinitionError, disclosure.QueryRefused):
            return False
        return True

    def _differences(self, compiled: compiler.Compiled, query: str, count: int, unit: str) -> dict[str, int]:
        # |Q Δ R| >= ||Q| - |R||: only recent queries of a close size can be a differencing pair.
        # (Sizes drift as contacts change; the per-query noise still covers such pairs.) Cells of
        # one breakdown are disjoint groups: they need no comparison with each other.
        compared: dict[str, compiler.SqlPart] = {}
        for row in self.recent:
            if len(compared) >= self.policy.compared:
                break
            if row.query == query or row.query in compared or row.count is None:
                continue
            if (unit and row.unit == unit) or abs(count - row.count) >= 2 * self.policy.k:
                continue
            other = self._compile(row)
            if other is None:
                continue  # a referenced segment changed since: nothing left to compare with
            compared[row.query] = compiler.difference_query(compiled, other)
        results = _fetch_each(list(compared.values()))
        return {other: rows[0][0] for other, rows in zip(compared, results, strict=True)}

    def _compile(self, row: CountQuery) -> compiler.Compiled | None:
        if id(row) not in self._compiled:
            try:
                self._compiled[id(row)] = self._compile_definition(row.definition)
            except DefinitionError:
                self._compiled[id(row)] = None
        return self._compiled[id(row)]

    def _compile_definition(self, definition: Any) -> compiler.Compiled:
        """segment_compile in the count's own tenant context (the audit lives inside it), without
        entering it again: a nested context costs four statements, and a count compiles hundreds of
        definitions when it compares its cells with the viewer's recent queries."""
        parsed = parse(definition, lookup=selectors.segment_lookup(tenant=self.tenant))
        return compiler.compile_segment(parsed, _context(self.tenant, self.now))


def _population(tenant: Tenant, compiled: compiler.Compiled) -> int:
    """The tenant's live contacts, cached a few minutes (a count of everyone is no secret, and at a
    million contacts it costs as much as the count itself)."""
    key = f"disclosure:population:{tenant.pk}"
    population = cache.get(key)
    if population is None:
        population = _fetch(*compiler.population_query(compiled))[0][0]
        cache.set(key, population, POPULATION_CACHE_SECONDS)
    return population


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ApplicationError("Give the segment a name.", code="name_required")
    if len(name) > MAX_NAME or any(ord(char) < 32 for char in name):
        raise ApplicationError(
            f"The name must be at most {MAX_NAME} printable characters.", code="name_invalid"
        )
    return name


def _save(segment: Segment) -> None:
    try:
        with transaction.atomic():
            segment.save()
    except IntegrityError:
        raise Conflict("A segment with this name already exists.", code="segment_name_taken") from None


@transaction.atomic
def segment_create(
    *,
    tenant: Tenant,
    actor: Actor,
    name: str,
    definition: Any,
    description: str = "",
    viewer: Viewer | None = None,
) -> Segment:
    segment_id = uuid.uuid4()
    parsed = segment_parse(tenant=tenant, definition=definition, segment_id=segment_id)
    _require_clinical(viewer, parsed.uses_phi)
    with tenant_context(tenant):
        segment = Segment(
            id=segment_id,
            tenant=tenant,
            name=_clean_name(name),
            description=(description or "").strip()[:500],
            definition=definition,
            owner=actor.user,
            uses_phi=parsed.uses_phi,
            references=[str(ref) for ref in parsed.references],
        )
        _save(segment)
        audit.record(
            actor=actor,
            action="segment.create",
            target=segment,
            tenant=tenant,
            details={"uses_phi": parsed.uses_phi, "conditions": parsed.condition_count},
        )
    return segment


@transaction.atomic
def segment_update(
    *,
    tenant: Tenant,
    actor: Actor,
    segment: Segment,
    name: str | None = None,
    definition: Any = None,
    description: str | None = None,
    viewer: Viewer | None = None,
) -> Segment:
    """A changed definition is validated with the segment's own id on the reference stack, so a
    reference back to it through any chain of segments is refused as a cycle."""
    changed = []
    with tenant_context(tenant):
        if definition is not None:
            parsed = segment_parse(tenant=tenant, definition=definition, segment_id=segment.pk)
            _require_clinical(viewer, parsed.uses_phi)
            segment.definition = definition
            segment.uses_phi = parsed.uses_phi
            segment.references = [str(ref) for ref in parsed.references]
            segment.last_count = segment.last_counted_at = None
            changed.append("definition")
        if name is not None:
            segment.name = _clean_name(name)
            changed.append("name")
        if description is not None:
            segment.description = description.strip()[:500]
            changed.append("description")
        _save(segment)
        if "definition" in changed:
            _refresh_users(tenant, segment)
        audit.record(
            actor=actor,
            action="segment.update",
            target=segment,
            tenant=tenant,
            details={"changed": changed, "uses_phi": segment.uses_phi},
        )
    return segment


def _refresh_users(tenant: Tenant, segment: Segment) -> None:
    """Segments that reference this one inherit its PHI use."""
    for used in selectors.segment_where_used(tenant=tenant, segment=segment):
        user = Segment.objects.for_tenant(tenant).get(pk=used["id"])
        try:
            parsed = segment_parse(tenant=tenant, definition=user.definition, segment_id=user.pk)
        except DefinitionError:
            continue  # cannot happen while cycles are refused; never block the edit on it
        if parsed.uses_phi != user.uses_phi:
            Segment.objects.filter(pk=user.pk).update(uses_phi=parsed.uses_phi)


@transaction.atomic
def segment_snapshot_take(
    *, tenant: Tenant, actor: Actor, segment: Segment, purpose: str, now: datetime.datetime | None = None
) -> SegmentSnapshot:
    """Freeze the current membership: one INSERT ... SELECT of the compiled query, then seal the
    count. Audited with the count and the snapshot id (never member ids)."""
    if not purpose.strip():
        raise ApplicationError("Say why the snapshot is taken.", code="purpose_required")
    with tenant_context(tenant):
        compiled = segment_compile(tenant=tenant, definition=segment.definition, now=now)
        snapshot = SegmentSnapshot.objects.create(
            tenant=tenant,
            segment=segment,
            definition=segment.definition,
            uses_phi=compiled.uses_phi,
            member_count=None,
            purpose=purpose.strip()[:200],
            taken_by=actor.reference,
        )
        query, params = compiler.snapshot_insert_query(compiled, snapshot.pk)
        with connection.cursor() as cursor:
            cursor.execute(_render(query), params)
            inserted = cursor.rowcount
        SegmentSnapshot.objects.filter(pk=snapshot.pk).update(member_count=inserted)
        snapshot.member_count = inserted
        audit.record(
            actor=actor,
            action="segment.snapshot",
            target=snapshot,
            tenant=tenant,
            details={"segment": str(segment.pk), "members": inserted, "uses_phi": compiled.uses_phi},
        )
    return snapshot
