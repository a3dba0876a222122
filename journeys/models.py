"""Journeys: versioned step graphs, per-contact positions, the history of every step taken, and the
named events that start and wake them. The database is the record of where every contact stands."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from healthmail.crypto.fields import EncryptedJSONField, PhiClass
from healthmail.tenants.models import Tenant, TenantOwnedModel


class Journey(TenantOwnedModel):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        IN_REVIEW = "in_review", "In review"
        APPROVED = "approved", "Approved"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        ARCHIVED = "archived", "Archived"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=120)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    # The version new contacts enter (the newest approved one once activated); contacts already in
    # the journey stay on the version they entered.
    live_version = models.ForeignKey(
        "JourneyVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Indexed copies of the live version's entry trigger: an event finds the journeys it starts
    # without reading every definition.
    entry_kind = models.CharField(max_length=16, blank=True)
    entry_event = models.CharField(max_length=64, blank=True)
    # The hour the date trigger last ran (once an hour), the day the segment-join reconcile last
    # ran (once a day): compare-and-set.
    date_checked_at = models.DateTimeField(null=True, blank=True)
    reconciled_on = models.DateField(null=True, blank=True)
    # The "did not open within N days" trigger's cursor: the deliveries of the watched send up to
    # (delivery time, message id) have been looked at; no id: all delivered up to that time.
    unopened_checked_at = models.DateTimeField(null=True, blank=True)
    unopened_checked_id = models.UUIDField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "status", "entry_kind", "entry_event"], name="journey_entry")
        ]

    def __str__(self) -> str:
        return self.name


class JourneyVersion(TenantOwnedModel):
    """One frozen definition. An edit is a new version; approval is given to a version."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        IN_REVIEW = "in_review", "In review"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    definition = models.JSONField(help_text="Validated step graph (journeys/definition.py).")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    uses_phi = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+"
    )
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "journey", "number"], name="journey_version_number_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.journey_id} v{self.number}"


