"""Reads of journeys: lists, one journey with its per-step counts, a contact's positions."""

from __future__ import annotations

import uuid
from collections import defaultdict

from django.db.models import Count, Q, QuerySet

from contacts.models import Contact
from healthmail import disclosure
from healthmail.errors import NotFound
from healthmail.tenants.models import Tenant

from .models import Journey, Position, StepLog

# What a step report counts: contacts standing on the step now, and what the step log recorded.
STEP_CELLS = ("waiting", "entered", "sent", "refused", "exited", "converted")


def journey_list(*, tenant: Tenant) -> QuerySet[Journey]:
    return Journey.objects.filter(tenant=tenant).select_related("live_version").order_by("-created_at")


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
    for row in logged:
        cells = counts[row["step"] or "entry"]
        for cell in ("entered", "sent", "refused", "exited", "converted"):
            cells[cell] = row[cell]
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
