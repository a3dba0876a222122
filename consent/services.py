"""Consent writes: topics, texts, consent events (with their maintained state), preferences,
unsubscribe, suppression, the unencrypted-email waiver and tenant consent settings.

Authorizations live in consent/authorizations.py; the send gate in consent/gate.py. Every change is a
history row with its evidence plus an audit event, in the caller's transaction.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from audit import services as audit
from contacts.models import Contact
from healthmail.actors import Actor
from healthmail.errors import Conflict, NotFound
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from . import state_rules, suppressions
from .evidence import ConsentError, Evidence
from .models import (
    Channel,
    ConsentEvent,
    ConsentSettings,
    ConsentState,
    ConsentText,
    ContactPreference,
    Frequency,
    PreferenceChange,
    Purpose,
    Source,
    Suppression,
    Topic,
    UnencryptedEmailWaiver,
    WaiverEvent,
)

# --- Topics and texts ---------------------------------------------------------------------------


def topics_ensure_system(*, tenant: Tenant) -> dict[str, Topic]:
    """Every tenant has the system topics; they are created on first use."""
    with tenant_context(tenant):
        Topic.objects.bulk_create(
            [
                Topic(tenant=tenant, key=key, name=name, purpose=purpose, is_system=True)
                for key, (name, purpose) in Topic.SYSTEM.items()
            ],
            ignore_conflicts=True,
        )
        return {t.key: t for t in Topic.objects.for_tenant(tenant)}


def topic_by_key(*, tenant: Tenant, key: str) -> Topic:
    with tenant_context(tenant):
        topic = Topic.objects.for_tenant(tenant).filter(key=key).first()
    if topic is None and key in Topic.SYSTEM:
        topic = topics_ensure_system(tenant=tenant)[key]
    if topic is None:
        raise NotFound(f"There is no topic “{key}”.", code="topic_not_found")
    return topic


@transaction.atomic
def topic_create(
    *, tenant: Tenant, actor: Actor, key: str, name: str, purpose: str, description: str = ""
) -> Topic:
    if purpose not in (p.value for p in (Purpose.MARKETING, Purpose.RESEARCH, Purpose.FUNDRAISING)):
        raise ConsentError("A topic is for marketing, research or fundraising.", code="topic_purpose")
    if not key or not name.strip():
        raise ConsentError("A topic needs a short key and a name.", code="topic_invalid")
    with tenant_context(tenant):
        try:
            with transaction.atomic():
                topic = Topic.objects.create(
                    tenant=tenant,
                    key=key,
                    name=name.strip(),
                    purpose=purpose,
                    description=description.strip(),
                )
        except IntegrityError as error:
            raise Conflict(f"A topic with the key “{key}” exists.", code="topic_exists") from error
        audit.record(actor=actor, action="consent.topic_create", target=topic, tenant=tenant)
    return topic


DEFAULT_TEXTS: dict[str, str] = {
    ConsentText.Kind.OPT_IN: "Yes, send me email about the topics I choose. I can change this at any time.",
    ConsentText.Kind.PREFERENCE_CENTER: (
        "Choose which email you receive from us. Messages about your care, appointments and bills "
        "are not affected. Your choices take effect at once."
    ),
    ConsentText.Kind.UNENCRYPTED_WAIVER: (
        "Email sent without encryption can be read or changed by others while it travels, and "
        "could reveal health information about you. We normally protect such email. You may ask us "
        "to send it to you without encryption anyway, for the purposes you choose, and you may "
        "withdraw that request at any time."
    ),
}


def consent_text_current(*, tenant: Tenant, kind: str) -> ConsentText:
    """The newest version of a wording (version 1, our default wording, is created on first use)."""
    with tenant_context(tenant):
        text = ConsentText.objects.for_tenant(tenant).filter(kind=kind).order_by("-version").first()
        if text is None:
            ConsentText.objects.bulk_create(
                [ConsentText(tenant=tenant, kind=kind, version=1, body=DEFAULT_TEXTS[kind])],
                ignore_conflicts=True,
            )
            text = ConsentText.objects.for_tenant(tenant).filter(kind=kind).latest("version")
    return text


@transaction.atomic
def consent_text_publish(*, tenant: Tenant, actor: Actor, kind: str, body: str) -> ConsentText:
    if not body.strip():
        raise ConsentError("The wording cannot be empty.", code="text_empty")
    current = consent_text_current(tenant=tenant, kind=kind)
    with tenant_context(tenant):
        text = ConsentText.objects.create(
            tenant=tenant, kind=kind, version=current.version + 1, body=body.strip()
        )
        audit.record(actor=actor, action="consent.text_publish", target=text, tenant=tenant)
    return text


# --- Consent events and their maintained state ----------------------------------------------------

_STATE_UPSERT = """
INSERT INTO consent_consentstate (tenant_id, contact_id, channel, topic_id, status, event_id, occurred_at)
SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::varchar[], %s::uuid[], %s::varchar[], %s::bigint[],
                     %s::timestamptz[])
