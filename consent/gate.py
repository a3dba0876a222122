"""The send gate: may this contact be emailed for this purpose now? Always with a reason.

    may_send(contact=c, purpose="marketing", uses_phi=True, topic=newsletters) -> Decision
    may_send_batch(tenant=t, contact_ids=[...], purpose=..., uses_phi=..., topic=...) -> {id: Decision}
    may_send_to_addresses(tenant=t, address_indexes=[...], purpose=...) -> {index: Decision}

It is called when recipients are snapshotted AND by the delivery worker right before each message,
so a revocation that has committed stops mail already queued. Both forms gather the same facts (the
single form with small ORM reads, the batch form with ONE query per chunk of contacts, plus a fixed
number of tenant-level reads) and hand them to the same `decide()`.

Rules, most restrictive first:
1. The tenant needs a BAA in force covering the service (transactional or marketing email).
2. The contact must exist, not be deleted and have an address.
3. Suppressions block the purposes SUPPRESSION_BLOCKS lists (hard bounces block everything).
4. Transactional purposes (treatment, payment, operations; 45 CFR 164.506) need nothing more.
5. Non-transactional email respects a pause chosen in the preference center.
6. Marketing needs an opt-in for the topic and, when the message or its audience uses PHI, a valid,
   effective, unexpired, unrevoked HIPAA authorization (45 CFR 164.508(a)(3)); a state rule requiring
   separate consent for consumer health data requires the authorization even without PHI.
7. Research and fundraising are opt-out based (fundraising: 45 CFR 164.514(f)(2)) unless a state
   rule requires opt-in for all promotion; research that uses PHI needs a research authorization.
"""

from __future__ import annotations

import datetime
import functools
import uuid
import zoneinfo
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from contacts.models import Contact
from healthmail.crypto import blind
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Service, Tenant
from healthmail.tenants.services import Permit, tenant_can

from . import authorization_standing as standing
from . import state_rules
from .models import (
    TRANSACTIONAL_PURPOSES,
    Authorization,
    AuthorizationKind,
    AuthorizationText,
    Channel,
    ConsentEvent,
    ConsentSettings,
    ConsentState,
    ContactPreference,
    Purpose,
    Suppression,
    Topic,
    UnencryptedEmailWaiver,
)

BATCH_SIZE = 10_000  # contacts per query

_ALL = frozenset(Purpose.values)
_NON_TRANSACTIONAL = _ALL - TRANSACTIONAL_PURPOSES
# Which purposes each suppression reason blocks. A hard bounce means the address does not exist and
# a legal request or a staff entry means "do not email": nothing goes. A complaint or an
# unsubscribe-all ends marketing, research and fundraising, but a patient still gets appointment and
# billing notices (their transactional nature is what CAN-SPAM 15 U.S.C. 7702(17) exempts).
SUPPRESSION_BLOCKS: dict[str, frozenset[str]] = {
    Suppression.Reason.HARD_BOUNCE: _ALL,
    Suppression.Reason.LEGAL_REQUEST: _ALL,
    Suppression.Reason.MANUAL: _ALL,
    Suppression.Reason.COMPLAINT: _NON_TRANSACTIONAL,
    Suppression.Reason.UNSUBSCRIBE_ALL: _NON_TRANSACTIONAL,
}
_SUPPRESSION_ORDER = list(SUPPRESSION_BLOCKS)


# What each refusal code means, in the words a marketer reads next to an audience count.
REFUSAL_LABELS: dict[str, Any] = {
    "baa_not_in_force": _("No BAA in force for this kind of email"),
    "contact_not_found": _("Contact no longer exists"),
    "no_contact": _("Sent to an address without a contact (only transactional email may be)"),
    "contact_deleted": _("Contact deleted"),
    "no_email_address": _("No email address"),
    "topic_required": _("No topic chosen (marketing needs one)"),
    "topic_mismatch": _("Topic does not match the purpose"),
    "paused": _("Paused email in their preferences"),
    "no_opt_in": _("Never opted in to the topic"),
    "opt_in_revoked": _("Withdrew their opt-in to the topic"),
    "opt_in_expired": _("Opt-in to the topic expired"),
    "opted_out": _("Opted out of the topic"),
    "state_opt_in_required": _("State law requires an opt-in they have not given"),
    "state_health_data_consent_required": _("State law requires consent to use health data"),
    "no_authorization": _("No HIPAA authorization (PHI)"),
    "authorization_expired": _("HIPAA authorization expired"),
    "authorization_revoked": _("HIPAA authorization revoked"),
    "authorization_defective": _("HIPAA authorization defective"),
    "authorization_not_yet_effective": _("HIPAA authorization not yet in effect"),
}


