"""Every record category, declared in one place, grouped by the app that owns the records.

Default policies ship with their legal basis. The minimum is the longest applicable rule (HIPAA
documentation: six years; state medical-record rules where a message is part of the medical
record); the maximum is where we stop keeping PHI nobody needs (minimum necessary, data
minimization). These are defaults for counsel to confirm, not legal advice: every tenant reviews
them and writes its own versions.

Each category either moves to the archive (an archiver from retention/archive/moves.py) or says
why it never does (`not_archivable`, shown when a policy asks to archive it). Form submissions are
recorded today as tracking events (kind "form_submission", under that category); a forms app that
stores the submitted answers registers its own category here.
"""

from __future__ import annotations

from . import archive, destruction
from .registry import YEAR, Category, DefaultPolicy, LegalBasis, Source, register_category

# --- Legal bases quoted by the defaults -------------------------------------------------------------
HIPAA_SECURITY_DOCS = LegalBasis(
    "45 CFR 164.316(b)(2)(i)",
    "Security Rule documentation (policies, actions, activities, assessments) is retained six years "
    "from its creation or the date it was last in effect, whichever is later.",
    6,
)
HIPAA_PRIVACY_DOCS = LegalBasis(
    "45 CFR 164.530(j)(2)",
    "Privacy Rule documentation (policies, communications and actions that must be documented) is "
    "retained six years from creation or last effective date.",
    6,
)
HIPAA_AUTHORIZATIONS = LegalBasis(
    "45 CFR 164.508(b)(6)",
    "A covered entity must document and retain any signed authorization (retention per 164.530(j)).",
    6,
)
HIPAA_AUDIT_CONTROLS = LegalBasis(
    "45 CFR 164.312(b)",
    "Audit controls record and examine activity in systems holding ePHI; the records are Security "
    "Rule documentation kept six years (164.316(b)(2)).",
    6,
)
HIPAA_TRANSMISSION = LegalBasis(
    "45 CFR 164.312(e)(1)",
    "Transmission security: the TLS/portal evidence shows how each message was protected in transit.",
)
MINIMUM_NECESSARY = LegalBasis(
    "45 CFR 164.502(b), 164.514(d)",
    "Minimum necessary: PHI kept beyond any need is exposure without purpose; the maximum ends it.",
)
TEXAS_RECORDS = LegalBasis(
    "22 Tex. Admin. Code 165.1(b)",
    "Texas physicians keep medical records at least seven years after the last treatment (minors: "
    "until age 21 or seven years, whichever is longer).",
    7,
    "where a message forms part of the medical record of a Texas patient",
)
NEW_YORK_RECORDS = LegalBasis(
    "8 NYCRR 29.2(a)(3)",
    "New York professionals keep patient records at least six years (minors: until age 22 at least).",
    6,
    "where a message forms part of the medical record of a New York patient",
)
CALIFORNIA_RECORDS = LegalBasis(
    "Cal. Health & Safety Code 123145",
    "California licensed facilities keep patient records at least seven years after discharge "
    "(minors: at least one year past age 18, and never less than seven years).",
    7,
    "where a message forms part of a California facility's patient record",
)
CAN_SPAM = LegalBasis(
    "15 U.S.C. 7704(a)(4); 16 CFR 316.5",
    "Opt-out requests must be honored for as long as mail is sent; suppression entries are never "
    "disposed of by this category (they live with consent records).",
)
STATE_MEDICAL_RECORDS = (TEXAS_RECORDS, NEW_YORK_RECORDS, CALIFORNIA_RECORDS)

MESSAGE_GROUP = "message"
FINAL_MESSAGE = (
    "r.state IN ('delivered_tls','delivered_portal','delivered_waiver','bounced','failed',"
    "'suppressed','cancelled','expired')"
)
MESSAGE_SOURCE = "NULLIF(m.source_type || ':' || m.source_id, ':')"
# A portal copy nobody can open any more (recalled, or past its expiry at the archive's moment).
PORTAL_CLOSED = "r.recalled_at IS NOT NULL OR r.expires_at <= %(as_of)s"
PORTAL_COPY_OPEN = (
    "EXISTS (SELECT 1 FROM delivery_portalmessage p WHERE p.tenant_id = r.tenant_id AND p.message_id = r.id"
    " AND p.recalled_at IS NULL AND p.expires_at > %(as_of)s)"
)
# Children of a message take the message's clock, contact and source, so a hold decides the same
# for a message and everything that cascades from it.
JOIN_MESSAGE = "LEFT JOIN delivery_message m ON m.id = r.message_id AND m.tenant_id = r.tenant_id"