ON CONFLICT (tenant_id, contact_id, channel, topic_id) DO UPDATE
SET status = EXCLUDED.status, event_id = EXCLUDED.event_id, occurred_at = EXCLUDED.occurred_at
WHERE (consent_consentstate.occurred_at, consent_consentstate.event_id)
      <= (EXCLUDED.occurred_at, EXCLUDED.event_id)
"""


# Called in the transaction of every consent change with the changes that won (tenant id, contact id,
# topic id, kind): journeys started by a consent change register here, so this lower layer never
# imports them.
_change_handlers: list = []


def register_change_handler(handler) -> None:
    if handler not in _change_handlers:
        _change_handlers.append(handler)


def _state_apply(events: Iterable[ConsentEvent]) -> None:
    """Move ConsentState to each (contact, channel, topic)'s latest event. An event older than the
    current state (a late import of paper evidence) is kept in history but does not win."""
    latest: dict[tuple, ConsentEvent] = {}
    for event in events:
        key = (event.contact_id, event.channel, event.topic_id)
        if key not in latest or (event.occurred_at, event.pk) > (latest[key].occurred_at, latest[key].pk):
            latest[key] = event
    if not latest:
        return
    rows = list(latest.values())
    with connection.cursor() as cursor:
        cursor.execute(
            _STATE_UPSERT,
            [
                [str(e.tenant_id) for e in rows],
                [str(e.contact_id) for e in rows],
                [e.channel for e in rows],
                [str(e.topic_id) for e in rows],
                [e.kind for e in rows],
                [e.pk for e in rows],
                [e.occurred_at for e in rows],
            ],
        )
    changes = [(e.tenant_id, e.contact_id, e.topic_id, e.kind) for e in rows]
    for handler in _change_handlers:
        handler(changes)


def _live_contact(tenant: Tenant, contact_id) -> Contact:
    contact = Contact.objects.for_tenant(tenant).filter(pk=contact_id, deleted_at__isnull=True).first()
    if contact is None:
        raise NotFound("No such contact.", code="contact_not_found")
    return contact


@transaction.atomic
def consent_record(
    *, tenant: Tenant, contact: Contact, topic: Topic, kind: str, evidence: Evidence
) -> ConsentEvent:
    """Grant, revoke or expire one topic. Takes effect for every gate check that starts after commit
    (delivery re-checks the gate right before each message)."""
    if kind not in ConsentEvent.Kind.values:
        raise ConsentError("Unknown consent change.", code="kind_invalid")
    if topic.tenant_id != tenant.pk or contact.tenant_id != tenant.pk:
        raise NotFound("No such contact or topic.", code="not_found")
    with tenant_context(tenant):
        _live_contact(tenant, contact.pk)
        event = ConsentEvent.objects.create(
            tenant=tenant,
            contact=contact,
            topic=topic,
            channel=Channel.EMAIL,
            kind=kind,
            text=evidence.text,
            **evidence.fields(),
        )
        _state_apply([event])
        audit.record(
            actor=evidence.actor,
            action=f"consent.{kind}",
            target=contact,
            tenant=tenant,
            details={"topic": topic.key, "source": event.source, "event": event.pk},
        )
    return event


def consent_grant(*, tenant: Tenant, contact: Contact, topic: Topic, evidence: Evidence) -> ConsentEvent:
    return consent_record(
        tenant=tenant, contact=contact, topic=topic, kind=ConsentEvent.Kind.GRANTED, evidence=evidence
    )


def consent_revoke(*, tenant: Tenant, contact: Contact, topic: Topic, evidence: Evidence) -> ConsentEvent:
    return consent_record(
        tenant=tenant, contact=contact, topic=topic, kind=ConsentEvent.Kind.REVOKED, evidence=evidence
    )


@transaction.atomic
def consent_import_evidence(
    *,
    tenant: Tenant,
    actor: Actor,
    rows: list[tuple[uuid.UUID, str, str, datetime.datetime]],
) -> int:
    """Record opt-ins proven by an import (contact id, topic key, source, when), a batch at a time:
    a fixed number of queries whatever the batch size. Unknown topics or contacts raise before
    anything is written, naming the first problem."""
    if not rows:
        return 0
    topics = topics_ensure_system(tenant=tenant)
    with tenant_context(tenant):
        contact_ids = {uuid.UUID(str(row[0])) for row in rows}
        found = set(
            Contact.objects.for_tenant(tenant)
            .filter(pk__in=contact_ids, deleted_at__isnull=True)
            .values_list("pk", flat=True)
        )
        events = []
        for contact_id, topic_key, source, occurred_at in rows:
            if topic_key not in topics:
                raise ConsentError(f"Unknown consent topic “{topic_key}”.", code="topic_not_found")
            if uuid.UUID(str(contact_id)) not in found:
                raise NotFound("A row names a contact that does not exist.", code="contact_not_found")
            if source not in Source.values:
                raise ConsentError(f"Unknown consent source “{source}”.", code="source_invalid")
            if occurred_at is None or timezone.is_naive(occurred_at):
                raise ConsentError("Consent dates need a time zone.", code="occurred_at_invalid")
            events.append(
                ConsentEvent(
                    tenant=tenant,
                    contact_id=contact_id,
                    topic=topics[topic_key],
                    channel=Channel.EMAIL,
                    kind=ConsentEvent.Kind.GRANTED,
                    source=source,
                    occurred_at=occurred_at,
                    actor_type=actor.kind,
                    actor_id=actor.id[:64],
                )
            )
        ConsentEvent.objects.bulk_create(events, batch_size=2000)
        _state_apply(events)
        audit.record(
            actor=actor,
            action="consent.import",
            target=("consent.consentevent", ""),
            tenant=tenant,
            details={"events": len(events), "contacts": len(found)},
        )
    return len(events)


# --- Preferences, unsubscribe ----------------------------------------------------------------------


def preference_get(*, tenant: Tenant, contact: Contact) -> ContactPreference:
    with tenant_context(tenant):
        ContactPreference.objects.bulk_create(
            [ContactPreference(tenant=tenant, contact=contact)], ignore_conflicts=True
        )
        return ContactPreference.objects.get(tenant=tenant, contact=contact)


def contact_rule(*, tenant: Tenant, contact: Contact) -> state_rules.CombinedRule:
    """The combined state rule that applies to this contact under the tenant's settings."""
    settings = consent_settings_get(tenant=tenant)
    return state_rules.rule_for_contact(
        mode=settings.state_mode, operating_states=settings.operating_states, contact_state=contact.state
    )


