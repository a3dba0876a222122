"""Delivery models: the TLS policy cache per recipient domain, sender domains and DKIM keys, the outbox
(messages and attempts), the secure portal, bounce reports, tracking, engagement events and webhooks."""

from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models

from healthmail.crypto.fields import EncryptedTextField, PhiClass
from healthmail.tenants.models import Tenant, TenantOwnedModel


class DomainTlsPolicy(models.Model):
    """What we know about a recipient domain's transport security, cached until `expires_at`.

    Deliberately NOT tenant-owned and not under row-level security: a domain's MX hosts, MTA-STS and
    TLSA records are public DNS facts shared by every tenant, and no row names a person (no PHI).
    """

    domain = models.CharField(max_length=253, unique=True)
    source = models.CharField(max_length=16)  # delivery.tls.policy.Source
    mode = models.CharField(max_length=8, default="none")
    verified = models.BooleanField(null=True)
    reason = models.CharField(max_length=500, blank=True)
    policy = models.JSONField()  # TlsPolicy.to_json()
    resolved_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    # The last valid MTA-STS policy stays in force until its max_age even when a later fetch fails
    # (RFC 8461 §5.1): an attacker who blocks the HTTPS fetch must not downgrade the domain.
    mta_sts_policy = models.JSONField(null=True, blank=True)
    mta_sts_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["domain"]

    def __str__(self) -> str:
        return f"{self.domain}: {self.source}"


class WorkerHeartbeat(models.Model):
    """A drain's sign of life (delivery/engine/heartbeat.py): its claims are its own while it beats.
    Not tenant-owned: a worker name (host, process, random part) and a time, nothing of a tenant."""

    worker = models.CharField(max_length=80, primary_key=True)
    beat_at = models.DateTimeField()
    # When a sweep first found it silent for the grace; dead only if it is still silent a grace later
    # (its silence may have been the database's own outage: engine/heartbeat.py).
    suspected_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.worker} at {self.beat_at:%H:%M:%S}"


class SenderDomain(TenantOwnedModel):
    """A domain a tenant sends from. Mail is signed and sent only once its DNS records check out."""

    class Status(models.TextChoices):
        UNVERIFIED = "unverified", "Unverified"
        VERIFIED = "verified", "Verified"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    domain = models.CharField(max_length=253)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UNVERIFIED)
    checked_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    last_check = models.JSONField(default=dict, blank=True)  # per record: ok + a short note; no PHI
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["domain"]
        constraints = [models.UniqueConstraint(fields=["tenant", "domain"], name="sender_domain_unique")]

    def __str__(self) -> str:
        return self.domain


class DkimKey(TenantOwnedModel):
    """One DKIM selector and key. Rotation: a PENDING key is published next to the ACTIVE one, takes
    over once its record is seen in DNS, and the old key stays published (RETIRING) until retired."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending (publish the record)"
        ACTIVE = "active", "Active (signing)"
        RETIRING = "retiring", "Retiring (keep published)"
        RETIRED = "retired", "Retired (remove from DNS)"

    class Algorithm(models.TextChoices):
        RSA_SHA256 = "rsa-sha256", "RSA-2048 SHA-256"
        ED25519_SHA256 = "ed25519-sha256", "Ed25519 SHA-256"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    sender_domain = models.ForeignKey(SenderDomain, on_delete=models.CASCADE, related_name="keys")
    selector = models.CharField(max_length=63)
    algorithm = models.CharField(max_length=16, choices=Algorithm.choices, default=Algorithm.RSA_SHA256)
    # Not PHI, but a secret: sealed with the tenant's data key like PHI (PEM, PKCS#8).
    private_key = EncryptedTextField(phi_class=PhiClass.IDENTIFIER)
    public_key = models.TextField(help_text="The p= value published in DNS (base64).")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "sender_domain", "selector"], name="dkim_selector_unique"
            ),
            models.UniqueConstraint(
                fields=["tenant", "sender_domain"],
                condition=models.Q(state="active"),
                name="dkim_one_active_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.selector}._domainkey.{self.sender_domain_id}"


class EncryptionPolicy(models.TextChoices):
    """What happens when a recipient's domain offers no verified TLS."""

    TLS_ELSE_PORTAL = "tls_else_portal", "Verified TLS, else secure portal"  # the default for PHI
    PORTAL_ALWAYS = "portal_always", "Secure portal always"
    TLS_ELSE_FAIL = "tls_else_fail", "Verified TLS, else fail"
    OPPORTUNISTIC = "opportunistic", "Opportunistic TLS (non-PHI marketing only)"