# --- delivery: outbox messages, portal messages, tracking, webhooks ---------------------------------
register_category(
    Category(
        key="message_content",
        label="Message content",
        app="delivery",
        description="Subject, body and headers of each sent message (sealed under its own key).",
        sources=(
            Source(
                "delivery.Message",
                clock="r.created_at",
                contact_sql="r.contact_id",
                source_sql="NULLIF(r.source_type || ':' || r.source_id, ':')",
                where_sql=f"r.content_key_id IS NOT NULL AND {FINAL_MESSAGE}",
            ),
        ),
        default=DefaultPolicy(
            min_days=6 * YEAR,
            max_days=7 * YEAR,
            action="destroy",
            approval_required=True,
            rationale=(
                "Messages that must be documented (e.g. marketing sent under an authorization, notices) "
                "are kept six years; where a message is part of the medical record, state rules can "
                "require seven. Seven years covers both; after that the content is crypto-shredded. "
                "After two years it moves to the archive, still under its own key."
            ),
            legal_basis=(HIPAA_PRIVACY_DOCS, *STATE_MEDICAL_RECORDS, MINIMUM_NECESSARY),
            archive_after_days=2 * YEAR,
        ),
        hold_group=MESSAGE_GROUP,
        destroy=destruction.shred_content,
        archive=archive.archive_message_content,
        method="crypto-shredding: the message's own key deleted, ciphertext cleared",
        subsumed_by=(("message_metadata", "r.created_at"),),
        order=10,
    )
)
register_category(
    Category(
        key="message_metadata",
        label="Message metadata and delivery evidence",
        app="delivery",
        description="Recipient (encrypted, blind-indexed), state, attempts, TLS/portal evidence, reports.",
        sources=(
            Source(
                "delivery.Message",
                clock="r.created_at",
                contact_sql="r.contact_id",
                source_sql="NULLIF(r.source_type || ':' || r.source_id, ':')",
                where_sql=FINAL_MESSAGE,
            ),
        ),
        default=DefaultPolicy(
            min_days=6 * YEAR,
            max_days=7 * YEAR,
            action="destroy",
            approval_required=True,
            rationale=(
                "Delivery evidence documents how each message was protected in transit and is kept "
                "with the Security Rule documentation for six years; seven covers state record rules."
            ),
            legal_basis=(HIPAA_SECURITY_DOCS, HIPAA_TRANSMISSION, *STATE_MEDICAL_RECORDS, MINIMUM_NECESSARY),
            archive_after_days=2 * YEAR,
        ),
        hold_group=MESSAGE_GROUP,
        destroy=destruction.delete_records,
        archive=archive.archive_messages,
        # A portal copy still open to its reader keeps its message live until it closes; then it
        # moves with the message (as a portal record with its own clock), as do content and events.
        archive_condition=f"NOT {PORTAL_COPY_OPEN}",
        method="rows deleted with attempts and reports; blind index removed; content key shredded",
        order=20,
    )
)
register_category(
    Category(
        key="portal_messages",
        label="Portal messages",
        app="delivery",
        description="Secure portal copies and replies (own keys), links, codes and read evidence.",
        sources=(
            Source(
                "delivery.PortalMessage",
                clock="m.created_at",
                contact_sql="m.contact_id",
                source_sql=MESSAGE_SOURCE,
                join_sql=JOIN_MESSAGE,
            ),
        ),
        default=DefaultPolicy(
            min_days=6 * YEAR,
            max_days=7 * YEAR,
            action="destroy",
            approval_required=True,
            rationale="Same rules as message content: the portal copy is the message.",
            legal_basis=(HIPAA_PRIVACY_DOCS, *STATE_MEDICAL_RECORDS, MINIMUM_NECESSARY),
            archive_after_days=2 * YEAR,
        ),
        hold_group=MESSAGE_GROUP,
        destroy=destruction.delete_records,
        archive=archive.archive_portal_messages,
        archive_condition=PORTAL_CLOSED,
        method="rows deleted with replies, links and codes; content and reply keys shredded",
        subsumed_by=(("message_metadata", "m.created_at"),),
        order=30,
    )
)
register_category(
    Category(
        key="tracking_events",
        label="Tracking events",
        app="delivery",
        description="Opens, clicks and conversions (behavioral data about a person).",
        sources=(
            Source(
                "delivery.EngagementEvent",
                clock="COALESCE(m.created_at, r.occurred_at)",
                contact_sql="COALESCE(m.contact_id, r.contact_id)",
                source_sql="COALESCE("
                + MESSAGE_SOURCE
                + ", NULLIF(r.source_type || ':' || r.source_id, ':'))",
                join_sql=JOIN_MESSAGE,
            ),
        ),
        default=DefaultPolicy(
            min_days=0,
            max_days=2 * YEAR,
            action="destroy",
            approval_required=False,
            rationale=(
                "No rule requires keeping engagement data; campaign reports need about two years of "
                "history. Kept longer, it only adds exposure."
            ),
            legal_basis=(MINIMUM_NECESSARY,),
        ),
        hold_group=MESSAGE_GROUP,
        destroy=destruction.delete_records,
        archive=archive.archive_tracking_events,
        method="rows deleted",
        order=40,
    )
)
register_category(
    Category(
        key="webhook_logs",
        label="Webhook logs",
        app="delivery",
        description="Events sent to the tenant's systems and their attempt logs (ids only, no PHI).",
        sources=(Source("delivery.WebhookDelivery", clock="r.created_at", where_sql="r.state <> 'pending'"),),
        default=DefaultPolicy(
            min_days=30,
            max_days=YEAR,
            action="destroy",
            approval_required=False,
            rationale="Operational logs for troubleshooting integrations; a year is plenty.",
            legal_basis=(MINIMUM_NECESSARY,),
        ),
        destroy=destruction.delete_records,
        not_archivable=(
            "they are operational logs (ids and states, no PHI, no evidence value) useful only next to "
            "the live endpoint they troubleshoot; they are kept in place, then destroyed."
        ),
        method="rows deleted",
        order=50,
    )
)