# The codes of an allowed answer (what the consent report's "gate answer" column can show).
ALLOWED_LABELS: dict[str, Any] = {
    "transactional": _("Allowed: transactional email"),
    "opted_in": _("Allowed: opted in to the topic"),
    "not_opted_out": _("Allowed: has not opted out of the topic"),
    "authorization_valid": _("Allowed: HIPAA authorization valid"),
}


def gate_labels() -> dict[str, Any]:
    """Every code the gate answers with, readable (registered with healthmail.labels)."""
    return {
        **ALLOWED_LABELS,
        **REFUSAL_LABELS,
        **{
            f"suppressed_{reason}": refusal_label(f"suppressed_{reason}")
            for reason in Suppression.Reason.values
        },
    }


def refusal_label(code: str) -> str:
    """A refusal code as a person reads it ("suppressed_hard_bounce" -> "Suppressed: hard bounce")."""
    if code in REFUSAL_LABELS:
        return str(REFUSAL_LABELS[code])
    reason = code.removeprefix("suppressed_")
    if reason != code and reason in Suppression.Reason.values:
        return str(_("Suppressed: %(reason)s") % {"reason": str(Suppression.Reason(reason).label).lower()})
    return code.replace("_", " ").capitalize()


@dataclass(frozen=True)
class Decision:
    allowed: bool
    code: str
    reason: str  # never PHI: safe for marketers, logs and exclusion lists
    # The patient asked for unencrypted email for this purpose and the tenant honours such requests.
    unencrypted_allowed: bool = False
    # authorization_defective: the validator's codes (consent.authorization_rules.DEFECTS).
    defects: tuple[str, ...] = ()
    # authorization_expired / authorization_revoked: the day it happened. A date about a person is
    # PHI: shown only where PHI may be (the contact page, the API), through `detail`.
    on: datetime.date | None = None

    def __bool__(self) -> bool:
        return self.allowed

    @property
    def detail(self) -> str:
        """The reason with the date, for readers allowed to see PHI."""
        return f"{self.reason} ({self.on:%Y-%m-%d})" if self.on else self.reason


class Facts(NamedTuple):
    """What the gate knows about one contact (loaded by either form of the gate). A NamedTuple in
    the batch query's column order, so a row becomes Facts without per-field work."""

    deleted: bool = False
    has_address: bool = False
    state: str = ""
    suppressions: Collection[str] | None = None
    topic_status: str | None = None
    # The contact's authorizations of the purpose's kind, as AUTHORIZATION_COLUMNS rows.
    authorizations: Sequence[Sequence[Any]] | None = ()
    paused_until: datetime.date | None = None
    waiver_purposes: Collection[str] | None = None
    exists: bool = True


MISSING = Facts(exists=False)


@dataclass
class _Context:
    tenant: Tenant
    purpose: str
    uses_phi: bool
    permit: Permit
    settings: ConsentSettings
    topic: Topic | None
    topic_refusal: Decision | None
    authorization_kind: str
    now: datetime.datetime
    today: datetime.date
    zone: zoneinfo.ZoneInfo
    rules: dict[str, state_rules.CombinedRule]
    texts: dict[uuid.UUID, AuthorizationText] = field(default_factory=dict)  # by id, loaded as needed

    def rule(self, contact_state: str) -> state_rules.CombinedRule:
        found = self.rules.get(contact_state)
        if found is None:
            found = state_rules.rule_for_contact(
                mode=self.settings.state_mode,
                operating_states=self.settings.operating_states,
                contact_state=contact_state,
            )
            self.rules[contact_state] = found
        return found


