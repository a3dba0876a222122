"""Legal holds: what they cover, and the lock that makes "a held record is never destroyed" hold
under concurrency.

Creating or widening a hold takes an exclusive transaction-level advisory lock per tenant; every
disposal and archive batch takes the same lock shared and reads the active holds after it has it.
So a hold committed before a batch starts is seen by that batch, and a hold created while a batch
runs waits for the batch to commit (its records were destroyed before the hold existed).

A hold naming campaigns (sources) also covers the contact-keyed records (contact, consent and
authorization records) of every recipient of those campaigns: hold_recipients.py says how, and why
the recipients are computed at check time rather than frozen when the hold is placed.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone

from audit import services as audit
from contacts.models import Contact
from healthmail.accounts.models import Membership, User
from healthmail.actors import Actor
from healthmail.errors import ApplicationError
from healthmail.sysmail.services import system_mail_queue
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import TenantOwnedModel
from segmentation.services import segment_member_ids

from .hold_decisions import (  # noqa: F401 - re-exported: callers use holds.*
    hold_approve,
    hold_release,
    hold_release_request,
    hold_review,
)
from .hold_recipients import (
    contact_keyed_categories,
    date_bounds,
    evidence_categories,
    recipient_sql,
    recipients_among,
)
from .models import HOLD_NOTICE_TOPIC, HOLD_REVIEW_TOPIC, HoldCustodian, LegalHold
from .registry import all_categories, categories_for_model, expand_groups


def _lock_key(tenant_id) -> str:
    return f"retention-holds:{tenant_id}"


def holds_lock_exclusive(tenant_id) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [_lock_key(tenant_id)])


def holds_lock_shared(tenant_id) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock_shared(hashtextextended(%s, 0))", [_lock_key(tenant_id)])


@dataclass(frozen=True)
class RecordRef:
    """What a hold looks at: the same columns the disposal candidates carry."""

    category: str
    record_id: str
    clock_at: datetime.datetime
    contact_id: uuid.UUID | None = None
    source_ref: str | None = None
    actor_ref: str | None = None


@dataclass(frozen=True)
class HoldScope:
    contact_ids: tuple[uuid.UUID, ...] = ()
    sources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    date_from: datetime.date | None = None
    date_to: datetime.date | None = None
    custodian_ids: tuple[uuid.UUID, ...] = ()
    free_query: str = ""

    @property
    def is_empty(self) -> bool:
        return not (self.contact_ids or self.sources or self.categories or self.date_from or self.date_to)


@dataclass(frozen=True)
class ActiveHold:
    """An active hold with its custodians, as the disposal batch and `holds_for` read it.

    `categories`: what the hold covers (empty: every category); `contact_keyed`: the contact-keyed
    categories its sources reach through their recipients (empty when it names no source)."""

    hold: LegalHold
    custodian_refs: frozenset[str]
    categories: frozenset[str]
    contact_keyed: frozenset[str] = frozenset()
    _reached: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def reaches(self, contact_id) -> bool:
        """Whether the contact received a message from one of the hold's sources (asked once)."""
        if contact_id is None or not self.hold.sources:
            return False
        key = uuid.UUID(str(contact_id))
        if key not in self._reached:
            self._reached[key] = key in recipients_among(self.hold, [key])
        return self._reached[key]


def active_holds(*, tenant) -> list[ActiveHold]:
    with tenant_context(tenant):
        holds = list(LegalHold.objects.filter(tenant=tenant, status=LegalHold.Status.ACTIVE))
        custodians: dict = {}
        for hold_id, user_id in HoldCustodian.objects.filter(tenant=tenant, hold__in=holds).values_list(
            "hold_id", "user_id"
        ):
            custodians.setdefault(hold_id, set()).add(str(user_id))
    keyed, evidence = contact_keyed_categories(), evidence_categories()
    found = []
    for hold in holds:
        categories = frozenset(expand_groups(hold.categories))
        reached = frozenset() if not hold.sources else (keyed & categories if categories else keyed)
        if reached and categories:
            # The campaign's messages show who received it: kept, or the reach would shrink.
            categories |= evidence
        found.append(ActiveHold(hold, frozenset(custodians.get(hold.pk, ())), categories, reached))
    return found


