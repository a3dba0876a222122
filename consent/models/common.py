"""What every consent record shares: purposes, channels, sources and the evidence fields."""

from __future__ import annotations

from django.db import models


class Purpose(models.TextChoices):
    """Why a message is sent. The first three are transactional (HIPAA treatment, payment and
    health-care operations, 45 CFR 164.506) and need no marketing consent."""

    TREATMENT = "treatment", "Treatment"
    PAYMENT = "payment", "Payment"
    OPERATIONS = "operations", "Health-care operations"
    MARKETING = "marketing", "Marketing"
    RESEARCH = "research", "Research"
    FUNDRAISING = "fundraising", "Fundraising"


TRANSACTIONAL_PURPOSES = frozenset({Purpose.TREATMENT, Purpose.PAYMENT, Purpose.OPERATIONS})
TOPIC_PURPOSES = (Purpose.MARKETING, Purpose.RESEARCH, Purpose.FUNDRAISING)


class Channel(models.TextChoices):
    EMAIL = "email", "Email"


class Source(models.TextChoices):
    """Where the evidence of a consent change came from."""

    WEB_FORM = "web_form", "Web form"
    API = "api", "API"
    IMPORT = "import", "Import"
    PAPER = "paper", "Paper form"
    VERBAL = "verbal", "Verbal"
    SYSTEM = "system", "System (expiry, reminders)"


class Evidence(models.Model):
    """What every history row proves: when, from where, through what, shown which text, by whom."""

    source = models.CharField(max_length=16, choices=Source.choices)
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField(auto_now_add=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    actor_type = models.CharField(max_length=16)
    actor_id = models.CharField(max_length=64, blank=True)

    class Meta:
        abstract = True
