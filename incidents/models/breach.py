"""Incidents: what happened, its evidence, who it touched, the risk assessment, the decision, the
notices and their delays. Rows hold references (ids, states, counts) and the officers' own words;
never PHI values."""

from __future__ import annotations

import datetime
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from healthmail.tenants.models import TenantOwnedModel

_USER = settings.AUTH_USER_MODEL


class Incident(TenantOwnedModel):
    class Status(models.TextChoices):
        OPEN = "open", "Open: investigating"
        PENDING_SIGN_OFF = "pending_sign_off", "Decision awaiting a second officer"
        BREACH = "breach", "Breach: notifying"
        NOT_BREACH = "not_breach", "Not a breach (low probability of compromise)"
        CLOSED = "closed", "Closed"

    class Decision(models.TextChoices):
        BREACH = "breach", "Breach"
        NOT_BREACH = "not_breach", "Not a breach: low probability that the PHI has been compromised"

    class Probability(models.TextChoices):
        LOW = "low", "Low probability of compromise"
        NOT_LOW = "not_low", "Not a low probability of compromise"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    title = models.CharField(max_length=200)
    description = models.TextField(help_text="What happened, in plain words, without PHI values.")
    how_discovered = models.CharField(max_length=500)
    # 164.404(a)(2): the clock starts on the first day the breach is known, or would have been known
    # with reasonable diligence; the officer records that day, not the day the incident was filed.
    discovered_on = models.DateField()
    occurred_from = models.DateTimeField(null=True, blank=True)
    occurred_until = models.DateTimeField(null=True, blank=True)
    business_associate = models.BooleanField(
        default=False, help_text="Discovered by a business associate: the BAA's notice term applies."
    )
    baa = models.ForeignKey(
        "tenants.BusinessAssociateAgreement",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    opened_from_alert = models.ForeignKey(
        "audit.Alert", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    opened_by = models.ForeignKey(_USER, on_delete=models.PROTECT, related_name="+")
    opened_at = models.DateTimeField(default=timezone.now)
    # How the affected individuals were derived (a window and an actor of the audit trail).
    derived_query = models.JSONField(default=dict, blank=True)
    # 164.402(2)(i)-(iv): the four factors, each with the officer's reasoning.
    factor_nature = models.TextField(blank=True)
    factor_recipient = models.TextField(blank=True)
    factor_acquired = models.TextField(blank=True)
    factor_mitigated = models.TextField(blank=True)
    probability = models.CharField(max_length=10, choices=Probability.choices, blank=True)
    assessed_by = models.ForeignKey(_USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    assessed_at = models.DateTimeField(null=True, blank=True)
    decision = models.CharField(max_length=12, choices=Decision.choices, blank=True)
    decision_reason = models.TextField(blank=True)
    proposed_by = models.ForeignKey(_USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    proposed_at = models.DateTimeField(null=True, blank=True)
    signed_off_by = models.ForeignKey(
        _USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    signed_off_at = models.DateTimeField(null=True, blank=True)
    sole_officer_reason = models.CharField(max_length=1000, blank=True)
    # 164.404(c)(1)(B)-(E): the content every notice letter carries.
    phi_types = models.CharField(max_length=500, blank=True)
    steps_for_individuals = models.TextField(blank=True)
    what_we_are_doing = models.TextField(blank=True)
    contact_procedures = models.TextField(blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-discovered_on", "-opened_at"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(status__in=["breach", "not_breach"])
                | models.Q(signed_off_by__isnull=False, decision=models.F("status")),
                name="incident_decision_signed_off",
            ),
            models.CheckConstraint(
                condition=models.Q(occurred_until__isnull=True)
                | models.Q(occurred_from__isnull=True)
                | models.Q(occurred_until__gte=models.F("occurred_from")),
                name="incident_window_ordered",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_open(self) -> bool:
        return self.status in (self.Status.OPEN, self.Status.PENDING_SIGN_OFF, self.Status.BREACH)


class Evidence(TenantOwnedModel):
    class Kind(models.TextChoices):
        AUDIT_EVENT = "audit_event", "Audit event"
        ALERT = "alert", "Alert"
        MESSAGE = "message", "Message"
        EXPORT = "export", "Evidence export"

    id = models.BigAutoField(primary_key=True)
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="evidence")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    reference = models.CharField(max_length=64)
    note = models.CharField(max_length=500, blank=True)
    added_by = models.ForeignKey(_USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["added_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "incident", "kind", "reference"], name="incident_evidence_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.reference}"


class AffectedIndividual(TenantOwnedModel):
    """A contact the incident touched, derived from the audit trail (events that name the contact)."""

    id = models.BigAutoField(primary_key=True)
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="affected")
    contact = models.ForeignKey("contacts.Contact", on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=2, blank=True)  # for 164.406 (residents of a State)
    event_count = models.PositiveIntegerField(default=0)
    first_event_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "incident", "contact"], name="incident_affected_once")
        ]

    def __str__(self) -> str:
        return f"affected {self.contact_id}"


class Notice(TenantOwnedModel):
    """One notice sent or to be sent: to an individual (through the secure portal) or a substitute
    notice when the contact details do not allow a written one (164.404(d)(2))."""

    class Method(models.TextChoices):
        PORTAL = "portal", "Secure portal (email notice)"
        SUBSTITUTE = "substitute", "Substitute notice needed"

    id = models.BigAutoField(primary_key=True)
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="notices")
    audience = models.CharField(max_length=20)
    contact = models.ForeignKey(
        "contacts.Contact", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    method = models.CharField(max_length=12, choices=Method.choices)
    message_id = models.UUIDField(null=True, blank=True)  # the outbox row (delivery.Message)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(_USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "incident", "audience", "contact"], name="incident_notice_once_per_contact"
            )
        ]

    def __str__(self) -> str:
        return f"{self.audience} notice ({self.method})"