class Position(TenantOwnedModel):
    """Where one contact stands in one journey. At most one open position per (journey, contact):
    a contact is never at two places of the same journey."""

    class State(models.TextChoices):
        WAITING = "waiting", "Waiting"
        EXITED = "exited", "Exited"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index on the tenant alone: an advanced position writes a new entry in every index (the
    # update changes state and due_at, so it cannot be HOT), and every query names the tenant with a
    # journey or a contact (their indexes) or goes through the partial indexes below.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False)
    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="+")
    version = models.ForeignKey(JourneyVersion, on_delete=models.PROTECT, related_name="+")
    contact = models.ForeignKey("contacts.Contact", on_delete=models.CASCADE, related_name="+")
    step = models.CharField(max_length=64)
    state = models.CharField(max_length=16, choices=State.choices, default=State.WAITING)
    # When the engine should look at it next: the end of a wait, an event wait's timeout, or now.
    due_at = models.DateTimeField(null=True, blank=True)
    waiting_event = models.CharField(max_length=64, blank=True)
    # Set by a matching event: the position leaves its event wait through the "event" path.
    event_arrived = models.BooleanField(default=False)
    # {step key: times entered}: the per-contact cycle cap.
    visits = models.JSONField(default=dict, blank=True)
    entered_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    exited_at = models.DateTimeField(null=True, blank=True)
    exit_reason = models.CharField(max_length=120, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "journey", "contact"],
                condition=models.Q(state="waiting"),
                name="journey_position_one_open_per_contact",
            ),
            models.CheckConstraint(
                condition=models.Q(state="exited")
                | models.Q(due_at__isnull=False)
                | ~models.Q(waiting_event=""),
                name="journey_position_waits_on_something",
            ),
        ]
        indexes = [
            # The claim: due positions in due order.
            models.Index(
                fields=["tenant", "due_at"], condition=models.Q(state="waiting"), name="journey_position_due"
            ),
            # An event wakes exactly the contact waiting for it.
            models.Index(
                fields=["tenant", "contact", "waiting_event"],
                condition=models.Q(state="waiting"),
                name="journey_position_event",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.contact_id} at {self.step}"


class StepLog(TenantOwnedModel):
    """One row per step a contact took (and how it left it): the step reports and the history."""

    class Outcome(models.TextChoices):
        # One row per step a contact entered, saying what happened there (the entry is implied):
        SENT = "sent", "Email queued"
        REFUSED = "refused", "Stopped by the send gate"
        WAITING = "waiting", "Waiting"
        MOVED = "moved", "Moved on"  # a branch or a split: the detail names the path taken
        UPDATED = "updated", "Contact updated"  # update, list, webhook, notify steps
        DEFERRED = "deferred", "Held until quiet hours end"
        SKIPPED = "skipped", "Email skipped (frequency cap)"
        EXITED = "exited", "Exited"  # at an exit step ("completed") or taken out (the detail)
        JUMPED = "jumped", "Jumped to another journey"
        # Rows that are not an entry:
        LEFT = "left", "Left the wait"  # an event wait, by "event" or "timeout"
        CONVERTED = "converted", "Reached the goal"
        ENTERED = "entered", "Entered"  # written by the first engine only (kept for its rows)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # The engine writes several rows per contact per advance: deferred foreign-key triggers on each
    # (checked at commit) cost more than the rows. The engine writes a log row only with its position
    # in the same transaction, and Django's collector still cascades deletes (position, and through it
    # the contact) and refuses a tenant's deletion. The tenant has no index of its own: the counts and
    # position indexes lead with it.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.PROTECT, related_name="+", db_constraint=False, db_index=False
    )
    journey = models.ForeignKey(
        Journey, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    version = models.ForeignKey(
        JourneyVersion, on_delete=models.PROTECT, related_name="+", db_constraint=False, db_index=False
    )
    # (tenant, position, at) below serves the position's history and the collector's cascade.
    position = models.ForeignKey(
        Position, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    # No index on the contact: a row's contact is its position's, so a contact's history is read
    # through its positions (the position index) and a deleted contact's rows go with its positions'
    # cascade. An entry per row in a random-key index was the dearest part of the step log's insert
    # at a million contacts (a random leaf page dirtied per contact, written again after every
    # checkpoint: docs/benchmarks.md, journeys).
    contact = models.ForeignKey(
        "contacts.Contact", on_delete=models.DO_NOTHING, related_name="+", db_constraint=False, db_index=False
    )
    step = models.CharField(max_length=64)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    detail = models.CharField(max_length=200, blank=True, help_text="A reason code, never PHI.")
    message = models.ForeignKey(
        "delivery.Message",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        db_index=False,  # journey_steplog_message below: only the rows of sent email
    )
    at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "journey", "step", "outcome"], name="journey_steplog_counts"),
            models.Index(fields=["tenant", "position", "at"], name="journey_steplog_position"),
            # Archiving messages sets this to NULL by message; most rows name none and get no entry.
            models.Index(
                fields=["message"], condition=models.Q(message__isnull=False), name="journey_steplog_message"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.step}: {self.outcome}"


class JourneyEvent(TenantOwnedModel):
    """A named event posted by the tenant's systems. The event id makes a retry harmless."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event_id = models.CharField(max_length=100)
    type = models.CharField(max_length=64)
    contact = models.ForeignKey("contacts.Contact", on_delete=models.CASCADE, related_name="+")
    # Lab results, appointment times: health information, sealed like every contact field.
    data = EncryptedJSONField(phi_class=PhiClass.CLINICAL, null=True, blank=True)
    received_at = models.DateTimeField()
    entered = models.PositiveIntegerField(default=0)
    woken = models.PositiveIntegerField(default=0)
    converted = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "event_id"], name="journey_event_id_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class SegmentMember(TenantOwnedModel):
    """A contact inside the audience of a journey started by joining a segment. Only the move from
    outside to inside (this row inserted) enters the contact; staying inside changes nothing."""

    id = models.BigAutoField(primary_key=True)
    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="+", db_index=False)
    contact = models.ForeignKey("contacts.Contact", on_delete=models.CASCADE, related_name="+")
    joined_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "journey", "contact"], name="journey_segment_member_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.contact_id} in {self.journey_id}"


class SegmentCheck(TenantOwnedModel):
    """A contact whose data changed since the segment-join journeys last looked at it: written in the
    transaction of the change, taken (and deleted) by the worker that checks it. A wake-up the broker
    loses leaves the row for the sweep."""

    id = models.BigAutoField(primary_key=True)
    contact = models.ForeignKey("contacts.Contact", on_delete=models.CASCADE, related_name="+")
    queued_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "contact"], name="journey_segment_check_unique")
        ]

    def __str__(self) -> str:
        return f"check {self.contact_id}"