def hold_covers(active: ActiveHold, ref: RecordRef) -> bool:
    """The rule, in Python (for pages and `holds_for`); `holds_sql` states the same rule in SQL."""
    hold = active.hold
    if active.categories and ref.category not in active.categories:
        return False
    if hold.contact_ids and ref.contact_id not in hold.contact_ids:
        return False
    if active.custodian_refs and ref.actor_ref is not None and ref.actor_ref not in active.custodian_refs:
        return False
    if hold.sources and ref.source_ref not in hold.sources:
        # A contact's own records name no source: the sources reach them through their recipients
        # (the date range chose the recipients' messages, not the dates of these records).
        return ref.category in active.contact_keyed and active.reaches(ref.contact_id)
    return all(ref.clock_at >= v if op == ">=" else ref.clock_at < v for op, v in date_bounds(hold))


def _hold_sql(active: ActiveHold, alias: str) -> tuple[str, list]:
    hold = active.hold
    parts: list[str] = []
    params: list[Any] = []

    def add(sql: str, *values) -> None:
        parts.append(sql)
        params.extend(values)

    if active.categories:
        add(f"{alias}.category = ANY(%s)", sorted(active.categories))
    if hold.contact_ids:
        add(f"{alias}.contact_id = ANY(%s::uuid[])", list(hold.contact_ids))
    if active.custodian_refs:
        add(f"({alias}.actor_ref IS NULL OR {alias}.actor_ref = ANY(%s))", sorted(active.custodian_refs))
    dates = [(f"{alias}.clock_at {op} %s", value) for op, value in date_bounds(hold)]
    if not hold.sources:
        for sql, value in dates:
            add(sql, value)
    else:
        direct = " AND ".join([f"{alias}.source_ref = ANY(%s)", *(sql for sql, _ in dates)])
        direct_params = [list(hold.sources), *(value for _, value in dates)]
        if not active.contact_keyed:
            add(direct, *direct_params)
        else:
            reached, reached_params = recipient_sql(hold, f"{alias}.contact_id")
            add(
                f"(({direct}) OR ({alias}.category = ANY(%s) AND {reached}))",
                *direct_params,
                sorted(active.contact_keyed),
                *reached_params,
            )
    return "(" + (" AND ".join(parts) or "TRUE") + ")", params


def holds_sql(holds: Sequence[ActiveHold], alias: str = "c") -> tuple[str, list]:
    """An SQL condition over candidate-shaped columns (`alias`.category, contact_id, source_ref,
    clock_at, actor_ref): true when any of the holds covers the row."""
    clauses, params = [], []
    for active in holds:
        clause, clause_params = _hold_sql(active, alias)
        clauses.append(clause)
        params.extend(clause_params)
    return ("(" + " OR ".join(clauses) + ")" if clauses else "FALSE"), params


def _refs(cursor, source, category: str, column: str, values: list, tenant_id) -> list[RecordRef]:
    cursor.execute(
        f"SELECT * FROM ({source.select_sql()}) q WHERE q.{column} = ANY(%(values)s)",  # noqa: S608
        {"tenant": tenant_id, "values": values},
    )
    return [RecordRef(category, *row) for row in cursor.fetchall()]


def record_refs(model_or_instance, record_ids: Sequence[str], *, tenant) -> list[RecordRef]:
    """The hold-relevant columns of records, computed by the same SQL disposal uses."""
    refs = []
    tenant_id = getattr(tenant, "pk", tenant)
    with tenant_context(tenant_id), connection.cursor() as cursor:
        for category in categories_for_model(model_or_instance):
            for source in category.sources:
                if source.model == model_or_instance._meta.label:
                    ids = [str(i) for i in record_ids]
                    refs.extend(_refs(cursor, source, category.key, "record_id", ids, tenant_id))
    return refs


def holds_for(record: TenantOwnedModel) -> list[LegalHold]:
    """Active holds covering a record (any model registered in a retention category)."""
    refs = record_refs(record, [str(record.pk)], tenant=record.tenant_id)
    holds = active_holds(tenant=record.tenant_id)
    return [a.hold for a in holds if any(hold_covers(a, ref) for ref in refs)]


def contact_held(contact: TenantOwnedModel) -> bool:
    """Whether an active hold covers this contact record; a hold placed after this answer waits for
    the caller's transaction (the shared holds lock), as it waits for a disposal batch."""
    holds_lock_shared(contact.tenant_id)
    return bool(holds_for(contact))


