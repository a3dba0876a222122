"""The journey engine: claim due positions, walk each contact forward to its next wait or its exit,
all in the transaction that holds the claimed rows.

The database is the record. A position is claimed with `FOR UPDATE SKIP LOCKED`, so two workers never
hold the same contact; every step a contact takes, the messages it queues (the outbox joins the same
transaction) and its new resting place commit together or not at all. A worker killed mid-batch leaves
the rows as they were: the next claim takes them again and nothing was sent twice.

A fresh entrant stands on the empty step "" (due now) and enters the version's start. Contacts walk
in rounds: every contact of the batch standing on the same step of the same version is handled by one
call (one gate query for a send step), which is what moves a million due contacts in minutes.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import psycopg
from django.conf import settings
from django.db import connection
from django.utils import timezone

from audit import services as audit
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from .. import definition as spec
from ..models import Journey, JourneyVersion, Position, StepLog
from . import rules, waits
from . import steps as step_kinds

Outcome = StepLog.Outcome
ENTRY = ""  # the step a fresh entrant stands on


@dataclass
class Report:
    """What one advance did, counted from the rows it changed."""

    advanced: int = 0
    sent: int = 0
    refused: int = 0
    exited: int = 0
    waiting: int = 0
    deferred: int = 0
    jumped: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    jumps: dict[str, list] = field(default_factory=lambda: defaultdict(list))


@dataclass
class _Walk:
    position: Claimed
    at: str = ENTRY  # the step being entered this round ("" once resting or exited)
    resume: bool = False  # back on a send step quiet hours held: not a new visit


def batch_size() -> int:
    return int(getattr(settings, "JOURNEYS_ADVANCE_BATCH", 1000))


class _Logged(NamedTuple):
    """One StepLog row as the batch insert takes it (a model instance per row cost more than the row)."""

    position: Claimed
    step: str
    outcome: str
    detail: str
    message_id: uuid.UUID | None


def _log(logs: list, position: Position, step: str, outcome: str, now, detail: str = "", message=None):
    logs.append(_Logged(position, step, outcome, detail[:200], message.pk if message is not None else None))


def _execute(sql: str, params) -> list | None:
    """`sql` with its parameters bound by the server and sent in binary (`%b` placeholders), rows in
    binary, as contacts/bulk.py does. Django's cursors bind on the client: quoting a thousand-element
    array as text in Python costs more than the statement. Same connection, so the same transaction
    and tenant context; Django's error classes (the tasks retry on its OperationalError); no named
    prepared statement is left."""
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=False, binary=True)
        return cursor.fetchall() if cursor.description is not None else None


def _exit(walk: _Walk, logs: list | None, now, reason: str, outcome: str = Outcome.EXITED) -> None:
    """The contact leaves the journey here; `logs` None: the caller already logged the step's row."""
    position = walk.position
    position.state = Position.State.EXITED
    position.exited_at = now
    position.exit_reason = reason[:120]
    position.due_at = None
    position.waiting_event = ""
    position.event_arrived = False
    if logs is not None:
        _log(logs, position, position.step, outcome, now, reason)
    walk.at = ""


def _leave(walk: _Walk, definition: dict, now) -> str | None:
    """Where a resting contact goes now that it is due: the start, a wait's next, an event wait's
    event or timeout path. None: not due yet (it stays)."""
    position = walk.position
    if position.step == ENTRY:
        return definition["start"]
    step = spec.step_of(definition, position.step)
    if step["type"] == "send":  # held by quiet hours: the send step is tried again, not re-entered
        walk.resume = True
        return position.step if position.due_at and position.due_at <= now else None
    if step["type"] == "wait_event":
        if position.event_arrived:
            return step["next"]
        return step["timeout_next"] if position.due_at and position.due_at <= now else None
    return step["next"] if position.due_at and position.due_at <= now else None


