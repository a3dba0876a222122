"""Legal holds: scope rules, custodian notices and acknowledgements, reviews, release."""

import datetime

import pytest
from django.core import mail
from django.utils import timezone

from audit.models import AuditEvent
from healthmail.errors import ApplicationError
from healthmail.tenants.context import tenant_context
from retention import holds
from retention.models import HoldCustodian, LegalHold
from tests.factories import MembershipFactory

from .helpers import YEAR, new_contact, new_messages, officer

pytestmark = pytest.mark.django_db


def _hold(tenant, actor, **scope):
    return holds.hold_create(
        tenant=tenant,
        actor=actor,
        matter="Roe v. Clinic",
        reason="Pending litigation",
        counsel="Firm LLP",
        scope=holds.HoldScope(**scope),
    )


def test_a_hold_needs_a_scope(tenant_a):
    with pytest.raises(ApplicationError, match="at least one"):
        _hold(tenant_a, officer(tenant_a))


def test_foreign_contacts_cannot_be_named(tenant_a, tenant_b):
    stranger = new_contact(tenant_b)
    with pytest.raises(ApplicationError, match="not contacts of this organization"):
        _hold(tenant_a, officer(tenant_a), contact_ids=(stranger.pk,))


def test_scope_dimensions_combine(tenant_a):
    actor = officer(tenant_a)
    patient = new_contact(tenant_a)
    (in_campaign,) = new_messages(tenant_a, 1, age=YEAR, contact=patient, source_id="c-7")
    (other_campaign,) = new_messages(tenant_a, 1, age=YEAR, contact=patient, source_id="c-8")
    (other_patient,) = new_messages(tenant_a, 1, age=YEAR, source_id="c-7")
    (too_old,) = new_messages(tenant_a, 1, age=5 * YEAR, contact=patient, source_id="c-7")
    hold = _hold(
        tenant_a,
        actor,
        contact_ids=(patient.pk,),
        sources=("campaign:c-7",),
        date_from=(timezone.now() - 2 * YEAR).date(),
    )
    assert holds.holds_for(in_campaign) == [hold]
    assert holds.holds_for(other_campaign) == []
    assert holds.holds_for(other_patient) == []
    assert holds.holds_for(too_old) == []
    assert holds.holds_for_contact(tenant=tenant_a, contact_id=patient.pk) == [hold]


def test_a_category_hold_covers_its_whole_message_group(tenant_a):
    (message,) = new_messages(tenant_a, 1, age=YEAR)
    hold = _hold(tenant_a, officer(tenant_a), categories=("tracking_events",))
    assert holds.holds_for(message) == [hold]  # the message its events depend on is frozen too


def test_custodians_are_notified_and_acknowledge(tenant_a, django_capture_on_commit_callbacks):
    actor = officer(tenant_a)
    custodian = MembershipFactory(tenant=tenant_a).user
    with django_capture_on_commit_callbacks(execute=True):
        hold = _hold(tenant_a, actor, categories=("audit_events",), custodian_ids=(custodian.pk,))
    assert [m.to for m in mail.outbox] == [[custodian.email]]
    assert "Roe" not in mail.outbox[0].subject + mail.outbox[0].body  # matter names stay in the app
    from audit.actors import Actor

    holds.hold_acknowledge(tenant=tenant_a, actor=Actor.for_user(custodian), hold=hold)
    with tenant_context(tenant_a):
        assert HoldCustodian.objects.get(hold=hold).acknowledged_at is not None
    with pytest.raises(ApplicationError, match="not a custodian"):
        holds.hold_acknowledge(tenant=tenant_a, actor=actor, hold=hold)


def test_reviews_fall_due_and_remind_once(tenant_a):
    actor = officer(tenant_a)
    hold = _hold(tenant_a, actor, categories=("contacts",))
    with tenant_context(tenant_a):
        LegalHold.objects.filter(pk=hold.pk).update(
            next_review_at=timezone.now() - datetime.timedelta(days=1)
        )
    assert holds.hold_reviews_remind(tenant=tenant_a) == 1
    assert holds.hold_reviews_remind(tenant=tenant_a) == 0
    holds.hold_review(tenant=tenant_a, actor=actor, hold=hold, note="Still in discovery")
    with tenant_context(tenant_a):
        hold.refresh_from_db()
    assert hold.next_review_at > timezone.now() + datetime.timedelta(days=80)


def test_release_needs_a_reason_and_frees_the_records(tenant_a):
    actor = officer(tenant_a)
    (message,) = new_messages(tenant_a, 1, age=YEAR)
    hold = _hold(tenant_a, actor, categories=("message_metadata",))
    with pytest.raises(ApplicationError, match="why"):
        holds.hold_release(tenant=tenant_a, actor=actor, hold=hold, reason=" ")
    holds.hold_release(tenant=tenant_a, actor=actor, hold=hold, reason="Case settled")
    assert holds.holds_for(message) == []
    with tenant_context(tenant_a):
        actions = list(AuditEvent.objects.filter(target_id=str(hold.pk)).values_list("action", flat=True))
    assert {"legal_hold.create", "legal_hold.release"} <= set(actions)


def test_approval_by_a_second_officer(tenant_a):
    author, second = officer(tenant_a), officer(tenant_a)
    hold = _hold(tenant_a, author, categories=("contacts",))
    with pytest.raises(ApplicationError, match="Another compliance officer"):
        holds.hold_approve(tenant=tenant_a, actor=author, hold=hold)
    assert holds.hold_approve(tenant=tenant_a, actor=second, hold=hold).approved_by == second.user


def test_a_free_query_holds_the_contacts_it_matches(tenant_a):
    from audit.actors import Actor
    from contacts.services import ContactInput, contact_upsert

    def person(email, state):
        data = ContactInput(email=email, postal_address={"state": state})
        return contact_upsert(tenant=tenant_a, actor=Actor.system("t"), data=data, source="t").contact_id

    in_ca, in_tx = person("ca@patients.example", "CA"), person("tx@patients.example", "TX")
    query = '{"all": [{"field": "state", "op": "in", "value": ["CA"]}]}'
    hold = _hold(tenant_a, officer(tenant_a), free_query=query)
    assert set(hold.contact_ids) == {in_ca}
    assert holds.holds_for_contact(tenant=tenant_a, contact_id=in_ca) == [hold]
    assert holds.holds_for_contact(tenant=tenant_a, contact_id=in_tx) == []
    assert hold.free_query == query


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("state = CA", "segment definition in JSON"),
        ('{"all": [{"field": "nope", "op": "eq", "value": 1}]}', "nope"),
        ('{"all": [{"field": "state", "op": "in", "value": ["WY"]}]}', "matches no contact"),
    ],
)
def test_a_bad_free_query_is_refused_clearly(tenant_a, query, message):
    with pytest.raises(ApplicationError, match=message):
        _hold(tenant_a, officer(tenant_a), free_query=query)
