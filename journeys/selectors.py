"""Reads of journeys: lists, one journey with its per-step counts, a contact's positions."""

from __future__ import annotations

import datetime
import uuid
from collections import defaultdict

from django.db.models import BooleanField, Count, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.functions import TruncDate
from django.utils import timezone

from audit.phi import phi_access
from campaigns.models import Campaign, Template
from consent.models import Topic
from contacts.models import Contact
from delivery.models import EngagementEvent
from healthmail import disclosure, labels
from healthmail.errors import NotFound
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant
from segmentation.models import Segment

from . import definition as spec
from .models import Journey, JourneyVersion, Position, StepLog

# What a step report counts: contacts standing on the step now, and what the step log recorded.
STEP_CELLS = ("waiting", "entered", "sent", "refused", "exited", "converted")


def journey_list(*, tenant: Tenant) -> QuerySet[Journey]:
    return Journey.objects.filter(tenant=tenant).select_related("live_version").order_by("-created_at")


def journeys_using_template(tenant: Tenant, template: Template) -> int:
    """How many journeys have a version (any status, archived journeys too) with a step that sends
    the template: campaigns' template removal asks (registered in apps.py)."""
    sends = RawSQL(
        "jsonb_path_exists(definition, '$.steps.* ? (@.template_id == $id)', jsonb_build_object('id', %s))",
        [str(template.pk)],
        output_field=BooleanField(),
    )
    with tenant_context(tenant):
        versions = JourneyVersion.objects.filter(tenant=tenant).alias(sends=sends).filter(sends=True)
        return versions.values("journey_id").distinct().count()


def journey_names(tenant: Tenant, ids: list[str]) -> dict[str, str]:
    """{journey id: name} of the given ids (healthmail.labels names message sources with it)."""
    valid = []
    for value in ids:
        try:
            valid.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    rows = Journey.objects.filter(tenant=tenant, pk__in=valid).values_list("pk", "name")
    return {str(pk): name for pk, name in rows}


def unopened_send_name(tenant: Tenant, entry: dict) -> str:
    """The send a "did not open" trigger watches, in words: the campaign's name, or the journey's name
    and its send step."""
    if "campaign_id" in entry:
        found = _name_by_id(Campaign.objects.filter(tenant=tenant), entry["campaign_id"])
        return f"the email of the campaign {found}" if found else "the email of a campaign since deleted"
    found = _name_by_id(Journey.objects.filter(tenant=tenant), entry.get("journey_id"))
    if not found:
        return "an email of a journey since deleted"
    return f"the email of step {entry.get('step', '')} of the journey {found}"


def _name_by_id(rows: QuerySet, value: object) -> str | None:
    """The name of the row with this id (None: no such row, or not an id)."""
    found_id = _uuid_or_none(value)
    return rows.filter(pk=found_id).values_list("name", flat=True).first() if found_id is not None else None