def _enter(walk: _Walk, definition: dict, logs: list, now) -> bool:
    """Count the visit; False when the cycle cap ends the contact's journey here. Entering is not a
    row of its own: the step's one row says what happened there (sent, waiting, updated...)."""
    position = walk.position
    if walk.resume:
        walk.resume = False
        return True
    visits = dict(position.visits)
    visits[walk.at] = visits.get(walk.at, 0) + 1
    position.visits = visits
    position.step = walk.at
    if visits[walk.at] > spec.cycle_cap(definition):
        _exit(walk, logs, now, "cycle_cap")
        return False
    return True


def _rest(walk: _Walk, step: dict, logs: list, now, until=None) -> None:
    """The contact rests on a wait: its duration, until its window opens (`until`), or an event."""
    position = walk.position
    position.event_arrived = False
    if step["type"] == "wait":
        position.due_at = until if until is not None else now + datetime.timedelta(seconds=step["seconds"])
        position.waiting_event = ""
    else:
        position.due_at = now + datetime.timedelta(seconds=step["timeout_seconds"])
        position.waiting_event = step["event"]
    _log(logs, position, walk.at, Outcome.WAITING, now)
    walk.at = ""


def _round(tenant: Tenant, walks: list[_Walk], versions: dict, logs: list, now, report: Report) -> None:
    """Every walk standing on a step enters it; grouped by (version, step) so each group is one call."""
    groups: dict[tuple[uuid.UUID, str], list[_Walk]] = defaultdict(list)
    for walk in walks:
        if walk.at and _enter(walk, versions[walk.position.version_id].definition, logs, now):
            groups[(walk.position.version_id, walk.at)].append(walk)
    for (version_id, key), members in groups.items():
        version = versions[version_id]
        step = spec.step_of(version.definition, key)
        kind = step["type"]
        positions = [w.position for w in members]
        if kind in spec.WAITS:
            opens = (
                waits.window_dues(tenant=tenant, step=step, positions=positions, now=now)
                if "window" in step
                else {}
            )
            for walk in members:
                _rest(walk, step, logs, now, opens.get(walk.position.pk))
        elif kind == "exit":
            for walk in members:
                _exit(walk, logs, now, "completed")
        elif kind == "send":
            _send(tenant, version, key, step, members, logs, now, report)
        elif kind == "branch":
            yes = step_kinds.branch(
                tenant=tenant, version=version, condition=step["condition"], positions=positions
            )
            for walk in members:
                taken = "yes" if walk.position.pk in yes else "no"
                _on(walk, logs, key, Outcome.MOVED, now, step[taken], taken)
        elif kind == "split":
            for walk in members:
                index = spec.split_path(walk.position.pk, key, step["variants"])
                _on(walk, logs, key, Outcome.MOVED, now, step["variants"][index]["next"], f"variant:{index}")
        elif kind == "jump" and "to" in step:
            for walk in members:
                _on(walk, logs, key, Outcome.MOVED, now, step["to"], "jump")
        elif kind == "jump":
            for walk in members:
                _log(logs, walk.position, key, Outcome.JUMPED, now, str(step["journey_id"]))
                _exit(walk, None, now, "jumped")
            report.jumps[step["journey_id"]] += [w.position.contact_id for w in members]
        else:  # update, list, webhook, notify: something is done for the contacts, then on
            detail = step_kinds.act(tenant=tenant, version=version, key=key, step=step, positions=positions)
            for walk in members:
                _on(walk, logs, key, Outcome.UPDATED, now, step["next"], detail)


def _on(walk: _Walk, logs: list, key: str, outcome: str, now, to: str, detail: str = "") -> None:
    _log(logs, walk.position, key, outcome, now, detail)
    walk.at = to


def _hold(walk: _Walk, logs: list, key: str, until, now, reason: str) -> None:
    """The contact rests on the send step until `until` (quiet hours) and tries it again then."""
    position = walk.position
    position.due_at = until
    position.waiting_event = ""
    position.event_arrived = False
    _log(logs, position, key, Outcome.DEFERRED, now, reason)
    walk.at = ""