def topic_receiving(topic: Topic, status: str | None, rule: state_rules.CombinedRule) -> bool:
    """Does the person currently receive this topic? Marketing needs an opt-in; research and
    fundraising are opt-out based unless a state rule requires opt-in for all promotion."""
    if status is not None:
        return status == ConsentEvent.Kind.GRANTED
    return topic.purpose != Purpose.MARKETING and not rule.opt_in_required_for_all_promotion


def topic_states(*, tenant: Tenant, contact: Contact) -> dict[uuid.UUID, str]:
    with tenant_context(tenant):
        return dict(
            ConsentState.objects.for_tenant(tenant)
            .filter(contact=contact, channel=Channel.EMAIL)
            .values_list("topic_id", "status")
        )


@transaction.atomic
def preferences_apply(
    *,
    tenant: Tenant,
    contact: Contact,
    topics: dict[Topic, bool],
    frequency: str,
    paused_until: datetime.date | None,
    evidence: Evidence,
) -> int:
    """Apply a preference-center submission; only what changed is recorded. Returns the changes."""
    if frequency not in Frequency.values:
        raise ConsentError("Choose how often you want to hear from us.", code="frequency_invalid")
    today = timezone.localdate()
    if paused_until is not None and not today <= paused_until <= today + datetime.timedelta(days=366):
        raise ConsentError("A pause ends today or within a year.", code="pause_invalid")
    changes = 0
    current = topic_states(tenant=tenant, contact=contact)
    rule = contact_rule(tenant=tenant, contact=contact)
    for topic, wanted in topics.items():
        if wanted != topic_receiving(topic, current.get(topic.pk), rule):
            kind = ConsentEvent.Kind.GRANTED if wanted else ConsentEvent.Kind.REVOKED
            consent_record(tenant=tenant, contact=contact, topic=topic, kind=kind, evidence=evidence)
            changes += 1
    if any(topics.values()):
        # Choosing a topic again undoes an earlier "unsubscribe from all" by the same person.
        for entry in suppressions.suppressions_active(
            tenant=tenant, contact=contact, reasons=[Suppression.Reason.UNSUBSCRIBE_ALL]
        ):
            suppressions.suppression_remove(
                tenant=tenant,
                actor=evidence.actor,
                suppression=entry,
                reason="Opted in again in the preference center",
            )
            changes += 1
    preference = preference_get(tenant=tenant, contact=contact)
    with tenant_context(tenant):
        for field, value in (("frequency", frequency), ("paused_until", paused_until)):
            if getattr(preference, field) != value:
                setattr(preference, field, value)
                PreferenceChange.objects.create(
                    tenant=tenant,
                    contact=contact,
                    field=field,
                    value=str(value or ""),
                    text=evidence.text,
                    **evidence.fields(),
                )
                changes += 1
        preference.save()
        if changes:
            audit.record(
                actor=evidence.actor,
                action="consent.preferences_change",
                target=contact,
                tenant=tenant,
                details={"changes": changes},
            )
    return changes


