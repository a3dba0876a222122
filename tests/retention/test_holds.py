"""Legal holds: scope rules, custodian notices and acknowledgements, reviews, release."""

import dataclasses
import datetime
import io
import json
import zipfile

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from consent.evidence import Evidence
from consent.models import Source
from consent.services import consent_grant, topics_ensure_system
from contacts.models import Contact
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.errors import ApplicationError
from healthmail.tenants.context import tenant_context
from retention import destruction, disposal, exports, holds, registry
from retention.models import DisposalCandidate, HoldCustodian, LegalHold
from retention.policies import PolicyInput, policy_decide, policy_propose
from tests.factories import ContactFactory, MembershipFactory
from tests.sysmail.outbox import deliver_system_mail

from .helpers import YEAR, new_contact, new_messages, officer

pytestmark = pytest.mark.django_db
DAY = datetime.timedelta(days=1)


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
    assert deliver_system_mail(tenant_a) == ["sent"]
    assert [m.to for m in mail.outbox] == [[custodian.email]]
    assert "Roe" not in mail.outbox[0].subject + mail.outbox[0].body  # matter names stay in the app
    from healthmail.actors import Actor

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


def test_release_needs_a_reason_and_a_second_officer_and_frees_the_records(tenant_a):
    actor, second = officer(tenant_a), officer(tenant_a)
    (message,) = new_messages(tenant_a, 1, age=YEAR)
    hold = _hold(tenant_a, actor, categories=("message_metadata",))
    with pytest.raises(ApplicationError, match="why"):
        holds.hold_release_request(tenant=tenant_a, actor=actor, hold=hold, reason=" ")
    with pytest.raises(ApplicationError, match="Nobody asked"):
        holds.hold_release(tenant=tenant_a, actor=second, hold=hold)
    holds.hold_release_request(tenant=tenant_a, actor=actor, hold=hold, reason="Case settled")
    assert holds.holds_for(message) != []  # asked for, not released: the hold is in force
    with pytest.raises(ApplicationError, match="Another compliance officer"):
        holds.hold_release(tenant=tenant_a, actor=actor, hold=hold, sole_officer_reason="I am alone")
    released = holds.hold_release(tenant=tenant_a, actor=second, hold=hold)
    assert (released.released_by, released.release_reason) == (second.user, "Case settled")
    assert holds.holds_for(message) == []
    with tenant_context(tenant_a):
        actions = list(AuditEvent.objects.filter(target_id=str(hold.pk)).values_list("action", flat=True))
    assert {"legal_hold.create", "legal_hold.release_request", "legal_hold.release"} <= set(actions)


def test_approval_by_a_second_officer(tenant_a):
    author, second = officer(tenant_a), officer(tenant_a)
    hold = _hold(tenant_a, author, categories=("contacts",))
    with pytest.raises(ApplicationError, match="Another compliance officer"):
        holds.hold_approve(tenant=tenant_a, actor=author, hold=hold)
    assert holds.hold_approve(tenant=tenant_a, actor=second, hold=hold).approved_by == second.user


def test_a_free_query_holds_the_contacts_it_matches(tenant_a):
    def person(email, state):
        return ContactFactory(tenant=tenant_a, email=email, postal_address={"state": state}).pk

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


# --- Campaign (source) holds reach the recipients' own records ----------------------------------------


def _consent(tenant, contact):
    topic = topics_ensure_system(tenant=tenant)["marketing_newsletters"]
    evidence = Evidence(source=Source.API, actor=Actor.system("test"))
    return consent_grant(tenant=tenant, contact=contact, topic=topic, evidence=evidence)


@pytest.fixture
def consent_handed_to_destroyer(monkeypatch):
    """Consent history is append-only at the database, so no run can delete it. Here the category
    gets a destroyer that records what a run hands it: the records the run would destroy."""
    handed = []

    def record(category, tenant_id, ids):
        handed.extend(ids)
        return destruction.Destroyed(list(ids))

    # It destroys nothing, so the run's check that destroyed records are gone is told so.
    monkeypatch.setitem(destruction.REMAINS_SQL, record, "FALSE")
    category = registry.category_get("consent_records")
    destroyable = dataclasses.replace(category, sources=category.sources[:1], destroy=record, method="test")
    monkeypatch.setitem(registry._categories, "consent_records", destroyable)
    monkeypatch.setattr(disposal, "enqueue", lambda task, **kwargs: None)
    return handed