def _send(tenant, version, key, step, members: list[_Walk], logs, now, report: Report) -> None:
    definition = version.definition
    quiet = rules.quiet_until(
        tenant=tenant, definition=definition, positions=[w.position for w in members], now=now
    )
    ready = []
    for walk in members:
        until = quiet.get(walk.position.pk)
        if until is not None:
            report.deferred += 1
            _hold(walk, logs, key, until, now, "quiet_hours")
        else:
            ready.append(walk)
    capped = rules.frequency_capped(
        tenant=tenant, definition=definition, step=step, positions=[w.position for w in ready], now=now
    )
    members = []
    for walk in ready:
        if walk.position.contact_id in capped:
            # Over the cap shared with campaigns: this email is skipped, the journey goes on.
            _on(walk, logs, key, Outcome.SKIPPED, now, step["next"], "frequency_cap")
        else:
            members.append(walk)
    if not members:
        return
    result = step_kinds.send(
        tenant=tenant, version=version, key=key, step=step, positions=[w.position for w in members]
    )
    for walk in members:
        position = walk.position
        if position.pk in result.refused:
            # A revoked consent (or a suppression, an ended authorization...) stops the contact here.
            report.refused += 1
            _log(logs, position, key, Outcome.REFUSED, now, result.refused[position.pk])
            _exit(walk, None, now, f"send_refused:{result.refused[position.pk]}")
        else:
            report.sent += 1
            _log(logs, position, key, Outcome.SENT, now, message=result.sent[position.pk])
            walk.at = step["next"]


def _walk(tenant: Tenant, positions: Sequence[Position], now) -> Report:
    report = Report()
    versions = {
        v.pk: v
        for v in JourneyVersion.objects.filter(tenant=tenant, pk__in={p.version_id for p in positions})
    }
    logs: list = []
    walks = []
    converted = _goals_met(tenant, positions, versions, logs, now)
    for position in positions:
        if position.pk in converted:
            walks.append(_Walk(position, ""))
            continue
        walk = _Walk(position)
        target = _leave(walk, versions[position.version_id].definition, now)
        if target is not None:
            if position.step != ENTRY and position.waiting_event:
                # Which way an event wait was left; a plain wait's end needs no row of its own.
                left = "event" if position.event_arrived else "timeout"
                _log(logs, position, position.step, Outcome.LEFT, now, left)
            walk.at = target
            walks.append(walk)
    # No cycle without a wait is ever saved, and every step counts its visits: this ends.
    while any(walk.at for walk in walks):
        _round(tenant, walks, versions, logs, now, report)
    moved = [walk.position for walk in walks]
    _write(tenant, moved, logs, now)  # one statement: the new places and the step log rows
    for journey_id, contact_ids in report.jumps.items():
        report.jumped += _jump(tenant, journey_id, contact_ids, now)
    report.advanced = len(moved)
    report.exited = sum(1 for p in moved if p.state == Position.State.EXITED)
    report.waiting = len(moved) - report.exited
    for log in logs:
        report.outcomes[log.outcome] += 1
    return report


def _goals_met(tenant: Tenant, positions: Sequence[Position], versions: dict, logs: list, now) -> set:
    """Positions of journeys whose goal is a tag the contact now has: they leave as converted."""
    by_tag: dict[str, list[Position]] = defaultdict(list)
    for position in positions:
        tag = spec.goal_tag(versions[position.version_id].definition)
        if tag:
            by_tag[tag].append(position)
    converted = set()
    for tag, members in by_tag.items():
        have = step_kinds.tagged(tenant=tenant, tag=tag, contact_ids=[p.contact_id for p in members])
        for position in members:
            if position.contact_id in have:
                _exit(_Walk(position), logs, now, "goal", Outcome.CONVERTED)
                converted.add(position.pk)
    return converted


def _jump(tenant: Tenant, journey_id: str, contact_ids: list, now) -> int:
    """Contacts that jumped enter the other journey (active, by its entry rules), due now."""
    journey = Journey.objects.filter(tenant=tenant, pk=journey_id, status=Journey.Status.ACTIVE).first()
    if journey is None:
        return 0
    return len(positions_enter(tenant=tenant, journey=journey, contact_ids=contact_ids, now=now))