def _uuid_or_none(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def entry_summary(*, tenant: Tenant, entry: dict) -> str:
    """How contacts enter, in words: the trigger's label and what it names (the event, the date and
    offset, the segment's or topic's name), never a code or an id."""
    kind = entry.get("kind", "")
    text = labels.label("journey_entry", kind)
    if kind == "event":
        return f"{text}: {entry.get('event', '')}"
    if kind == "form":
        return f"{text}: {entry.get('form', '')}"
    if kind == "engagement" and entry.get("action") == spec.NOT_OPENED:
        return f"{text}: does not open {unopened_send_name(tenant, entry)} within {entry.get('days')} days"
    if kind == "engagement":
        return f"{text}: {labels.label('journey_engagement', entry.get('action', ''))}"
    if kind == "consent":
        topic = Topic.objects.filter(tenant=tenant, key=entry.get("topic", "")).values_list("name", flat=True)
        change = labels.label("journey_consent_change", entry.get("change", ""))
        return f"{text}: {change}, {topic.first() or 'a topic no longer offered'}"
    if kind == "segment":
        segment = _name_by_id(Segment.objects.filter(tenant=tenant), entry.get("segment_id"))
        return f"{text}: {segment or 'a segment since deleted'}"
    if kind == "date":
        field = str(entry.get("field", ""))
        shown = spec.DATE_FIELD_LABELS.get(field) or f"the custom field {field.removeprefix('custom.')}"
        every = ", every year" if entry.get("anniversary", field == "birth_date") else ""
        return f"{text}: {shown} + {entry.get('offset_days', 0)} days{every}"
    return text


def journey_get(*, tenant: Tenant, journey_id: uuid.UUID | str) -> Journey:
    """A journey of this tenant; anything else (foreign, malformed) is NotFound."""
    try:
        journey_id = uuid.UUID(str(journey_id))
    except ValueError:
        raise NotFound("No such journey.") from None
    journey = journey_list(tenant=tenant).filter(pk=journey_id).first()
    if journey is None:
        raise NotFound("No such journey.")
    return journey


# Log rows that are a contact entering the step (each entry writes one row saying what happened).
ENTRY_OUTCOMES = (
    "entered",
    "sent",
    "refused",
    "waiting",
    "moved",
    "updated",
    "deferred",
    "skipped",
    "jumped",
)


def step_counts(*, tenant: Tenant, journey: Journey) -> dict[str, dict[str, int]]:
    """{step: {cell: true count}} over every version (for the disclosure policy, never shown raw).
    entered: rows of an entry (an exit step's "completed" too); exited: contacts whose journey ended
    on the step (stopped by the gate, completed, taken out, the cycle cap)."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(STEP_CELLS, 0))
    waiting = (
        Position.objects.filter(tenant=tenant, journey=journey, state=Position.State.WAITING)
        .values("step")
        .annotate(n=Count("pk"))
    )
    for row in waiting:
        counts[row["step"] or "entry"]["waiting"] = row["n"]
    completed = Q(outcome="exited", detail="completed")
    logged = (
        StepLog.objects.filter(tenant=tenant, journey=journey)
        .values("step")
        .annotate(
            entered=Count("pk", filter=Q(outcome__in=ENTRY_OUTCOMES) | completed),
            sent=Count("pk", filter=Q(outcome="sent")),
            refused=Count("pk", filter=Q(outcome="refused")),
            exited=Count("pk", filter=Q(outcome__in=("exited", "refused"))),
            converted=Count("pk", filter=Q(outcome="converted")),
        )
    )
    for step_row in logged:
        cells = counts[step_row["step"] or "entry"]
        for cell in ("entered", "sent", "refused", "exited", "converted"):
            cells[cell] = step_row[cell]
    return dict(counts)


def step_counts_disclosed(
    *, tenant: Tenant, journey: Journey, viewer: disclosure.Viewer
) -> dict[str, dict[str, disclosure.Disclosed]]:
    """The step report as `viewer` may see it. A journey whose email uses PHI (or that says it is about
    health) chooses people by health information: its counts are sensitive."""
    sensitive = bool(journey.live_version and journey.live_version.uses_phi)
    return {
        step: disclosure.disclose_many(
            cells, tenant=tenant, viewer=viewer, query=f"journey:{journey.pk}:{step}", sensitive=sensitive
        )
        for step, cells in step_counts(tenant=tenant, journey=journey).items()
    }


def contact_positions(*, tenant: Tenant, contact: Contact) -> QuerySet[Position]:
    return (
        Position.objects.filter(tenant=tenant, contact=contact)
        .select_related("journey", "version")
        .order_by("-entered_at", "pk")
    )


# --- Staff pages -----------------------------------------------------------------------------------

# The page's step report: what a marketer asks of a step. "Moved on" is every way of leaving the step
# onward (a branch or wait left, an email queued, a contact updated).
REPORT_CELLS = ("entered", "waiting", "moved_on", "refused", "exited", "converted")
_MOVED_ON = ("moved", "sent", "updated")


def step_order(definition: dict | None) -> list[str]:
    """The steps from the start, breadth first (the order a reader follows), then any others."""
    if not definition:
        return []
    steps = definition.get("steps", {})
    order, todo = [], [definition.get("start")]
    while todo:
        key = todo.pop(0)
        if key in order or key not in steps:
            continue
        order.append(key)
        step = steps[key]
        todo.extend(step.get(e) for e in ("next", "yes", "no", "timeout_next") if step.get(e))
    return order + sorted(set(steps) - set(order))


def step_report_disclosed(
    *, tenant: Tenant, journey: Journey, viewer: disclosure.Viewer
) -> list[tuple[str, dict[str, disclosure.Disclosed]]]:
    """[(step, {cell: shown})] in the live definition's order, through the disclosure policy."""
    moved = (
        StepLog.objects.filter(tenant=tenant, journey=journey, outcome__in=_MOVED_ON)
        .values("step")
        .annotate(n=Count("pk"))
    )
    moved_on = {row["step"]: row["n"] for row in moved}
    counts = step_counts(tenant=tenant, journey=journey)
    definition = journey.live_version.definition if journey.live_version else None
    keys = step_order(definition)
    keys += sorted((set(counts) | set(moved_on)) - set(keys))
    sensitive = bool(journey.live_version and journey.live_version.uses_phi)
    report = []
    for key in keys:
        cells = counts.get(key, dict.fromkeys(STEP_CELLS, 0))
        true = {cell: cells.get(cell, 0) for cell in REPORT_CELLS if cell != "moved_on"}
        true["moved_on"] = moved_on.get(key, 0)
        shown = disclosure.disclose_many(
            true, tenant=tenant, viewer=viewer, query=f"journey-page:{journey.pk}:{key}", sensitive=sensitive
        )
        report.append((key, {cell: shown[cell] for cell in REPORT_CELLS}))
    return report


def journey_versions(*, tenant: Tenant, journey: Journey) -> QuerySet[JourneyVersion]:
    return JourneyVersion.objects.filter(tenant=tenant, journey=journey).select_related(
        "created_by", "submitted_by", "approved_by"
    )


def versions_waiting(*, tenant: Tenant) -> QuerySet[JourneyVersion]:
    """Versions submitted for review, oldest first (the approvals page)."""
    return (
        JourneyVersion.objects.filter(tenant=tenant, status=JourneyVersion.Status.IN_REVIEW)
        .select_related("journey", "submitted_by")
        .order_by("created_at")
    )


def contact_history(*, tenant: Tenant, contact: Contact) -> list[tuple[Position, list[StepLog]]]:
    """Each of the contact's positions with the steps it took, newest first."""
    positions = list(contact_positions(tenant=tenant, contact=contact))
    logs: dict = defaultdict(list)
    # By position (journey_steplog_position): a log row's contact is its position's.
    for log in StepLog.objects.filter(tenant=tenant, position__in=[p.pk for p in positions]).order_by(
        "at", "pk"
    ):
        logs[log.position_id].append(log)
    return [(position, logs[position.pk]) for position in positions]


def contact_history_read(
    *, actor, tenant: Tenant, contact: Contact, unmasked: bool
) -> list[tuple[Position, list[StepLog], bool]]:
    """The contact page's journey history, read like other PHI: which journeys a person is in says
    something about them, so the read is recorded (audit `phi.read`, in the patient's search).
    Masked viewers see the journeys whose email uses no health information; the others are listed
    as hidden, with neither name nor steps. [(position, steps taken, shown)]"""

    history = contact_history(tenant=tenant, contact=contact)
    if not history:
        return []
    purpose = "contact journey history" if unmasked else "masked journey history"
    with phi_access(
        actor=actor,
        tenant=tenant,
        objects=[position for position, _ in history],
        fields=["journey", "step", "state"],
        purpose=purpose,
        contact_ids=[contact.pk],
    ):
        return [(position, logs, unmasked or not position.version.uses_phi) for position, logs in history]


def conversions_by_day_disclosed(
    *, tenant: Tenant, journey: Journey, viewer: disclosure.Viewer, days: int = 30
) -> list[tuple[datetime.date, disclosure.Disclosed]]:
    """Goal conversions per day (UTC) over the last `days` days, newest first, each day a cell of the
    disclosure policy (small days hidden, PHI journeys noisy for viewers without PHI access)."""
    since = timezone.now() - datetime.timedelta(days=days)
    rows = (
        StepLog.objects.filter(
            tenant=tenant, journey=journey, outcome=StepLog.Outcome.CONVERTED, at__gte=since
        )
        .annotate(day=TruncDate("at", tzinfo=datetime.UTC))
        .values("day")
        .annotate(n=Count("pk"))
    )
    counts = {str(row["day"]): row["n"] for row in rows}
    if not counts:
        return []
    sensitive = bool(journey.live_version and journey.live_version.uses_phi)
    shown = disclosure.disclose_many(
        counts, tenant=tenant, viewer=viewer, query=f"journey-conversions:{journey.pk}", sensitive=sensitive
    )
    return [(datetime.date.fromisoformat(day), shown[day]) for day in sorted(counts, reverse=True)]


def split_counts(*, tenant: Tenant, journey: Journey, step: str) -> list[dict[str, int]]:
    """For each path of a split step: contacts sent down it (`entered`) and how many of them met the
    split's winner metric after the split (`won`: a human open or click of this journey's email, or
    the goal). True counts, for split_report_disclosed; over the live version's definition."""
    definition = journey.live_version.definition if journey.live_version else {}
    split = (definition.get("steps") or {}).get(step) or {}
    if split.get("type") != "split":
        raise NotFound("No such split step.")
    rows = StepLog.objects.filter(
        tenant=tenant,
        journey=journey,
        step=step,
        outcome=StepLog.Outcome.MOVED,
        detail__startswith="variant:",
    ).values_list("detail", "contact_id", "position_id", "at")
    paths: dict[int, list[tuple]] = defaultdict(list)
    for detail, contact_id, position_id, at in rows:
        paths[int(detail.removeprefix("variant:"))].append((contact_id, position_id, at))
    metric = split["metric"]
    won = _split_winners(tenant, journey, metric, [row for members in paths.values() for row in members])
    return [
        {
            "entered": len(paths.get(index, [])),
            "won": sum(1 for _, position_id, _ in paths.get(index, []) if position_id in won),
        }
        for index in range(len(split["variants"]))
    ]


def _split_winners(tenant: Tenant, journey: Journey, metric: str, members: list[tuple]) -> set:
    """Position ids (of `members`: contact, position, split time) that met the metric after the split."""
    if not members:
        return set()
    if metric == "goal":
        return set(
            StepLog.objects.filter(
                tenant=tenant,
                journey=journey,
                outcome=StepLog.Outcome.CONVERTED,
                position_id__in=[position_id for _, position_id, _ in members],
            ).values_list("position_id", flat=True)
        )

    from .services.steps import SOURCE_TYPE

    versions = [str(v) for v in journey.versions.values_list("pk", flat=True)]
    events = EngagementEvent.objects.filter(
        tenant=tenant,
        contact_id__in={contact_id for contact_id, _, _ in members},
        kind=metric,
        is_bot=False,
        source_type=SOURCE_TYPE,
        occurred_at__gte=min(at for _, _, at in members),
    ).values_list("contact_id", "occurred_at", "source_id")
    latest: dict = {}
    for contact_id, occurred_at, source_id in events:
        if source_id.partition(":")[0] in versions:
            latest[contact_id] = max(latest.get(contact_id, occurred_at), occurred_at)
    return {
        position_id
        for contact_id, position_id, at in members
        if contact_id in latest and latest[contact_id] >= at
    }


def split_winner(counts: list[dict[str, int]], *, minimum: int = 1) -> int | None:
    """The path with the best rate of the metric (at least `minimum` contacts down each path); None
    while no path leads or a path has too few contacts to judge."""
    if any(cell["entered"] < minimum for cell in counts):
        return None
    rates = [cell["won"] / cell["entered"] for cell in counts]
    best = max(rates)
    return rates.index(best) if rates.count(best) == 1 else None


def split_report_disclosed(*, tenant: Tenant, journey: Journey, step: str, viewer: disclosure.Viewer) -> dict:
    """The split's paths as `viewer` may see them, and the winner once every path has at least the
    policy's smallest group (a rate over fewer people would single them out)."""
    counts = split_counts(tenant=tenant, journey=journey, step=step)
    sensitive = bool(journey.live_version and journey.live_version.uses_phi)
    shown = [
        disclosure.disclose_many(
            cells,
            tenant=tenant,
            viewer=viewer,
            query=f"journey:{journey.pk}:{step}:{index}",
            sensitive=sensitive,
        )
        for index, cells in enumerate(counts)
    ]
    minimum = disclosure.policy_for(tenant).k
    return {"paths": shown, "winner": split_winner(counts, minimum=minimum)}