def test_a_campaign_hold_keeps_its_recipients_contact_and_consent_records(
    tenant_a, consent_handed_to_destroyer
):
    author, approver = officer(tenant_a), officer(tenant_a)
    recipient, bystander = new_contact(tenant_a), new_contact(tenant_a)
    recipient_consent, bystander_consent = _consent(tenant_a, recipient), _consent(tenant_a, bystander)
    new_messages(tenant_a, 1, age=YEAR, contact=recipient, source_id="c-7")
    new_messages(tenant_a, 1, age=YEAR, contact=bystander, source_id="c-8")
    with tenant_context(tenant_a):  # both deleted long enough ago for their records to be due
        Contact.objects.filter(pk__in=[recipient.pk, bystander.pk]).update(
            deleted_at=timezone.now() - 90 * DAY
        )
    hold = _hold(tenant_a, author, sources=("campaign:c-7",))
    version = policy_propose(
        tenant=tenant_a,
        actor=author,
        category="consent_records",
        data=PolicyInput(6 * 365, 6 * 365 + 1, "destroy", True, "Test", "Test"),
    )
    policy_decide(tenant=tenant_a, actor=approver, policy=version, approve=True)

    as_of = timezone.now() + (6 * 365 + 30) * DAY  # consent past its maximum; messages not yet
    runs = disposal.disposal_plan(
        tenant=tenant_a, actor=author, as_of=as_of, categories=["contacts", "consent_records"]
    )
    for run in runs:
        if run.status == "awaiting_approval":
            disposal.disposal_approve(tenant=tenant_a, actor=approver, run=run)
        disposal.disposal_run_execute(tenant_id=tenant_a.pk, run_id=run.pk)

    assert len(runs) == 2
    assert consent_handed_to_destroyer == [str(bystander_consent.pk)]
    with tenant_context(tenant_a):
        assert Contact.objects.get(pk=recipient.pk).email_index is not None  # kept whole
        assert Contact.objects.get(pk=bystander.pk).email_index is None  # tombstoned
        held = set(DisposalCandidate.objects.filter(skip_reason="held").values_list("record_id", flat=True))
    assert held == {str(recipient.pk), str(recipient_consent.pk)}
    assert holds.holds_for(recipient_consent) == [hold]
    assert holds.holds_for(bystander_consent) == []


def test_the_hold_badge_shows_on_a_campaign_recipient(tenant_a, member_client):
    recipient, bystander = new_contact(tenant_a), new_contact(tenant_a)
    new_messages(tenant_a, 1, age=YEAR, contact=recipient, source_id="c-7")
    new_messages(tenant_a, 1, age=YEAR, contact=bystander, source_id="c-8")
    _hold(tenant_a, officer(tenant_a), sources=("campaign:c-7",))
    client = member_client(Role.COMPLIANCE_OFFICER)

    def page(contact):
        return client.get(reverse("contacts:contact_detail", args=[contact.pk])).content.decode()

    assert "records are under 1 legal hold" in page(recipient)
    assert "Roe v. Clinic" in page(recipient)
    assert "records are under" not in page(bystander)


def test_recipients_reached_after_the_hold_is_placed_are_covered(tenant_a):
    """A campaign still sending: its later recipients are covered as soon as their message exists."""
    hold = _hold(tenant_a, officer(tenant_a), sources=("campaign:c-7",))
    late = new_contact(tenant_a)
    consent = _consent(tenant_a, late)
    assert holds.holds_for_contact(tenant=tenant_a, contact_id=late.pk) == []
    assert holds.holds_for(consent) == []
    new_messages(tenant_a, 1, age=DAY, contact=late, source_id="c-7")
    assert holds.holds_for_contact(tenant=tenant_a, contact_id=late.pk) == [hold]
    assert holds.holds_for(consent) == [hold]


