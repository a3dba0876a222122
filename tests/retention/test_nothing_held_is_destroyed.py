"""Property: whatever the holds, policies and dates, no held record is ever destroyed, and every
expired record nothing protects is (RELIABILITY C4). Records: messages of two campaigns and the
contact records of deleted people, so campaign holds reach their recipients' records too."""

import datetime

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contacts.models import Contact
from delivery.models import Message
from delivery.outbox import message_content
from healthmail.tenants.context import tenant_context
from retention import disposal, holds
from retention.policies import PolicyInput, policy_decide, policy_propose
from tests.factories import BaaFactory, TenantFactory

from .helpers import new_contact, new_messages, officer

pytestmark = pytest.mark.django_db
DAY = datetime.timedelta(days=1)
HOLD_CATEGORIES = [
    "message_metadata",
    "message_content",
    "contacts",
    "consent_records",
    "tracking_events",
    "exports",
]
CONTACT_MAX = 60  # shipped default for deleted contacts

message_specs = st.lists(
    st.tuples(st.integers(0, 4000), st.integers(0, 2), st.integers(0, 1)), min_size=1, max_size=8
)
hold_specs = st.lists(
    st.fixed_dictionaries(
        {
            "contacts": st.sets(st.integers(0, 2), max_size=2),
            "sources": st.sets(st.integers(0, 1), max_size=1),
            "categories": st.sets(st.sampled_from(HOLD_CATEGORIES), max_size=2),
            "dates": st.none() | st.tuples(st.integers(0, 4000), st.integers(0, 2000)),
            "released": st.booleans(),
        }
    ),
    max_size=3,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    messages=message_specs,
    hold_list=hold_specs,
    max_years=st.integers(6, 10),
    ahead_days=st.integers(0, 5 * 365),
    deleted=st.lists(st.none() | st.integers(0, 120), min_size=3, max_size=3),
)
def test_no_held_record_is_ever_destroyed(
    db, monkeypatch, messages, hold_list, max_years, ahead_days, deleted
):
    monkeypatch.setattr(disposal, "enqueue", lambda task, **kwargs: None)
    with transaction.atomic():
        _scenario(messages, hold_list, max_years, ahead_days, deleted)
        transaction.set_rollback(True)


def _scenario(messages, hold_list, max_years, ahead_days, deleted):
    tenant = TenantFactory()
    BaaFactory(tenant=tenant)
    author, approver = officer(tenant), officer(tenant)
    now = timezone.now()
    contacts = [new_contact(tenant) for _ in range(3)]
    with tenant_context(tenant):
        for contact, days in zip(contacts, deleted, strict=True):
            if days is not None:
                Contact.objects.filter(pk=contact.pk).update(deleted_at=now - days * DAY)
    gone = [c for c, days in zip(contacts, deleted, strict=True) if days is not None]
    created = [
        (new_messages(tenant, 1, age=age * DAY, contact=contacts[c], source_id=f"s{s}")[0], age)
        for age, c, s in messages
    ]
    if max_years != 7:
        version = policy_propose(
            tenant=tenant,
            actor=author,
            category="message_metadata",
            data=PolicyInput(6 * 365, max_years * 365, "destroy", True, "Property test", "Property test"),
        )
        policy_decide(tenant=tenant, actor=approver, policy=version, approve=True)
    for spec in hold_list:
        dates = spec["dates"]
        scope = holds.HoldScope(
            contact_ids=tuple(contacts[i].pk for i in spec["contacts"]),
            sources=tuple(f"campaign:s{i}" for i in spec["sources"]),
            categories=tuple(spec["categories"]),
            date_from=(now - dates[0] * DAY).date() if dates else None,
            date_to=(now - dates[0] * DAY + dates[1] * DAY).date() if dates else None,
        )
        if scope.is_empty:
            continue
        hold = holds.hold_create(
            tenant=tenant, actor=author, matter="M", reason="R", counsel="C", scope=scope
        )
        if spec["released"]:
            holds.hold_release_request(tenant=tenant, actor=author, hold=hold, reason="settled")
            holds.hold_release(tenant=tenant, actor=approver, hold=hold)
    # The oracle: the Python statement of the hold rule, evaluated before anything runs.
    protected = {m.pk for m, _ in created if holds.holds_for(m)}
    with tenant_context(tenant):
        gone = list(Contact.objects.filter(pk__in=[c.pk for c in gone]))
    protected_people = {c.pk for c in gone if holds.holds_for(c)}

    as_of = timezone.now() + ahead_days * DAY  # after the policy versions took effect
    for run in disposal.disposal_plan(tenant=tenant, actor=author, as_of=as_of):
        if run.status == "awaiting_approval":
            disposal.disposal_approve(tenant=tenant, actor=approver, run=run)
        disposal.disposal_run_execute(tenant_id=tenant.pk, run_id=run.pk, batch_size=3)

    with tenant_context(tenant):
        remaining = set(
            Message.objects.filter(pk__in=[m.pk for m, _ in created]).values_list("pk", flat=True)
        )
    for message, age in created:
        expired = age * DAY + ahead_days * DAY > max_years * 365 * DAY + DAY  # a day of slack at the edge
        if message.pk in protected:
            assert message.pk in remaining, "a held record was destroyed"
            assert message_content(message).text == "A1C 7.1", "a held record was altered"
        elif expired:
            assert message.pk not in remaining, "an expired record nothing protects was kept"
        elif age * DAY + ahead_days * DAY < max_years * 365 * DAY - DAY:
            assert message.pk in remaining, "a record was destroyed before its maximum retention"

    with tenant_context(tenant):
        tombstoned = set(
            Contact.objects.filter(pk__in=[c.pk for c in gone], email_index__isnull=True).values_list(
                "pk", flat=True
            )
        )
    for contact in gone:
        age = (now - contact.deleted_at) + ahead_days * DAY
        if contact.pk in protected_people:
            assert contact.pk not in tombstoned, "a held contact record was tombstoned"
        elif age > CONTACT_MAX * DAY + DAY:
            assert contact.pk in tombstoned, "an expired contact record nothing protects was kept"
        elif age < CONTACT_MAX * DAY - DAY:
            assert contact.pk not in tombstoned, "a contact record was tombstoned before its maximum"