@functools.lru_cache(maxsize=4096)
def _decision(
    allowed: bool,
    code: str,
    reason: str,
    unencrypted: bool = False,
    defects: tuple[str, ...] = (),
    on: datetime.date | None = None,
) -> Decision:
    """Decisions are immutable values: a batch of a million shares a few dozen of them."""
    return Decision(allowed, code, reason, unencrypted_allowed=unencrypted, defects=defects, on=on)


def _refuse(
    code: str, reason: str, defects: tuple[str, ...] = (), on: datetime.date | None = None
) -> Decision:
    return _decision(False, code, reason, False, defects, on)


def _context(*, tenant: Tenant, purpose: str, uses_phi: bool, topic: Topic | None) -> _Context:
    if purpose not in Purpose.values:
        raise ValueError(f"unknown purpose {purpose!r}")  # a programming error, not a refusal
    transactional = purpose in TRANSACTIONAL_PURPOSES
    permit = tenant_can(tenant, Service.TRANSACTIONAL_EMAIL if transactional else Service.MARKETING_EMAIL)
    settings = ConsentSettings.objects.filter(tenant=tenant).first() or ConsentSettings(tenant=tenant)
    refusal = None
    if not transactional:
        if topic is None and purpose != Purpose.MARKETING:
            topic = Topic.objects.filter(tenant=tenant, key=purpose, is_system=True).first()
        if topic is None and purpose == Purpose.MARKETING:
            refusal = _refuse("topic_required", "Marketing email must name the topic people opted in to.")
        elif topic is not None and (topic.tenant_id != tenant.pk or topic.purpose != purpose):
            refusal = _refuse(
                "topic_mismatch", f"The topic “{topic.name}” is not a {purpose} topic of this organization."
            )
    kinds: dict[str, str] = {
        Purpose.MARKETING: AuthorizationKind.MARKETING,
        Purpose.RESEARCH: AuthorizationKind.RESEARCH,
    }
    kind = kinds.get(purpose, "")
    now = timezone.now()
    return _Context(
        tenant=tenant,
        purpose=purpose,
        uses_phi=uses_phi,
        permit=permit,
        settings=settings,
        topic=topic,
        topic_refusal=refusal,
        authorization_kind=kind,
        now=now,
        today=timezone.localdate(now, timezone=zoneinfo.ZoneInfo(tenant.timezone)),  # pauses end locally
        zone=zoneinfo.ZoneInfo(tenant.timezone),
        rules={},
    )


def decide(ctx: _Context, facts: Facts) -> Decision:
    """The one decision table (see the module docstring)."""
    if not ctx.permit.allowed:
        return _refuse("baa_not_in_force", ctx.permit.reason)
    if not facts.exists:
        return _refuse("contact_not_found", "No such contact in this organization.")
    if facts.deleted:
        return _refuse("contact_deleted", "The contact was deleted.")
    if not facts.has_address:
        return _refuse("no_email_address", "The contact has no email address.")
    for reason in _SUPPRESSION_ORDER if facts.suppressions else ():
        if reason in (facts.suppressions or ()) and ctx.purpose in SUPPRESSION_BLOCKS[reason]:
            label = Suppression.Reason(reason).label.lower()
            return _refuse(
                f"suppressed_{reason}", f"The address is suppressed ({label}); no {ctx.purpose} email."
            )
    if ctx.purpose in TRANSACTIONAL_PURPOSES:
        return _allow(ctx, facts, "transactional", "Transactional email needs no marketing consent.")
    if ctx.topic_refusal is not None:
        return ctx.topic_refusal
    if facts.paused_until is not None and facts.paused_until >= ctx.today:
        return _refuse("paused", f"The person paused this email until {facts.paused_until:%Y-%m-%d}.")
    rule = ctx.rule(facts.state)
    topic_name = ctx.topic.name if ctx.topic else ctx.purpose
    if ctx.purpose == Purpose.MARKETING:
        return _decide_marketing(ctx, facts, rule, topic_name)
    return _decide_opt_out_based(ctx, facts, rule, topic_name)