# --- contacts ---------------------------------------------------------------------------------------
register_category(
    Category(
        key="contacts",
        label="Contacts",
        app="contacts",
        description="Deleted contacts: identity, demographics, clinical data, blind indexes and tokens.",
        sources=(
            Source(
                "contacts.Contact",
                clock="r.deleted_at",
                contact_sql="r.id",
                where_sql=f"r.deleted_at IS NOT NULL AND NOT ({destruction.CONTACT_TOMBSTONED_SQL})",
            ),
        ),
        default=DefaultPolicy(
            min_days=30,
            max_days=60,
            action="destroy",
            approval_required=False,
            rationale=(
                "Deleting a contact shreds it at once unless a legal hold covers it; a held contact "
                "waits until the hold is released, then at least 30 days from its deletion, and its "
                "PHI goes. The id stays: consent evidence (kept six years) refers to it."
            ),
            legal_basis=(MINIMUM_NECESSARY,),
        ),
        destroy=destruction.tombstone_contacts,
        not_archivable=(
            "a deleted contact waits out a short grace period and is then tombstoned in place; its row "
            "must stay, because consent evidence, messages and events refer to it, and a copy in the "
            "archive would only keep identity data longer and in one more place."
        ),
        method=(
            "encrypted fields, blind indexes and tokens cleared; external id links and the contact's "
            "key deleted"
        ),
        order=60,
    )
)