# The batch's new places and its step log in one statement. A batch's positions and log rows repeat
# a few shapes (every contact of a group took the same steps), so each row travels as its position
# and the number of its shape: two integer arrays sent as text (joined in C), the shapes as short
# arrays. Binding a thousand-element array per column in binary cost more than the statement
# (psycopg dumps each element in Python). Journey, version and contact of a log row are its
# position's, read back from the update. Log ids are time-ordered (journeys_log_id(), journeys 0007:
# uuidv7, monotonic within a session), so the inserts append at the right edge of the primary key
# instead of dirtying random pages, and a contact's rows of one advance sort by id in the order taken.
_WRITE = """
WITH shape AS (
  SELECT * FROM unnest(%(step)b::text[], %(state)b::text[], %(due_at)b::timestamptz[],
                       %(waiting_event)b::text[], %(event_arrived)b::boolean[], %(visits)b::text[],
                       %(exited_at)b::timestamptz[], %(exit_reason)b::text[])
         WITH ORDINALITY AS s(step, state, due_at, waiting_event, event_arrived, visits, exited_at,
                              exit_reason, shape)
), v AS (
  SELECT u.n, u.id, s.* FROM unnest(%(ids)b::uuid[], %(shapes)t::int[]) WITH ORDINALITY AS u(id, shape, n)
    JOIN shape s ON s.shape = u.shape
), moved AS (
  UPDATE journeys_position p SET step = v.step, state = v.state, due_at = v.due_at,
         waiting_event = v.waiting_event, event_arrived = v.event_arrived, visits = v.visits::jsonb,
         exited_at = v.exited_at, exit_reason = v.exit_reason, updated_at = %(now)b
    FROM v WHERE p.id = v.id AND p.tenant_id = %(tenant)b
  RETURNING v.n, p.id, p.journey_id, p.version_id, p.contact_id
), logged AS (
  INSERT INTO journeys_steplog (id, tenant_id, journey_id, version_id, position_id, contact_id, step,
                                outcome, detail, message_id, at)
  SELECT journeys_log_id(), %(tenant)b, m.journey_id, m.version_id, m.id, m.contact_id, k.step, k.outcome,
         k.detail, sent.message_id, %(now)b
    FROM unnest(%(log_positions)t::int[], %(log_kinds)t::int[]) WITH ORDINALITY AS l(n, kind, i)
    JOIN moved m ON m.n = l.n
    JOIN unnest(%(kind_step)b::text[], %(kind_outcome)b::text[], %(kind_detail)b::text[])
         WITH ORDINALITY AS k(step, outcome, detail, kind) ON k.kind = l.kind
    LEFT JOIN unnest(%(sent_logs)t::int[], %(sent_messages)b::uuid[]) AS sent(i, message_id) ON sent.i = l.i
   ORDER BY l.i
  RETURNING 1
)
SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM logged)
"""
_SHAPE = ("step", "state", "due_at", "waiting_event", "event_arrived", "visits", "exited_at", "exit_reason")


def _numbered(values: Iterable[int]) -> str:
    """An int[] literal: one join in C instead of an element dumped in Python each."""
    return "{" + ",".join(map(str, values)) + "}"


