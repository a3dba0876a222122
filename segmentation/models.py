"""Segments (saved audience definitions) and their frozen membership snapshots.

A segment stores its JSON definition (segmentation/dsl.py) and what was derived from it when it was
last saved (`uses_phi`) or counted. A snapshot is the recipient list frozen at one moment (a
campaign launch): its member rows are written once by one INSERT ... SELECT and triggers refuse
every later change (migration 0002) except sealing the member count once, so what was sent to
whom can always be proven.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from healthmail.tenants.models import TenantOwnedModel


class Segment(TenantOwnedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=120)
    description = models.CharField(max_length=500, blank=True)
    definition = models.JSONField(default=dict)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Derived from the fields the definition (and every segment it references) uses; read by the
    # send gate and campaign approval.
    uses_phi = models.BooleanField(default=False)
    # Other segments this definition references, kept for "where used" and cycle checks.
    references = models.JSONField(default=list, blank=True)
    last_count = models.PositiveIntegerField(null=True, blank=True)
    last_counted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="segment_name_unique")]

    def __str__(self) -> str:
        return self.name


class SegmentSnapshot(TenantOwnedModel):
    """The membership of a segment at one moment. Immutable once written."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    segment = models.ForeignKey(Segment, on_delete=models.PROTECT, related_name="snapshots")
    # The definition as it was, so later edits of the segment never change what this list means.
    definition = models.JSONField()
    uses_phi = models.BooleanField()
    # Null only while the members are being written; set once in the same transaction (sealed).
    member_count = models.PositiveIntegerField(null=True, blank=True)
    purpose = models.CharField(max_length=200, help_text="Why it was taken (a reference, never PHI).")
    taken_by = models.CharField(max_length=80, help_text="Actor reference.")
    taken_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-taken_at"]
        indexes = [models.Index(fields=["tenant", "segment", "taken_at"], name="segment_snapshot_taken")]

    def __str__(self) -> str:
        return f"snapshot {self.pk} of {self.segment_id}"


class SegmentSnapshotMember(TenantOwnedModel):
    """One contact id in a snapshot. A plain id, not a foreign key: the list is evidence of who was
    chosen and must not block (or be changed by) the later disposal of a contact."""

    id = models.BigAutoField(primary_key=True)
    snapshot = models.ForeignKey(SegmentSnapshot, on_delete=models.PROTECT, related_name="+")
    contact_id = models.UUIDField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "snapshot", "contact_id"], name="segment_snapshot_member_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.contact_id} in {self.snapshot_id}"


class CountQuery(TenantOwnedModel):
    """A sensitive count answered to a viewer without PHI access, kept for the disclosure policy's
    auditing (healthmail/disclosure.py): the budget per window, and the recent queries a new one is
    compared with. Holds the criteria the viewer typed and the true count, never a contact."""

    id = models.BigAutoField(primary_key=True)
    actor = models.CharField(max_length=80, help_text="Actor reference (user:<id>, api_key:<id>).")
    query = models.TextField(help_text="The canonical query text the answer was keyed by.")
    definition = models.JSONField()
    # The true count when asked (never shown): a symmetric difference is at least the difference of
    # the two counts, so pairs whose counts are far apart need no comparison in the database.
    count = models.PositiveIntegerField(null=True)
    # The budget unit when it is not the query itself: the cells of one breakdown share one (they
    # are disjoint groups, so together they cost one answer), e.g. "<query>#state".
    unit = models.TextField(blank=True, default="")
    asked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "actor", "asked_at"], name="segment_count_query_recent")]

    def __str__(self) -> str:
        return f"count query by {self.actor}"