@transaction.atomic
def unsubscribe(*, tenant: Tenant, contact: Contact, topic: Topic | None, evidence: Evidence) -> int:
    """One topic, or everything non-transactional (topic None: unsubscribe-all suppression plus a
    revocation of every topic currently granted). Repeating it changes nothing."""
    states = topic_states(tenant=tenant, contact=contact)
    if topic is not None:
        if states.get(topic.pk) == ConsentEvent.Kind.REVOKED:
            return 0
        consent_revoke(tenant=tenant, contact=contact, topic=topic, evidence=evidence)
        return 1
    with tenant_context(tenant):
        granted = list(
            Topic.objects.for_tenant(tenant).filter(pk__in=[t for t, s in states.items() if s == "granted"])
        )
    for each in granted:
        consent_revoke(tenant=tenant, contact=contact, topic=each, evidence=evidence)
    suppressions.suppression_add(
        tenant=tenant, actor=evidence.actor, reason=Suppression.Reason.UNSUBSCRIBE_ALL, contact=contact
    )
    return len(granted) + 1


# --- Settings -------------------------------------------------------------------------------------


def consent_settings_get(*, tenant: Tenant) -> ConsentSettings:
    with tenant_context(tenant):
        ConsentSettings.objects.bulk_create([ConsentSettings(tenant=tenant)], ignore_conflicts=True)
        return ConsentSettings.objects.get(tenant=tenant)


@transaction.atomic
def consent_settings_update(
    *,
    tenant: Tenant,
    actor: Actor,
    operating_states: Iterable[str],
    state_mode: str,
    allow_unencrypted_waivers: bool,
    reminder_days_before_expiry: int,
) -> ConsentSettings:
    states = sorted({s.strip().upper() for s in operating_states if s.strip()})
    unknown = [s for s in states if len(s) != 2 or not s.isalpha()]
    if unknown:
        raise ConsentError(f"Use two-letter state codes (not {', '.join(unknown)}).", code="states_invalid")
    if state_mode not in ConsentSettings.StateMode.values:
        raise ConsentError("Choose how state rules apply.", code="state_mode_invalid")
    if not 1 <= reminder_days_before_expiry <= 180:
        raise ConsentError(
            "Reminders go out between 1 and 180 days before expiry.", code="reminder_days_invalid"
        )
    settings = consent_settings_get(tenant=tenant)
    if settings.allow_unencrypted_waivers and not allow_unencrypted_waivers:
        _waivers_end_all(tenant=tenant, actor=actor)
    settings.operating_states = states
    settings.state_mode = state_mode
    settings.allow_unencrypted_waivers = allow_unencrypted_waivers
    settings.reminder_days_before_expiry = reminder_days_before_expiry
    with tenant_context(tenant):
        settings.save()
        audit.record(
            actor=actor,
            action="consent.settings_change",
            target=settings,
            tenant=tenant,
            details={
                "operating_states": states,
                "state_mode": state_mode,
                "allow_unencrypted_waivers": allow_unencrypted_waivers,
                "reminder_days_before_expiry": reminder_days_before_expiry,
                "rules": list(state_rules.combine(states).codes),
            },
        )
    return settings


def _waivers_end_all(*, tenant: Tenant, actor: Actor) -> int:
    """Turning waivers off ends every active one for good, in the history: turning them on again later
    must not silently revive a waiver the patient gave under other terms. Patients ask again."""
    with tenant_context(tenant):
        now = timezone.now()
        ending = list(
            UnencryptedEmailWaiver.objects.for_tenant(tenant).select_for_update().filter(status="active")
        )
        UnencryptedEmailWaiver.objects.filter(pk__in=[w.pk for w in ending], status="active").update(
            status="withdrawn", withdrawn_at=now
        )
        WaiverEvent.objects.bulk_create(
            WaiverEvent(
                tenant=tenant,
                waiver=waiver,
                contact_id=waiver.contact_id,
                kind=WaiverEvent.Kind.ENDED,
                purposes=waiver.purposes,
                source=Source.SYSTEM,
                occurred_at=now,
                actor_type=actor.kind,
                actor_id=(actor.id or "")[:64],
            )
            for waiver in ending
        )
        if ending:
            audit.record(
                actor=actor,
                action="waiver.end_all",
                tenant=tenant,
                details={"count": len(ending)},
            )
    return len(ending)