def _write(tenant: Tenant, positions: Sequence[Claimed], logs: list[_Logged], now) -> None:
    """The batch's new places and its log rows, one statement. Every log row names a position of the
    batch; a position the update missed would drop its rows, so the counts are checked (the
    transaction rolls back)."""
    if not positions:
        return
    shapes: dict[tuple, int] = {}
    position_shapes = []
    number = {}  # id(position object) -> its number in the statement (1-based)
    for n, p in enumerate(positions, 1):
        p.updated_at = now
        number[id(p)] = n
        key = (p.step, p.state, p.due_at, p.waiting_event, p.event_arrived, tuple(p.visits.items()),
               p.exited_at, p.exit_reason)  # fmt: skip
        position_shapes.append(shapes.setdefault(key, len(shapes) + 1))
    kinds: dict[tuple, int] = {}
    log_kinds, sent_logs, sent_messages = [], [], []
    for i, log in enumerate(logs, 1):
        log_kinds.append(kinds.setdefault((log.step, str(log.outcome), log.detail), len(kinds) + 1))
        if log.message_id is not None:
            sent_logs.append(i)
            sent_messages.append(log.message_id)
    columns = dict(zip(_SHAPE, zip(*shapes, strict=True), strict=True))
    columns["visits"] = tuple(json.dumps(dict(items)) for items in columns["visits"])
    kind_step, kind_outcome, kind_detail = zip(*kinds, strict=True) if kinds else ((), (), ())
    params = {
        **{name: list(values) for name, values in columns.items()},
        "ids": [p.pk for p in positions],
        "shapes": _numbered(position_shapes),
        "now": now,
        "tenant": tenant.pk,
        "log_positions": _numbered(number[id(log.position)] for log in logs),
        "log_kinds": _numbered(log_kinds),
        "kind_step": list(kind_step),
        "kind_outcome": list(kind_outcome),
        "kind_detail": list(kind_detail),
        "sent_logs": _numbered(sent_logs),
        "sent_messages": sent_messages,
    }
    moved, logged = (_execute(_WRITE, params) or [(0, 0)])[0]
    if moved != len(positions) or logged != len(logs):
        raise RuntimeError(
            f"journeys: wrote {moved} of {len(positions)} positions, {logged} of {len(logs)} log rows"
        )


class Claimed:
    """A claimed position: the columns the walk reads and writes, without a model instance per row
    (building a thousand of those cost more than the claim's query)."""

    __slots__ = (
        "contact_id",
        "due_at",
        "entered_at",
        "event_arrived",
        "exit_reason",
        "exited_at",
        "id",
        "journey_id",
        "state",
        "step",
        "tenant_id",
        "updated_at",
        "version_id",
        "visits",
        "waiting_event",
    )  # fmt: skip

    def __init__(self, row, parsed: dict[str, dict] | None = None):
        (self.id, self.tenant_id, self.journey_id, self.version_id, self.contact_id, self.step, self.state,
         self.due_at, self.waiting_event, self.event_arrived, visits, self.entered_at, self.exited_at,
         self.exit_reason) = row  # fmt: skip
        if isinstance(visits, str):
            # The claim reads the visits as text: a batch's positions share a few, each parsed once.
            # Shared, never changed in place (`_enter` replaces a position's dict).
            if parsed is None or visits not in parsed:
                loaded = json.loads(visits)
                if parsed is None:
                    parsed = {}
                parsed[visits] = loaded
            self.visits = parsed[visits]
        else:
            self.visits = dict(visits or {})
        self.updated_at = None

    @property
    def pk(self):
        return self.id


_CLAIM = """
SELECT id, tenant_id, journey_id, version_id, contact_id, step, state, due_at, waiting_event,
       event_arrived, visits::text, entered_at, exited_at, exit_reason
  FROM journeys_position
 WHERE tenant_id = %(tenant)b AND state = 'waiting' AND due_at <= %(now)b AND journey_id = ANY(%(active)b)
       /*ids*/
 ORDER BY due_at
 LIMIT %(limit)b
   FOR UPDATE SKIP LOCKED
"""


def _claim(tenant: Tenant, now, limit: int, ids: Iterable[uuid.UUID | str] | None = None) -> list[Claimed]:
    """Due positions of active journeys, locked; rows another worker holds are skipped, not waited for.
    The active journeys' ids, not a join: the due index is walked in order and nothing else is read."""
    active = list(
        Journey.objects.filter(tenant=tenant, status=Journey.Status.ACTIVE).values_list("pk", flat=True)
    )
    if not active:
        return []
    query = _CLAIM.replace("/*ids*/", "AND id = ANY(%(ids)b)" if ids is not None else "")
    params = {"tenant": tenant.pk, "now": now, "active": active, "limit": limit}
    if ids is not None:
        params["ids"] = [uuid.UUID(str(i)) for i in ids]
    parsed: dict[str, dict] = {}
    return [Claimed(row, parsed) for row in _execute(query, params) or ()]