def _decide_marketing(
    ctx: _Context, facts: Facts, rule: state_rules.CombinedRule, topic_name: str
) -> Decision:
    if facts.topic_status != ConsentEvent.Kind.GRANTED:
        code = {"revoked": "opt_in_revoked", "expired": "opt_in_expired"}.get(
            facts.topic_status or "", "no_opt_in"
        )
        return _refuse(code, f"No opt-in to “{topic_name}” is in force.")
    if ctx.uses_phi or rule.requires_separate_health_data_consent:
        refusal = _authorization_refusal(ctx, facts, rule)
        if refusal is not None:
            return refusal
    return _allow(ctx, facts, "opted_in", f"Opted in to “{topic_name}”.")


def _authorization_refusal(ctx: _Context, facts: Facts, rule: state_rules.CombinedRule) -> Decision | None:
    found = standing.authorization_standing(
        rows=list(facts.authorizations or ()),
        texts=ctx.texts,
        tenant_id=ctx.tenant.pk,
        now=ctx.now,
        today=ctx.today,
        zone=ctx.zone,
    )
    if found is None:
        return None
    if not ctx.uses_phi and found.code == "no_authorization":
        states = ", ".join(c for c in rule.codes if c != "default")
        return _refuse(
            "state_health_data_consent_required",
            f"State law ({states}) requires separate consent to use consumer health data for marketing; "
            "no valid authorization is in force.",
        )
    return _refuse(found.code, found.reason, found.defects, found.on)


def _decide_opt_out_based(
    ctx: _Context, facts: Facts, rule: state_rules.CombinedRule, topic_name: str
) -> Decision:
    if facts.topic_status in (ConsentEvent.Kind.REVOKED, ConsentEvent.Kind.EXPIRED):
        return _refuse("opted_out", f"The person opted out of “{topic_name}”.")
    if rule.opt_in_required_for_all_promotion and facts.topic_status != ConsentEvent.Kind.GRANTED:
        states = ", ".join(c for c in rule.codes if c != "default")
        return _refuse(
            "state_opt_in_required", f"State law ({states}) requires an opt-in for all promotional email."
        )
    if ctx.purpose == Purpose.RESEARCH and ctx.uses_phi:
        refusal = _authorization_refusal(ctx, facts, rule)
        if refusal is not None:
            return refusal
    return _allow(
        ctx, facts, "not_opted_out", f"Opt-out based (45 CFR 164.514(f)); no opt-out from “{topic_name}”."
    )


def _allow(ctx: _Context, facts: Facts, code: str, reason: str) -> Decision:
    unencrypted = bool(
        ctx.settings.allow_unencrypted_waivers
        and facts.waiver_purposes
        and ctx.purpose in facts.waiver_purposes
    )
    return _decision(True, code, reason, unencrypted)


# --- The single gate: small ORM reads ----------------------------------------------------------------


def _by_address(indexes: list[bytes]) -> Q:
    """Suppressions of an address, given every index a row of it may hold (blind.candidates): a
    suppression holds one as its index, or (while an index-key rotation fills them in) its next."""
    if not indexes:
        return Q(pk__in=[])
    return Q(email_index__in=indexes) | Q(email_index_next__in=indexes)