def test_the_date_range_chooses_the_campaign_messages_that_make_a_recipient(tenant_a):
    inside, outside = new_contact(tenant_a), new_contact(tenant_a)
    new_messages(tenant_a, 1, age=YEAR, contact=inside, source_id="c-7")
    new_messages(tenant_a, 1, age=3 * YEAR, contact=outside, source_id="c-7")
    inside_consent, outside_consent = _consent(tenant_a, inside), _consent(tenant_a, outside)
    date_to = (timezone.now() - 180 * DAY).date()  # the consent events are newer than the range
    hold = _hold(
        tenant_a,
        officer(tenant_a),
        sources=("campaign:c-7",),
        date_from=(timezone.now() - 2 * YEAR).date(),
        date_to=date_to,
    )
    assert holds.holds_for(inside_consent) == [hold]
    assert holds.holds_for(outside_consent) == []
    assert holds.holds_for_contact(tenant=tenant_a, contact_id=outside.pk) == []


def test_a_campaign_hold_on_contact_records_keeps_the_messages_that_show_the_recipients(tenant_a):
    patient = new_contact(tenant_a)
    (message,) = new_messages(tenant_a, 1, age=YEAR, contact=patient, source_id="c-7")
    (unrelated,) = new_messages(tenant_a, 1, age=YEAR, contact=patient, source_id="c-8")
    hold = _hold(tenant_a, officer(tenant_a), sources=("campaign:c-7",), categories=("contacts",))
    assert holds.holds_for(message) == [hold]  # destroying it would end the hold's reach
    assert holds.holds_for(unrelated) == []
    assert holds.holds_for_contact(tenant=tenant_a, contact_id=patient.pk) == [hold]


def test_a_campaign_hold_naming_contacts_reaches_only_those_recipients(tenant_a):
    named, other = new_contact(tenant_a), new_contact(tenant_a)
    for contact in (named, other):
        new_messages(tenant_a, 1, age=YEAR, contact=contact, source_id="c-7")
    named_consent, other_consent = _consent(tenant_a, named), _consent(tenant_a, other)
    hold = _hold(tenant_a, officer(tenant_a), sources=("campaign:c-7",), contact_ids=(named.pk,))
    assert holds.holds_for(named_consent) == [hold]
    assert holds.holds_for(other_consent) == []
    assert holds.holds_for_contact(tenant=tenant_a, contact_id=other.pk) == []


def test_the_evidence_export_of_a_campaign_hold_holds_its_recipients_records(tenant_a):
    actor = officer(tenant_a)
    recipients, bystander = (new_contact(tenant_a), new_contact(tenant_a)), new_contact(tenant_a)
    for person in recipients:
        new_messages(tenant_a, 1, age=YEAR, contact=person, source_id="c-7")
        _consent(tenant_a, person)
    new_messages(tenant_a, 1, age=YEAR, contact=recipients[0], source_id="c-8")  # another campaign
    new_messages(tenant_a, 1, age=YEAR, contact=bystander, source_id="c-8")
    _consent(tenant_a, bystander)
    hold = _hold(tenant_a, actor, sources=("campaign:c-7",))

    scope = exports.ExportScope.of_hold(hold)
    assert set(scope.contact_ids) == {p.pk for p in recipients}
    export = exports.evidence_export_create(
        tenant=tenant_a, actor=actor, purpose="Discovery", recipient="Counsel", scope=scope, hold=hold
    )
    _, content = exports.evidence_export_download(tenant=tenant_a, actor=actor, export_id=export.pk)
    archive = zipfile.ZipFile(io.BytesIO(content))
    contacts = {row["id"] for row in json.loads(archive.read("records/contacts.json"))}
    assert contacts == {str(p.pk) for p in recipients}
    consent = json.loads(archive.read("consent/evidence.json"))["consent_events"]
    assert {str(row["contact_id"]) for row in consent} == {str(p.pk) for p in recipients}
    messages = json.loads(archive.read("records/messages.json"))
    assert len(messages) == 2  # the held campaign's messages only, not the recipients' other mail
    # A hold that names people keeps to them.
    named = _hold(tenant_a, actor, sources=("campaign:c-7",), contact_ids=(recipients[0].pk,))
    assert exports.ExportScope.of_hold(named).contact_ids == (recipients[0].pk,)
