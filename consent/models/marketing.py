"""Marketing consent by topic, the texts shown, its history and current state, and preferences."""

from __future__ import annotations

import uuid

from django.db import models

from contacts.models import Contact
from healthmail.tenants.models import TenantOwnedModel

from .common import TOPIC_PURPOSES, Channel, Evidence, Purpose


class Topic(TenantOwnedModel):
    """What a person may opt in to or out of. System topics exist in every tenant (created on first
    use); tenants add their own marketing topics."""

    SYSTEM = {
        "marketing_newsletters": ("Newsletters", Purpose.MARKETING),
        "service_announcements": ("New services and announcements", Purpose.MARKETING),
        "research": ("Research studies", Purpose.RESEARCH),
        "fundraising": ("Fundraising", Purpose.FUNDRAISING),
    }

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    key = models.SlugField(max_length=50)
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    purpose = models.CharField(
        max_length=16, choices=[(p.value, p.label) for p in TOPIC_PURPOSES], default=Purpose.MARKETING
    )
    is_system = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-is_system", "name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="consent_topic_key_unique")]

    def __str__(self) -> str:
        return self.name


class ConsentText(TenantOwnedModel):
    """A version of wording shown to people (opt-in, preference center, waiver risk). Immutable."""

    class Kind(models.TextChoices):
        OPT_IN = "opt_in", "Opt-in wording"
        PREFERENCE_CENTER = "preference_center", "Preference center"
        UNENCRYPTED_WAIVER = "unencrypted_waiver", "Unencrypted email: risk explanation"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=24, choices=Kind.choices)
    version = models.PositiveIntegerField()
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["kind", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "kind", "version"], name="consent_text_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} v{self.version}"


class ConsentEvent(Evidence, TenantOwnedModel):
    """One change of a person's consent for a topic on a channel. Append-only.

    Retention: these rows must outlive the campaigns they allowed (HIPAA 164.316(b)(2): six years).
    If a disposal run must ever delete them, it will need its own guarded path through the trigger.
    """

    class Kind(models.TextChoices):
        GRANTED = "granted", "Granted"
        REVOKED = "revoked", "Revoked"
        EXPIRED = "expired", "Expired"

    id = models.BigAutoField(primary_key=True)
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.EMAIL)
    topic = models.ForeignKey(Topic, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    text = models.ForeignKey(ConsentText, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["occurred_at", "id"]
        indexes = [models.Index(fields=["tenant", "contact", "occurred_at"], name="consent_event_contact")]

    def __str__(self) -> str:
        return f"{self.kind} {self.topic_id} for {self.contact_id}"


class ConsentState(TenantOwnedModel):
    """The latest ConsentEvent per (contact, channel, topic), maintained in the same transaction."""

    id = models.BigAutoField(primary_key=True)
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.EMAIL)
    topic = models.ForeignKey(Topic, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=8, choices=ConsentEvent.Kind.choices)
    event = models.ForeignKey(ConsentEvent, on_delete=models.PROTECT, related_name="+")
    occurred_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "contact", "channel", "topic"], name="consent_state_unique"
            )
        ]
        indexes = [
            # Who holds a topic's consent: scanned by topic, or probed per contact, without the table
            # (a segment's consent condition, segmentation/strategies.py).
            models.Index(
                fields=["tenant", "topic", "status", "channel", "contact"], name="consent_state_topic_contact"
            )
        ]

    def __str__(self) -> str:
        return f"{self.status} {self.topic_id} for {self.contact_id}"


class Frequency(models.TextChoices):
    AS_PUBLISHED = "as_published", "Whenever there is news"
    WEEKLY = "weekly", "At most once a week"
    MONTHLY = "monthly", "At most once a month"


class ContactPreference(TenantOwnedModel):
    """Frequency and pause chosen in the preference center (current values; history below)."""

    id = models.BigAutoField(primary_key=True)
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="+")
    frequency = models.CharField(max_length=16, choices=Frequency.choices, default=Frequency.AS_PUBLISHED)
    paused_until = models.DateField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "contact"], name="consent_preference_unique")
        ]

    def __str__(self) -> str:
        return f"preferences of {self.contact_id}"


class PreferenceChange(Evidence, TenantOwnedModel):
    """History of frequency and pause changes. Append-only."""

    id = models.BigAutoField(primary_key=True)
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="+")
    field = models.CharField(max_length=16)
    value = models.CharField(max_length=32, blank=True)
    text = models.ForeignKey(ConsentText, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["occurred_at", "id"]
        indexes = [models.Index(fields=["tenant", "contact"], name="consent_pref_change_contact")]

    def __str__(self) -> str:
        return f"{self.field} change for {self.contact_id}"
