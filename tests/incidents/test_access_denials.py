"""164.524 denials and fees, paragraph by paragraph: (a)(2) unreviewable grounds, (a)(3) reviewable
grounds with a licensed professional's determination, (a)(4)/(d)(4) the independent review, (d)(1)
a denial in part, (d)(2) the written denial's content, (c)(4) the cost-based fee; the 30-day clock
and its one extension are unchanged."""

from __future__ import annotations

import datetime

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from delivery.models import Message
from delivery.outbox import message_content
from healthmail.accounts.roles import Role
from healthmail.errors import ApplicationError, Conflict, PermissionRefused
from healthmail.tenants.context import tenant_context
from incidents import access_denials, access_requests
from incidents.access_denials import FeeInput
from incidents.models import AccessDenial, AccessFee, AccessRequest
from tests.delivery.patient_mail import patient_sender
from tests.factories import MembershipFactory

from .helpers import officer, patients

pytestmark = pytest.mark.django_db
OFFICER = Role.COMPLIANCE_OFFICER
BASIS = "The notes you asked for are psychotherapy notes kept apart from your record."


@pytest.fixture
def setting(tenant_a):
    patient_sender(tenant_a)
    (patient,) = patients(tenant_a, 1, label="deny")
    user = officer(tenant_a)
    request = access_requests.access_request_record(
        tenant=tenant_a, user=user, role=OFFICER, contact_id=patient.pk, received_on=timezone.localdate()
    )
    clinicians = [MembershipFactory(tenant=tenant_a, role=Role.CLINICAL_REVIEWER).user for _ in range(2)]
    return tenant_a, user, request, clinicians


def _deny(setting, ground="a2i", **extra):
    tenant, user, request, _ = setting
    values = {"basis": BASIS, "complaint_contact": "Privacy Officer", "complaint_phone": "1-800-555-0100"}
    return access_denials.denial_record(
        tenant=tenant, user=user, role=OFFICER, request=request, ground=ground, **(values | extra)
    )


def _letter(tenant, denial) -> str:
    with tenant_context(tenant):
        return message_content(Message.objects.get(pk=denial.message_id)).text


def test_an_unreviewable_denial_sends_the_written_denial_without_review_rights(setting):
    """(a)(2)(i) and (d)(2)(i), (iii): the basis and how to complain; no review is offered."""
    tenant = setting[0]
    denial = _deny(setting)
    text = _letter(tenant, denial)
    assert BASIS in text
    assert "Privacy Officer at 1-800-555-0100" in text  # (d)(2)(iii): name or title and telephone
    assert "Secretary of Health and Human Services" in text
    assert "right to a review" not in text
    with tenant_context(tenant):
        assert AccessRequest.objects.get(pk=denial.request_id).status == AccessRequest.Status.DENIED
    with pytest.raises(Conflict, match="unreviewable"):
        access_denials.denial_review_request(tenant=tenant, user=setting[1], role=OFFICER, denial=denial)
    with tenant_context(tenant):
        denied = AccessRequest.objects.get(pk=denial.request_id)
    with pytest.raises(Conflict, match="denied"):
        access_requests.access_request_deliver(tenant=tenant, user=setting[1], role=OFFICER, request=denied)


@pytest.mark.parametrize("ground", ["a3i", "a3ii", "a3iii"])
def test_a_reviewable_ground_needs_a_licensed_professionals_determination(setting, ground):
    """(a)(3)(i)-(iii): "a licensed health care professional has determined"; (d)(2)(ii) review rights."""
    tenant, user, _, clinicians = setting
    with pytest.raises(ApplicationError, match="licensed health care professional"):
        _deny(setting, ground=ground, determined_by_id=user.pk, determined_license="MD-1")  # an officer
    with pytest.raises(ApplicationError, match="license"):
        _deny(setting, ground=ground, determined_by_id=clinicians[0].pk)
    denial = _deny(
        setting, ground=ground, determined_by_id=clinicians[0].pk, determined_license="TX-MD-12345"
    )
    assert "right to a review" in _letter(tenant, denial)


def test_the_review_is_by_a_professional_who_took_no_part_and_its_decision_is_followed(setting):
    """(a)(4), (d)(4): designated reviewing official, not involved; provide or deny as determined."""
    tenant, user, request, (determiner, reviewer) = setting
    denial = _deny(setting, ground="a3i", determined_by_id=determiner.pk, determined_license="TX-MD-1")
    decide = {"outcome": "granted", "license": "TX-MD-2", "reason": "Access would not endanger anyone now."}
    with pytest.raises(Conflict, match="No review"):
        access_denials.denial_review_decide(
            tenant=tenant, user=reviewer, role=Role.CLINICAL_REVIEWER, denial=denial, **decide
        )
    access_denials.denial_review_request(tenant=tenant, user=user, role=OFFICER, denial=denial)
    with pytest.raises(PermissionRefused, match="not have taken part"):
        access_denials.denial_review_decide(
            tenant=tenant, user=determiner, role=Role.CLINICAL_REVIEWER, denial=denial, **decide
        )
    with pytest.raises(PermissionRefused):
        access_denials.denial_review_decide(tenant=tenant, user=user, role=OFFICER, denial=denial, **decide)
    access_denials.denial_review_decide(
        tenant=tenant, user=reviewer, role=Role.CLINICAL_REVIEWER, denial=denial, **decide
    )
    with tenant_context(tenant):
        assert AccessRequest.objects.get(pk=request.pk).status == AccessRequest.Status.OPEN
        letters = Message.objects.filter(tenant=tenant, source_type="access_denial").count()
    assert letters == 2  # the denial, then the written determination
    with pytest.raises(Conflict):
        access_denials.denial_review_decide(
            tenant=tenant, user=reviewer, role=Role.CLINICAL_REVIEWER, denial=denial, **decide
        )