def holds_for_contact(*, tenant, contact_id) -> list[LegalHold]:
    """Holds covering any record about the contact: naming it, covering its contact or consent
    records, or reaching it through a held campaign it received (those messages are held)."""
    holds = active_holds(tenant=tenant)
    if not holds:
        return []
    contact_id = uuid.UUID(str(contact_id))
    tenant_id = getattr(tenant, "pk", tenant)
    keyed, evidence = contact_keyed_categories(), evidence_categories()
    refs = []
    with tenant_context(tenant_id), connection.cursor() as cursor:
        for category in all_categories():
            if category.key in keyed:
                for source in category.sources:
                    refs.extend(_refs(cursor, source, category.key, "contact_id", [contact_id], tenant_id))
    return [
        active.hold
        for active in holds
        if contact_id in active.hold.contact_ids
        or any(hold_covers(active, ref) for ref in refs)
        or (
            active.hold.sources
            and not active.hold.contact_ids
            and (not active.categories or active.categories & evidence)
            and active.reaches(contact_id)
        )
    ]


# --- Services -----------------------------------------------------------------------------------------


def _resolve_free_query(tenant, scope: HoldScope) -> HoldScope:
    """The free query is a segment definition (JSON, the segment builder's language): the contacts it
    matches when the hold is placed join the hold's contacts, frozen like any preservation list."""
    text = scope.free_query.strip()
    if not text:
        return scope
    try:
        definition = json.loads(text)
    except ValueError:
        raise ApplicationError(
            'The free query must be a segment definition in JSON, e.g. {"all": [{"field": "state", '
            '"op": "in", "value": ["CA"]}]}.',
            code="free_query",
        ) from None
    matched = segment_member_ids(tenant=tenant, definition=definition)
    if not matched:
        raise ApplicationError("The free query matches no contact of this organization.", code="free_query")
    return dataclasses.replace(scope, contact_ids=(*scope.contact_ids, *matched))


def _validate_scope(tenant, scope: HoldScope) -> None:
    if scope.is_empty:
        raise ApplicationError(
            "Name at least one of: contacts, campaigns/sources, categories or a date range.", code="scope"
        )
    known = {c.key for c in all_categories()}
    unknown = set(scope.categories) - known
    if unknown:
        raise ApplicationError("Unknown categories: " + ", ".join(sorted(unknown)), code="categories")
    if scope.date_from and scope.date_to and scope.date_to < scope.date_from:
        raise ApplicationError("The date range ends before it starts.", code="dates")
    if scope.contact_ids:
        found = Contact.objects.filter(tenant=tenant, pk__in=scope.contact_ids).count()
        if found != len(set(scope.contact_ids)):
            raise ApplicationError(
                f"{len(set(scope.contact_ids)) - found} of the contact ids are not contacts of this "
                "organization.",
                code="contacts",
            )
    members = Membership.objects.filter(
        tenant=tenant, user_id__in=scope.custodian_ids, is_active=True
    ).count()
    if members != len(set(scope.custodian_ids)):
        raise ApplicationError("Custodians must be active members of this organization.", code="custodians")


def _queue_notice(tenant, hold: LegalHold, user_ids: Sequence) -> None:
    """Email the custodians through the system-mail outbox, in the hold's own transaction (placing a
    hold never depends on the mail server); the in-app notice is the acknowledgement list itself."""
    with tenant_context(tenant):
        custodians = list(
            User.objects.filter(
                is_active=True,
                pk__in=Membership.objects.filter(tenant=tenant, user_id__in=user_ids, is_active=True).values(
                    "user_id"
                ),
            )
        )
    system_mail_queue(
        tenant=tenant,
        topic=HOLD_NOTICE_TOPIC,
        # Matter names can name a patient: the email carries only the link.
        subject="HealthMail: you are a custodian under a legal hold",
        body=(
            "You are a custodian under a legal hold. Preserve every record and document you hold "
            "that relates to the matter; do not delete or alter anything in its scope.\n\n"
            f"Acknowledge it at {settings.PUBLIC_BASE_URL.rstrip('/')}/retention/holds/{hold.pk}/\n"
        ),
        users=custodians,
        source_ids=[hold.pk],
    )