def _facts_one(ctx: _Context, contact_id: uuid.UUID) -> Facts:
    tenant = ctx.tenant
    row = (
        Contact.objects.filter(tenant=tenant, pk=contact_id)
        .values("deleted_at", "email_index", "email_index_next", "state")
        .first()
    )
    if row is None:
        return MISSING
    email_index = bytes(row["email_index"]) if row["email_index"] is not None else None
    suppressed = Q(contact_id=contact_id) | _by_address(
        blind.candidates(tenant, "email", email_index, row["email_index_next"]) if email_index else []
    )
    authorizations: list[tuple[Any, ...]] = []
    if ctx.authorization_kind:
        authorizations = list(
            Authorization.objects.filter(
                tenant=tenant,
                contact_id=contact_id,
                kind=ctx.authorization_kind,
                channels__contains=[Channel.EMAIL],
            )
            .annotate(**standing.presence_annotations())
            .values_list(*standing.AUTHORIZATION_FIELDS)
        )
    status = None
    if ctx.topic is not None:
        status = (
            ConsentState.objects.filter(
                tenant=tenant, contact_id=contact_id, channel=Channel.EMAIL, topic=ctx.topic
            )
            .values_list("status", flat=True)
            .first()
        )
    waiver = UnencryptedEmailWaiver.objects.filter(
        tenant=tenant, contact_id=contact_id, status="active"
    ).first()
    return Facts(
        deleted=row["deleted_at"] is not None,
        has_address=email_index is not None,
        state=row["state"],
        suppressions=frozenset(
            Suppression.objects.filter(suppressed, tenant=tenant, removed_at__isnull=True).values_list(
                "reason", flat=True
            )
        ),
        topic_status=status,
        authorizations=authorizations,
        paused_until=ContactPreference.objects.filter(tenant=tenant, contact_id=contact_id)
        .values_list("paused_until", flat=True)
        .first(),
        waiver_purposes=frozenset(waiver.purposes) if waiver else frozenset(),
    )


def may_send(*, contact: Contact, purpose: str, uses_phi: bool, topic: Topic | None = None) -> Decision:
    """The gate for one contact, reading committed state now (call it right before sending)."""
    tenant = Tenant.objects.get(pk=contact.tenant_id)
    with tenant_context(tenant):
        ctx = _context(tenant=tenant, purpose=purpose, uses_phi=uses_phi, topic=topic)
        return decide(ctx, _facts_one(ctx, contact.pk))


# --- The batch gate: one query per chunk ---------------------------------------------------------------

_BATCH_SQL = """
SELECT c.id, c.deleted_at IS NOT NULL, c.email_index IS NOT NULL, c.state,
       (SELECT array_agg(DISTINCT s.reason) FROM consent_suppression s
         WHERE s.tenant_id = c.tenant_id AND s.removed_at IS NULL
           AND (s.contact_id = c.id OR s.email_index = c.email_index
                OR s.email_index = c.email_index_next OR s.email_index_next = c.email_index)),
       (SELECT cs.status FROM consent_consentstate cs
         WHERE cs.tenant_id = c.tenant_id AND cs.contact_id = c.id AND cs.channel = 'email'
           AND cs.topic_id = %(topic)s),
       (SELECT json_agg(json_build_array(
                 a.id, a.text_id, a.signed_on, a.signer_name IS NOT NULL, a.by_representative,
                 a.representative_authority IS NOT NULL, a.initiated_by, a.combined_with, a.conditioned_on,
                 a.expires_on, a.expires_at, a.expiry_event, a.expiry_event_occurred_on, a.revoked_at,
                 a.known_false, a.status, a.effective_from, a.signed_at))
          FROM consent_authorization a
         WHERE a.tenant_id = c.tenant_id AND a.contact_id = c.id AND a.kind = %(kind)s
           AND 'email' = ANY(a.channels)),
       (SELECT p.paused_until FROM consent_contactpreference p
         WHERE p.tenant_id = c.tenant_id AND p.contact_id = c.id),
       (SELECT w.purposes FROM consent_unencryptedemailwaiver w
         WHERE w.tenant_id = c.tenant_id AND w.contact_id = c.id AND w.status = 'active')
  FROM contacts_contact c
 WHERE c.tenant_id = %(tenant)s AND c.id = ANY(%(ids)s::text::uuid[])
"""
# A contact or a suppression may hold the address's index under a newer index-key version as its
# next index (blind.py: chained kinds, index_rotation.py: why one of the three always holds). The
# comparison goes both ways whatever this process's view of a rotation is: the rows may have been
# written by processes whose view differs from ours, and a next index left behind by a slow writer
# may outlive the rotation until it is swapped in. Outside a rotation the next columns are empty.