class Stream(models.TextChoices):
    """Separate queues, identities and connection pools: marketing never delays or harms transactional."""

    TRANSACTIONAL = "transactional", "Transactional"
    MARKETING = "marketing", "Marketing"


# The final states of a message that reached the person (the partial index below lists them).
DELIVERED_STATES = ("delivered_tls", "delivered_portal", "delivered_waiver", "delivered_unverified")


class Message(TenantOwnedModel):
    """The outbox: one row per recipient, the queue of record. The broker only wakes workers up.

    Content is sealed with its own key (crypto-shredding on disposal); the address is encrypted and
    found by its blind index. Workers claim rows with FOR UPDATE SKIP LOCKED and a lease.
    """

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        DEFERRED = "deferred", "Deferred (will retry)"
        DELIVERED_TLS = "delivered_tls", "Delivered over verified TLS"
        DELIVERED_PORTAL = "delivered_portal", "Delivered via secure portal notice"
        DELIVERED_WAIVER = "delivered_waiver", "Delivered unencrypted under a patient waiver"
        # Non-PHI marketing under the OPPORTUNISTIC policy: TLS if offered, not authenticated.
        DELIVERED_UNVERIFIED = "delivered_unverified", "Delivered without verified TLS (no PHI)"
        BOUNCED = "bounced", "Bounced"
        FAILED = "failed", "Failed"
        SUPPRESSED = "suppressed", "Suppressed by the send gate"
        CANCELLED = "cancelled", "Cancelled"
        EXPIRED = "expired", "Expired"

    # No index of its own on tenant_id: every index of the outbox that a query by tenant can use
    # already starts with it (message_address, message_source_state, ...), and each new row version
    # of a claim or an outcome (not HOT: the state changes) paid one more index entry for it.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False)

    FINAL_STATES = frozenset(
        {
            State.DELIVERED_TLS,
            State.DELIVERED_PORTAL,
            State.DELIVERED_WAIVER,
            State.DELIVERED_UNVERIFIED,
            State.BOUNCED,
            State.FAILED,
            State.SUPPRESSED,
            State.CANCELLED,
            State.EXPIRED,
        }
    )

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    stream = models.CharField(max_length=16, choices=Stream.choices)
    source_type = models.CharField(max_length=32, help_text="campaign, journey or api")
    source_id = models.CharField(max_length=64, blank=True)
    variant = models.CharField(max_length=16, blank=True, help_text="A/B variant key, if any.")
    contact = models.ForeignKey(
        "contacts.Contact", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    to_address = EncryptedTextField(phi_class=PhiClass.IDENTIFIER)
    to_address_index = models.BinaryField(editable=False)
    to_address_index_next = models.BinaryField(null=True, editable=False)  # see crypto/index_rotation.py
    to_domain = models.CharField(max_length=253, help_text="Recipient domain (routing; not PHI alone).")
    sender_domain = models.ForeignKey(
        SenderDomain, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    purpose = models.CharField(
        max_length=32
    )  # consent purposes: treatment, payment, operations, marketing...
    topic = models.CharField(max_length=64, blank=True)
    uses_phi = models.BooleanField(default=True)
    encryption_policy = models.CharField(
        max_length=20, choices=EncryptionPolicy.choices, default=EncryptionPolicy.TLS_ELSE_PORTAL
    )
    # Sealed JSON {subject, preheader, html, text, headers} under `content_key`; NULL key = shredded.
    # Indexed only where set (message_content_key below): campaign rows are rendered at send time and
    # have none, and every row version of a claim or an outcome (not HOT) wrote a NULL entry.
    content_key = models.ForeignKey(
        "crypto.ObjectKey",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    content = models.BinaryField(
        null=True, blank=True, help_text="NULL: rendered at send time by the source's renderer."
    )
    message_id = models.CharField(max_length=255, unique=True, help_text="Stable RFC 5322 Message-ID.")
    state = models.CharField(max_length=20, choices=State.choices, default=State.QUEUED)
    state_reason = models.CharField(max_length=300, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    ambiguous_sends = models.PositiveSmallIntegerField(
        default=0,
        help_text="Connections lost after '.' before the reply (RFC 1047); resent with the same Message-ID.",
    )
    not_before = models.DateTimeField(null=True, blank=True, help_text="Scheduled time or next retry.")
    expires_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    # Set (and committed) right before a worker hands the message to SMTP, cleared with the outcome:
    # a lease that expires with it set means the worker died mid hand-off, so the server may have
    # the message; the sweeper counts it in `ambiguous_sends` before it is resent (same Message-ID).
    handoff_at = models.DateTimeField(null=True, blank=True)
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    held = models.BooleanField(default=False, help_text="Paused with its source: not claimed until resumed.")
    path = models.CharField(
        max_length=16, blank=True, help_text="direct | portal | waiver: how the content reaches the person."
    )
    evidence = models.JSONField(
        default=dict, blank=True, help_text="TLS/portal evidence of the final delivery."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The claim query (workers run in one tenant's context): due, unfinished rows of a stream.
            models.Index(
                fields=["tenant", "stream", "not_before"],
                name="message_claim",
                condition=models.Q(state__in=["queued", "deferred"]),
            ),
            models.Index(fields=["tenant", "source_type", "source_id", "state"], name="message_source_state"),
            # Journeys' "did not open within N days": a send's deliveries in delivery order.
            models.Index(
                fields=["tenant", "source_type", "source_id", "finished_at", "id"],
                name="message_source_delivered",
                condition=models.Q(state__in=DELIVERED_STATES),
            ),
            # Claimed rows (the sweeper's reclaim, the stream's live-claim check). Not on lease_until:
            # the hand-off mark renews the lease, and with no indexed column changed that update is
            # HOT (no new index entries; migration 0015 leaves room for it on the page).
            models.Index(fields=["tenant"], name="message_sending", condition=models.Q(state="sending")),
            models.Index(fields=["tenant", "to_address_index"], name="message_address"),
            # The content key's rows (a shred or a key's deletion sets them NULL: `content_key_id = k`
            # implies NOT NULL, so the planner uses it), without the rows that have no key.
            models.Index(
                fields=["content_key"],
                name="message_content_key",
                condition=models.Q(content_key__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"message {self.pk} ({self.state})"


class MessageAttempt(TenantOwnedModel):
    """One row per delivery try, so retries, bounces and ambiguous sends can be reconstructed."""

    id = models.BigAutoField(primary_key=True)
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attempt_rows")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16)  # delivery.smtp.outcomes status
    smtp_code = models.PositiveSmallIntegerField(null=True, blank=True)
    detail = models.CharField(
        max_length=300, blank=True, help_text="Reason or server reply, without addresses."
    )
    mx_host = models.CharField(max_length=253, blank=True)
    evidence = models.JSONField(default=dict, blank=True)
    path = models.CharField(max_length=16, blank=True, help_text="direct | portal | waiver")

    class Meta:
        ordering = ["started_at"]

    def __str__(self) -> str:
        return f"attempt {self.outcome}"


# --- Secure portal, bounce/complaint reports, tracking, webhooks out (issue 8, items 4, 7, 8, 9) ------


class PortalMessage(TenantOwnedModel):
    """A message held for the secure portal. The content is a copy sealed under its OWN object key, so
    retention can shred it independently of the outbox row. Nothing here names the recipient."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    # Sealed JSON {subject, html, text, attachments} under `content_key`; NULL key = shredded.
    content_key = models.ForeignKey(
        "crypto.ObjectKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    content = models.BinaryField(null=True, blank=True)
    expires_at = models.DateTimeField()
    recalled_at = models.DateTimeField(null=True, blank=True)
    recalled_by = models.CharField(max_length=80, blank=True)
    first_read_at = models.DateTimeField(null=True, blank=True)
    last_read_at = models.DateTimeField(null=True, blank=True)
    read_count = models.PositiveIntegerField(default=0)
    passphrase_hash = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "message"], name="portal_message_one_per_message")
        ]

    def __str__(self) -> str:
        return f"portal message {self.pk}"


class PortalLink(TenantOwnedModel):
    """One notice link. Only the SHA-256 of the token is stored; a re-sent notice gets a new link."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    portal_message = models.ForeignKey(PortalMessage, on_delete=models.CASCADE, related_name="links")
    token_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "token_hash"], name="portal_link_token_unique")
        ]

    def __str__(self) -> str:
        return f"portal link {self.pk}"


class PortalCode(TenantOwnedModel):
    """A one-time code sent to the recipient's address; stored as a keyed hash, short-lived."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    portal_message = models.ForeignKey(PortalMessage, on_delete=models.CASCADE, related_name="codes")
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"portal code {self.pk}"


class PortalReply(TenantOwnedModel):
    """A recipient's secure reply, sealed under its own object key (shreddable like the message)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    portal_message = models.ForeignKey(PortalMessage, on_delete=models.CASCADE, related_name="replies")
    content_key = models.ForeignKey(
        "crypto.ObjectKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    body = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
    staff_read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"portal reply {self.pk}"


class DeliveryReport(TenantOwnedModel):
    """A bounce (a DSN, a plain-text bounce or our own SMTP transaction's 5xx) or a complaint, matched
    to a message and classified (delivery/inbound/classify.py). Status codes and actions only: the
    diagnostic text may echo addresses, so it is not kept."""

    class Kind(models.TextChoices):
        BOUNCE = "bounce", "Bounce (hard)"
        SOFT_BOUNCE = "soft_bounce", "Bounce (soft / delayed)"
        COMPLAINT = "complaint", "Complaint"
        DELIVERED = "delivered", "Delivery notification"
        DELAYED = "delayed", "Delayed (the remote MTA still tries)"
        SENDER_POLICY = "sender_policy", "Refused for the sender's policy or authentication"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    action = models.CharField(max_length=16, blank=True)  # failed | delayed | delivered | relayed | expanded
    status = models.CharField(max_length=16, blank=True)  # enhanced status code, e.g. 5.1.1
    matched_by = models.CharField(max_length=16)  # verp | message-id | smtp (our own transaction)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]
        indexes = [models.Index(fields=["tenant", "message"], name="delivery_report_message")]

    def __str__(self) -> str:
        return f"{self.kind} {self.status}"


class TrackedUrl(TenantOwnedModel):
    """A link target recorded at render time. The click redirect goes only to these (no open
    redirect); one row per distinct URL of the tenant, shared by every message that links to it."""

    id = models.BigAutoField(primary_key=True)
    url_hash = models.CharField(max_length=64)
    url = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "url_hash"], name="tracked_url_unique")]

    def __str__(self) -> str:
        return f"tracked url {self.pk}"


class EngagementEvent(TenantOwnedModel):
    """An open, click, conversion, form submission or page view. Bot/prefetch opens are kept but
    flagged, and left out of counts."""

    class Kind(models.TextChoices):
        OPEN = "open", "Open"
        CLICK = "click", "Click"
        CONVERSION = "conversion", "Conversion"
        FORM_SUBMISSION = "form_submission", "Form submission"
        PAGE_VIEW = "page_view", "Page view"

    id = models.BigAutoField(primary_key=True)
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    contact = models.ForeignKey(
        "contacts.Contact", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    label = models.CharField(max_length=64, blank=True, help_text="Form or page key for reported events.")
    link = models.ForeignKey(TrackedUrl, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source_type = models.CharField(max_length=32, blank=True)
    source_id = models.CharField(max_length=64, blank=True)
    variant = models.CharField(max_length=16, blank=True)
    occurred_at = models.DateTimeField()
    is_bot = models.BooleanField(default=False)
    bot_reason = models.CharField(max_length=32, blank=True)

    class Meta:
        indexes = [
            # The segmentation selector: a contact's events of a kind since a moment.
            models.Index(fields=["tenant", "contact", "kind", "occurred_at"], name="engagement_contact"),
            models.Index(fields=["tenant", "source_type", "source_id", "kind"], name="engagement_source"),
            # Segments' "opened within N days": the tenant's human events of a kind since a moment,
            # with the contact, read from the index alone (segmentation/strategies.py, Engagement).
            models.Index(
                fields=["tenant", "kind", "occurred_at"],
                include=["contact"],
                condition=models.Q(is_bot=False),
                name="engagement_recent_human",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.occurred_at}"


class WebhookEndpoint(TenantOwnedModel):
    """Where a tenant wants message events POSTed, signed with its secret."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    # Not PHI, but a secret: sealed with the tenant's data key.
    secret = EncryptedTextField(phi_class=PhiClass.IDENTIFIER)
    # After a rotation the old secret still signs (beside the new one) until this time, so receivers
    # can switch without dropping events.
    previous_secret = EncryptedTextField(phi_class=PhiClass.IDENTIFIER, null=True, blank=True)
    previous_secret_until = models.DateTimeField(null=True, blank=True)
    event_types = ArrayField(models.CharField(max_length=32))
    active = models.BooleanField(default=True)
    created_by = models.CharField(max_length=80)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"webhook endpoint {self.pk}"


class WebhookDelivery(TenantOwnedModel):
    """One event for one endpoint, with its attempt log; retried with exponential backoff."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Delivered"
        FAILED = "failed", "Failed (gave up)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event_type = models.CharField(max_length=32)
    stream = models.CharField(max_length=16, choices=Stream.choices, default=Stream.TRANSACTIONAL)
    payload = models.JSONField()  # ids, states and timestamps only: never PHI
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_duration_ms = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    attempt_log = models.JSONField(default=list, blank=True)  # [{at, status, duration_ms, error}]
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["tenant", "next_attempt_at"],
                name="webhook_delivery_due",
                condition=models.Q(state="pending"),
            )
        ]

    def __str__(self) -> str:
        return f"webhook delivery {self.pk} ({self.state})"


# Sender-domain health and pauses live with the inbound feedback that fills them.
from .inbound.models import DomainPause, SenderFeedback  # noqa: E402, F401