@transaction.atomic
def hold_create(
    *,
    tenant,
    actor: Actor,
    matter: str,
    reason: str,
    counsel: str,
    scope: HoldScope,
    review_every_days: int = 90,
) -> LegalHold:
    if not (matter.strip() and reason.strip() and counsel.strip()):
        raise ApplicationError("Matter, reason and counsel are required.", code="required")
    with tenant_context(tenant):
        scope = _resolve_free_query(tenant, scope)
        _validate_scope(tenant, scope)
        holds_lock_exclusive(tenant.pk)
        now = timezone.now()  # after the lock: no batch that could destroy covered records is running
        hold = LegalHold.objects.create(
            tenant=tenant,
            matter=matter.strip(),
            reason=reason.strip(),
            counsel=counsel.strip(),
            contact_ids=list(dict.fromkeys(scope.contact_ids)),
            sources=list(dict.fromkeys(s.strip() for s in scope.sources if s.strip())),
            categories=list(dict.fromkeys(scope.categories)),
            date_from=scope.date_from,
            date_to=scope.date_to,
            free_query=scope.free_query.strip(),
            created_by=actor.user,
            created_at=now,
            review_every_days=review_every_days,
            next_review_at=now + datetime.timedelta(days=review_every_days),
        )
        HoldCustodian.objects.bulk_create(
            [
                HoldCustodian(tenant=tenant, hold=hold, user_id=user_id, notified_at=now)
                for user_id in dict.fromkeys(scope.custodian_ids)
            ]
        )
        audit.record(
            actor=actor,
            action="legal_hold.create",
            target=hold,
            tenant=tenant,
            reason=reason[:500],
            contacts=hold.contact_ids,
            details={
                "contacts": len(hold.contact_ids),
                "sources": hold.sources,
                "categories": hold.categories,
                "date_from": str(hold.date_from or ""),
                "date_to": str(hold.date_to or ""),
                "custodians": [str(u) for u in scope.custodian_ids],
            },
        )
        _queue_notice(tenant, hold, list(scope.custodian_ids))
    return hold


@transaction.atomic
def hold_acknowledge(*, tenant, actor: Actor, hold: LegalHold) -> HoldCustodian:
    with tenant_context(tenant):
        custodian = (
            HoldCustodian.objects.select_for_update()
            .filter(tenant=tenant, hold=hold, user=actor.user)
            .first()
        )
        if custodian is None:
            raise ApplicationError("You are not a custodian of this hold.", code="not_custodian")
        if custodian.acknowledged_at is None:
            custodian.acknowledged_at = timezone.now()
            custodian.save(update_fields=["acknowledged_at"])
            audit.record(actor=actor, action="legal_hold.acknowledge", target=hold, tenant=tenant)
    return custodian


@transaction.atomic
def hold_notify_again(*, tenant, actor: Actor, hold: LegalHold) -> int:
    """Remind the custodians who have not acknowledged yet."""
    with tenant_context(tenant):
        waiting = list(
            HoldCustodian.objects.filter(tenant=tenant, hold=hold, acknowledged_at__isnull=True).values_list(
                "user_id", flat=True
            )
        )
        HoldCustodian.objects.filter(tenant=tenant, hold=hold, user_id__in=waiting).update(
            notified_at=timezone.now()
        )
        audit.record(
            actor=actor,
            action="legal_hold.notify",
            target=hold,
            tenant=tenant,
            details={"count": len(waiting)},
        )
        _queue_notice(tenant, hold, waiting)
    return len(waiting)


def hold_reviews_remind(*, tenant) -> int:
    """Tell the compliance officers about holds whose review is due (once per due date)."""
    now = timezone.now()
    with tenant_context(tenant), transaction.atomic():
        due = list(
            LegalHold.objects.select_for_update(skip_locked=True)
            .filter(tenant=tenant, status=LegalHold.Status.ACTIVE, next_review_at__lte=now)
            .filter(models.Q(reminded_at__isnull=True) | models.Q(reminded_at__lt=models.F("next_review_at")))
        )
        if not due:
            return 0
        LegalHold.objects.filter(pk__in=[h.pk for h in due]).update(reminded_at=now)
        officers = list(
            User.objects.filter(
                is_active=True,
                pk__in=Membership.objects.filter(
                    tenant=tenant, role="compliance_officer", is_active=True
                ).values("user_id"),
            )
        )
        for hold in due:
            audit.record(
                actor=Actor.system("retention"), action="legal_hold.review_due", target=hold, tenant=tenant
            )
        system_mail_queue(
            tenant=tenant,
            topic=HOLD_REVIEW_TOPIC,
            subject=f"Legal holds due for review ({len(due)})",
            body=f"Review them at {settings.PUBLIC_BASE_URL.rstrip('/')}/retention/holds/\n",
            users=officers,
            source_ids=[h.pk for h in due],
        )
    return len(due)