# Each per-contact fact is a correlated probe of a unique (tenant, contact, ...) index: a batch of
# 10,000 ids costs the same whether a table holds thousands of rows or millions (hash joins chosen
# for small tables turned into full scans per batch at a million contacts).


def _facts_batch(ctx: _Context, ids: list[uuid.UUID]) -> dict[uuid.UUID, Facts]:
    params: dict[str, Any] = {
        "tenant": ctx.tenant.pk,
        # One array literal: psycopg dumping 10,000 UUID objects one by one cost more than the join.
        "ids": "{" + ",".join(map(str, ids)) + "}",
        "topic": ctx.topic.pk if ctx.topic is not None else None,
        "kind": ctx.authorization_kind,
        "now": ctx.now,
    }
    with connection.cursor() as cursor:
        cursor.execute(_BATCH_SQL, params)
        facts = {row[0]: Facts(*row[1:]) for row in cursor.fetchall()}
    if ctx.authorization_kind:
        facts = {
            key: value._replace(
                authorizations=[standing.from_json(row) for row in value.authorizations or ()]
            )
            for key, value in facts.items()
        }
        text_ids = {row[1] for value in facts.values() for row in value.authorizations or ()}
        standing.texts_load(tenant_id=ctx.tenant.pk, text_ids=text_ids, cache=ctx.texts)
    return facts


def may_send_batch(
    *, tenant: Tenant, contact_ids: Iterable[object], purpose: str, uses_phi: bool, topic: Topic | None = None
) -> dict[uuid.UUID, Decision]:
    """The gate for many contacts: one query per BATCH_SIZE contacts. Unknown ids (or another
    tenant's) answer contact_not_found."""
    ids = [value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)) for value in contact_ids]
    decisions: dict[uuid.UUID, Decision] = {}
    with tenant_context(tenant):
        ctx = _context(tenant=tenant, purpose=purpose, uses_phi=uses_phi, topic=topic)
        for start in range(0, len(ids), BATCH_SIZE):
            chunk = ids[start : start + BATCH_SIZE]
            facts = _facts_batch(ctx, chunk) if ctx.permit.allowed else {}
            for contact_id in chunk:
                decisions[contact_id] = decide(ctx, facts.get(contact_id, MISSING))
    return decisions


def may_send_to_addresses(
    *, tenant: Tenant, address_indexes: Iterable[bytes], purpose: str
) -> dict[bytes, Decision]:
    """The gate for email to a bare address (an API send naming no contact), by the address's blind
    index: only transactional purposes may go there, and then the same table as for a contact
    decides (BAA in force, the address's suppressions). One suppression query for the batch."""
    indexes = {bytes(index) for index in address_indexes}
    # Every index a suppression of each address may hold (two while an index-key rotation runs).
    wanted = {index: blind.candidates(tenant, "email", index) for index in indexes}
    if purpose in Purpose.values and purpose not in TRANSACTIONAL_PURPOSES:
        refusal = _refuse(
            "no_contact", f"Only transactional email may go to an address without a contact, not {purpose}."
        )
        return dict.fromkeys(indexes, refusal)
    with tenant_context(tenant):
        ctx = _context(tenant=tenant, purpose=purpose, uses_phi=True, topic=None)
        suppressions: dict[bytes, set[str]] = {}
        if ctx.permit.allowed and indexes:
            everything = [candidate for found in wanted.values() for candidate in found]
            rows = Suppression.objects.filter(
                _by_address(everything), tenant=tenant, removed_at__isnull=True
            ).values_list("email_index", "email_index_next", "reason")
            for index, following, reason in rows:
                for held in (index, following):
                    if held is not None:
                        suppressions.setdefault(bytes(held), set()).add(reason)
        return {
            index: decide(
                ctx,
                Facts(
                    has_address=True,
                    suppressions={r for c in wanted[index] for r in suppressions.get(c, ())} or None,
                ),
            )
            for index in indexes
        }