def test_a_denial_in_part_still_lets_the_rest_be_delivered(setting):
    """(d)(1): access to the other information requested, the denied part excluded."""
    tenant, user, request, _ = setting
    denial = _deny(setting, in_part=True)
    assert "You will receive the rest" in _letter(tenant, denial)
    with tenant_context(tenant):
        request.refresh_from_db()
    assert request.status == AccessRequest.Status.OPEN
    delivered = access_requests.access_request_deliver(
        tenant=tenant, user=user, role=OFFICER, request=request
    )
    assert delivered.status == AccessRequest.Status.DELIVERED


def test_the_extension_logic_is_kept():
    received = datetime.date(2026, 12, 20)
    assert access_requests.due_on(received, extended=False) == datetime.date(2027, 1, 19)
    assert access_requests.due_on(received, extended=True) == datetime.date(2027, 2, 18)
    assert access_requests.extension_allowed(received, datetime.date(2027, 1, 19), extended=False)
    assert not access_requests.extension_allowed(received, datetime.date(2027, 1, 20), extended=False)


@pytest.mark.parametrize(
    ("fee", "problem"),
    [
        (FeeInput("portal", supplies_cents=500), "paper copy or portable media"),  # (c)(4)(ii)
        (FeeInput("paper", postage_cents=300), "mailed"),  # (c)(4)(iii)
        (FeeInput("portal", summary_cents=1000), "agreed"),  # (c)(4)(iv)
        (FeeInput("fax"), "form of the copy"),
        (FeeInput("paper", labor_cents=-1), "negative"),
    ],
)
def test_a_fee_outside_what_c4_allows_is_refused(setting, fee, problem):
    tenant, user, request, _ = setting
    with pytest.raises(ApplicationError, match=problem):
        access_denials.fee_record(tenant=tenant, user=user, role=OFFICER, request=request, fee=fee)


def test_a_cost_based_fee_is_recorded_with_its_parts_and_no_search_or_retrieval(setting):
    """(c)(4)(i)-(iii): labor for copying, supplies, postage; searching and retrieving are no part."""
    tenant, user, request, _ = setting
    fee = FeeInput("paper", mailed=True, labor_cents=1250, supplies_cents=300, postage_cents=180)
    recorded = access_denials.fee_record(tenant=tenant, user=user, role=OFFICER, request=request, fee=fee)
    assert recorded.total_cents == 1730
    with pytest.raises(TypeError):
        FeeInput("paper", search_cents=500)  # type: ignore[call-arg]
    with pytest.raises(Conflict):
        access_denials.fee_record(tenant=tenant, user=user, role=OFFICER, request=request, fee=fee)
    with tenant_context(tenant), pytest.raises(IntegrityError), transaction.atomic():
        AccessFee.objects.filter(pk=recorded.pk).update(postage_cents=999)  # the total must add up


def test_the_database_holds_the_denial_rules(setting):
    tenant, user, request, _ = setting
    with tenant_context(tenant), pytest.raises(IntegrityError), transaction.atomic():
        AccessDenial.objects.create(
            tenant=tenant, request=request, ground="a3i", basis=BASIS, complaint_contact="x",
            complaint_phone="1", denied_by=user,
        )  # fmt: skip


def test_the_pages_deny_and_a_clinical_reviewer_reviews(setting, client):
    from django.urls import reverse

    from tests.conftest import sign_in

    tenant, officer_user, request, (determiner, reviewer) = setting
    sign_in(client, officer_user, tenant=tenant)
    prefix = f"deny-{request.pk}"
    response = client.post(
        reverse("incidents:access_request_deny", args=[request.pk]),
        {
            f"{prefix}-ground": "a3ii",
            f"{prefix}-basis": "The record refers to a relative who could be harmed.",
            f"{prefix}-complaint_contact": "Privacy Office",
            f"{prefix}-complaint_phone": "1-800-555-0100",
            f"{prefix}-determined_by_id": str(determiner.pk),
            f"{prefix}-determined_license": "TX-MD-7",
        },
    )
    assert response.status_code == 302
    page = client.get(reverse("incidents:access_requests")).content.decode()
    assert "Denied" in page
    client.post(reverse("incidents:denial_review_request", args=[request.pk]))
    assert client.get(reverse("incidents:denial_reviews")).status_code == 403  # officers do not review
    sign_in(client, reviewer, tenant=tenant)
    waiting = client.get(reverse("incidents:denial_reviews"))
    assert "The record refers to a relative" in waiting.content.decode()
    review = f"review-{request.pk}"
    client.post(
        reverse("incidents:denial_review_decide", args=[request.pk]),
        {
            f"{review}-outcome": "upheld",
            f"{review}-license": "TX-MD-8",
            f"{review}-reason": "The risk of harm is real.",
        },
    )
    with tenant_context(tenant):
        assert AccessDenial.objects.get(request=request).review_outcome == "upheld"