def positions_advance(
    *,
    tenant: Tenant,
    now: datetime.datetime | None = None,
    ids: Iterable[uuid.UUID | str] | None = None,  # ids or their text (a task's arguments)
    batch: int | None = None,
) -> Report:
    """Claim one batch of due positions (all due ones, or only `ids`) and walk them forward, in one
    transaction: the tenant context opens it (outside a transaction it is one statement; inside one,
    a savepoint and three)."""
    now = now or timezone.now()
    with tenant_context(tenant):
        claimed = _claim(tenant, now, batch or batch_size(), ids)
        if not claimed:
            return Report()
        report = _walk(tenant, claimed, now)
        audit.record(
            actor=step_kinds.ENGINE,
            action="journeys.advance",
            tenant=tenant,
            details={
                "advanced": report.advanced,
                "sent": report.sent,
                "refused": report.refused,
                "exited": report.exited,
            },
            contacts=[p.contact_id for p in claimed],
        )
    return report


def positions_advance_all(
    *, tenant: Tenant, now: datetime.datetime | None = None, budget_seconds: float = 240.0
) -> int:
    """Batches until nothing is due (or the time budget is spent: the sweep comes back)."""
    started = timezone.now()
    total = 0
    while True:
        report = positions_advance(tenant=tenant, now=now)
        total += report.advanced
        if not report.advanced or (timezone.now() - started).total_seconds() > budget_seconds:
            return total


_ENTER = """
INSERT INTO journeys_position
  (id, tenant_id, journey_id, version_id, contact_id, step, state, due_at, waiting_event,
   event_arrived, visits, entered_at, updated_at, exit_reason)
SELECT gen_random_uuid(), %(tenant)s, %(journey)s, %(version)s, c.id, '', 'waiting', %(now)s, '',
       false, '{}'::jsonb, %(now)s, %(now)s, ''
FROM contacts_contact c
WHERE c.tenant_id = %(tenant)s AND c.id = ANY(%(contacts)s) AND c.deleted_at IS NULL /*reentry*/
ON CONFLICT DO NOTHING
RETURNING id, contact_id
"""
# Re-entry rules (the journey's live version): a contact inside never enters twice (the unique open
# position); "never" refuses anyone who was ever inside, after_days anyone who left within n days.
_BEEN_INSIDE = """AND NOT EXISTS (SELECT 1 FROM journeys_position p
  WHERE p.tenant_id = %(tenant)s AND p.journey_id = %(journey)s AND p.contact_id = c.id /*since*/)"""
_REENTRY = {
    "after_exit": "",
    "never": _BEEN_INSIDE.replace("/*since*/", ""),
    "after_days": _BEEN_INSIDE.replace("/*since*/", "AND p.exited_at > %(since)s"),
}


def positions_enter(
    *, tenant: Tenant, journey: Journey, contact_ids: Sequence[uuid.UUID], now: datetime.datetime
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Put contacts at the entry of the journey's live version, due now, as its re-entry rule allows.
    A contact already in the journey stays where it is (the unique open position); returns (position
    id, contact id) of each contact that entered, as the database inserted them."""
    if journey.live_version_id is None or not contact_ids:
        return []
    with tenant_context(tenant), connection.cursor() as cursor:
        definition = (
            JourneyVersion.objects.filter(tenant=tenant, pk=journey.live_version_id)
            .values_list("definition", flat=True)
            .first()
        )
        rule, days = spec.reentry_rule(definition or {})
        cursor.execute(
            _ENTER.replace("/*reentry*/", _REENTRY[rule]),
            {
                "tenant": tenant.pk,
                "journey": journey.pk,
                "version": journey.live_version_id,
                "now": now,
                "since": now - datetime.timedelta(days=days),
                "contacts": list(contact_ids),
            },
        )
        return [(row[0], row[1]) for row in cursor.fetchall()]