# --- consent ----------------------------------------------------------------------------------------
register_category(
    Category(
        key="consent_records",
        label="Consent and authorization records",
        app="consent",
        description="Consent events, signed HIPAA authorizations and their history, waivers.",
        sources=(
            Source("consent.ConsentEvent", clock="r.occurred_at", contact_sql="r.contact_id"),
            Source("consent.Authorization", clock="r.signed_at", contact_sql="r.contact_id"),
            Source("consent.AuthorizationEvent", clock="r.occurred_at", contact_sql="r.contact_id"),
            Source("consent.UnencryptedEmailWaiver", clock="r.requested_at", contact_sql="r.contact_id"),
        ),
        default=DefaultPolicy(
            min_days=6 * YEAR,
            max_days=None,
            action="review",
            approval_required=True,
            rationale=(
                "Signed authorizations and consent evidence must be kept six years from the later of "
                "signature or last effective date; the history is append-only (a database trigger), "
                "so past that the records are reviewed, never disposed of automatically."
            ),
            legal_basis=(HIPAA_AUTHORIZATIONS, HIPAA_PRIVACY_DOCS, CAN_SPAM),
        ),
        notes="Append-only evidence: review only.",
        not_archivable=(
            "consent and authorization history is append-only (a database trigger refuses UPDATE and "
            "DELETE) and the send gate reads it to honour opt-outs and revocations; it never moves."
        ),
        order=70,
    )
)

# --- audit ------------------------------------------------------------------------------------------
register_category(
    Category(
        key="audit_events",
        label="Audit events",
        app="audit",
        description="The hash-chained audit trail (references only).",
        sources=(
            Source(
                "audit.AuditEvent",
                clock="r.occurred_at",
                actor_sql="CASE WHEN r.actor_type = 'user' THEN r.actor_id END",
            ),
        ),
        default=DefaultPolicy(
            min_days=6 * YEAR,
            max_days=None,
            action="review",
            approval_required=True,
            rationale=(
                "Audit records are Security Rule documentation (six years). The chain is append-only "
                "and tamper-evident; it is reviewed, never disposed of automatically."
            ),
            legal_basis=(HIPAA_AUDIT_CONTROLS, HIPAA_SECURITY_DOCS),
        ),
        notes="Append-only, hash-chained: review only.",
        not_archivable=(
            "the audit trail is append-only and tamper-evident (hash-chained, a database trigger refuses "
            "UPDATE and DELETE); moving an event would break the chain, so it never moves."
        ),
        order=80,
    )
)

# --- retention (this app) ---------------------------------------------------------------------------
register_category(
    Category(
        key="exports",
        label="Exports",
        app="retention",
        description="Evidence packages (decrypted records, sealed under their own key).",
        sources=(
            Source("retention.EvidenceExport", clock="r.created_at", actor_sql="r.created_by_id::text"),
        ),
        default=DefaultPolicy(
            min_days=0,
            max_days=90,
            action="destroy",
            approval_required=False,
            rationale=(
                "An export is a copy made for one purpose; once handed over it is kept 90 days for "
                "re-delivery. The audit trail keeps the record of what was exported."
            ),
            legal_basis=(MINIMUM_NECESSARY,),
        ),
        destroy=destruction.delete_records,
        not_archivable=(
            "an export is a decrypted copy made for one purpose; it is kept a short time for re-delivery "
            "and then destroyed, never kept longer in the archive."
        ),
        method="package key shredded, row deleted",
        order=90,
    )
)
register_category(
    Category(
        key="destruction_certificates",
        label="Destruction certificates",
        app="retention",
        description="Certificates of disposal runs (record ids and counts, no PHI).",
        sources=(Source("retention.DestructionCertificate", clock="r.issued_at"),),
        default=DefaultPolicy(
            min_days=6 * YEAR,
            max_days=None,
            action="review",
            approval_required=True,
            rationale="Proof of disposal is documentation of an action: six years, then review.",
            legal_basis=(HIPAA_SECURITY_DOCS, HIPAA_PRIVACY_DOCS),
        ),
        notes="Kept under their own retention: review only.",
        not_archivable=(
            "a certificate is proof of disposal (no PHI) that must stay verifiable against its run's "
            "candidates; it stays in place under its own retention."
        ),
        order=100,
    )
)