class ClockAlert(TenantOwnedModel):
    """A deadline alert raised once per incident, audience and threshold (30/14/7/1 days)."""

    id = models.BigAutoField(primary_key=True)
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="clock_alerts")
    audience = models.CharField(max_length=40)
    threshold_days = models.PositiveSmallIntegerField()
    due_on = models.DateField()
    raised_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "incident", "audience", "threshold_days"], name="incident_clock_alert_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.audience} {self.threshold_days} days"


class AudienceNotice(TenantOwnedModel):
    """A notice to the Secretary of HHS, a State's media or the covered entity (164.406-164.410): the
    officer prepares it from the incident's letter, sends it outside the platform, and records when,
    how and with which reference. The row keeps the letter's SHA-256, never its text (the covered
    entity's letter names the individuals)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="audience_notices")
    audience = models.CharField(max_length=40)
    state = models.CharField(max_length=2, blank=True)
    letter_sha256 = models.CharField(max_length=64)
    prepared_by = models.ForeignKey(_USER, on_delete=models.PROTECT, related_name="+")
    prepared_at = models.DateTimeField(default=timezone.now)
    sent_on = models.DateField(null=True, blank=True)
    sent_by = models.ForeignKey(_USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=200, blank=True)
    reference = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["audience", "state"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "incident", "audience", "state"], name="incident_audience_notice_once"
            ),
            models.CheckConstraint(
                condition=models.Q(sent_on__isnull=True) | ~models.Q(channel=""),
                name="audience_notice_sent_says_how",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.audience} notice"


class LawEnforcementDelay(TenantOwnedModel):
    """A law enforcement official's statement that a notice would impede a criminal investigation or
    damage national security (164.412). Append-only: it is the record the delay rests on."""

    class Kind(models.TextChoices):
        WRITTEN = "written", "Written statement (delay for the time it specifies)"
        ORAL = "oral", "Oral statement (documented here; at most 30 days)"

    class Ground(models.TextChoices):
        INVESTIGATION = "investigation", "Would impede a criminal investigation"
        NATIONAL_SECURITY = "national_security", "Would cause damage to national security"

    id = models.BigAutoField(primary_key=True)
    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="delays")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    ground = models.CharField(max_length=20, choices=Ground.choices)
    official = models.CharField(max_length=300, help_text="The official's name, title and agency.")
    stated_on = models.DateField()
    delay_until = models.DateField(help_text="The first day notices may go out again.")
    statement = models.TextField(help_text="What the official stated (an oral statement, documented).")
    recorded_by = models.ForeignKey(_USER, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["stated_on", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(delay_until__gt=models.F("stated_on")), name="delay_ends_after_statement"
            ),
            models.CheckConstraint(
                condition=~models.Q(kind="oral")
                | models.Q(delay_until__lte=models.F("stated_on") + datetime.timedelta(days=30)),
                name="oral_delay_at_most_30_days",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} delay until {self.delay_until}"
