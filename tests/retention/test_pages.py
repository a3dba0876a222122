"""Retention pages: who may see them, the flows behind the forms, 404 for foreign ids."""

import datetime
import io
import zipfile

import pytest
from django.urls import reverse
from django.utils import timezone

from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context
from retention import disposal, holds, packages
from retention.models import DisposalRun, HoldCustodian, LegalHold, RetentionPolicy
from tests.factories import MembershipFactory

from .helpers import YEAR, new_contact, new_messages, officer

pytestmark = pytest.mark.django_db
PAGES = [
    "dashboard",
    "policy_list",
    "hold_list",
    "hold_create",
    "run_list",
    "exception_list",
    "archive_search",
    "export_list",
]


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    started = []
    monkeypatch.setattr(disposal, "enqueue", lambda task, *, tenant, **ids: started.append(ids["run_id"]))
    return started


@pytest.fixture
def compliance(member_client):
    return member_client(Role.COMPLIANCE_OFFICER)


@pytest.mark.parametrize("page", PAGES)
def test_compliance_officers_see_every_page(compliance, page):
    assert compliance.get(reverse(f"retention:{page}")).status_code == 200


@pytest.mark.parametrize("role", [Role.TENANT_ADMIN, Role.MARKETER, Role.CLINICAL_REVIEWER])
@pytest.mark.parametrize("page", ["dashboard", "hold_list", "run_list", "export_list"])
def test_other_roles_are_refused(member_client, role, page):
    assert member_client(role).get(reverse(f"retention:{page}")).status_code == 403


def test_policy_page_refuses_max_below_min_and_records_a_version(compliance, tenant_a):
    url = reverse("retention:policy_detail", args=["tracking_events"])
    form = {
        "min_retention_days": 400,
        "max_retention_days": 300,
        "action": "destroy",
        "rationale": "r",
        "reason": "shorter",
        "legal_basis": "Internal | Campaign reporting needs it | |",
    }
    response = compliance.post(url, form)
    assert "shorter than the minimum" in response.content.decode()
    response = compliance.post(url, {**form, "max_retention_days": 500}, follow=True)
    assert "waits for a second compliance officer" in response.content.decode()
    with tenant_context(tenant_a):
        version = RetentionPolicy.objects.get(category="tracking_events", version=2)
    assert version.legal_basis[0]["citation"] == "Internal"
    assert version.status == "pending"
    page = compliance.get(url).content.decode()
    assert "v2" in page
    assert "Approve v2" in page


def test_hold_created_from_the_page_notifies_and_shows_on_the_contact(compliance, tenant_a, member_client):
    patient = new_contact(tenant_a)
    custodian = MembershipFactory(tenant=tenant_a, role=Role.MARKETER).user
    response = compliance.post(
        reverse("retention:hold_create"),
        {
            "matter": "Doe v. Clinic",
            "reason": "Complaint served",
            "counsel": "Firm LLP",
            "contact_ids": str(patient.pk),
            "custodians": [str(custodian.pk)],
            "review_every_days": 30,
        },
        follow=True,
    )
    assert "Legal hold placed" in response.content.decode()
    with tenant_context(tenant_a):
        hold = LegalHold.objects.get()
        assert HoldCustodian.objects.get(hold=hold).user == custodian
    detail = compliance.get(reverse("contacts:contact_detail", args=[patient.pk])).content.decode()
    assert "Legal hold" in detail
    assert "Doe v. Clinic" in detail

    from tests.conftest import sign_in

    sign_in(compliance, custodian, tenant=tenant_a)  # the custodian, a marketer, acknowledges in the app
    notices = compliance.get(reverse("retention:my_holds")).content.decode()
    assert "Doe v. Clinic" in notices
    compliance.post(reverse("retention:hold_acknowledge", args=[hold.pk]))
    with tenant_context(tenant_a):
        assert HoldCustodian.objects.get(hold=hold).acknowledged_at is not None
    assert compliance.get(reverse("retention:hold_detail", args=[hold.pk])).status_code == 403


def test_foreign_and_unknown_ids_answer_404(compliance, tenant_b):
    other = officer(tenant_b)
    hold = holds.hold_create(
        tenant=tenant_b,
        actor=other,
        matter="M",
        reason="R",
        counsel="C",
        scope=holds.HoldScope(categories=("contacts",)),
    )
    new_messages(tenant_b, 1, age=8 * YEAR)
    (run,) = disposal.disposal_plan(tenant=tenant_b, actor=other)
    for name, args in [
        ("hold_detail", [hold.pk]),
        ("run_detail", [run.pk]),
        ("certificate_pdf", [run.pk]),
        ("export_download", [run.pk]),
    ]:
        assert compliance.get(reverse(f"retention:{name}", args=args)).status_code == 404
    for name, args in [
        ("hold_release", [hold.pk]),
        ("hold_release_confirm", [hold.pk]),
        ("run_approve", [run.pk]),
    ]:
        assert compliance.post(reverse(f"retention:{name}", args=args), {"reason": "x"}).status_code == 404
    with tenant_context(tenant_b):
        assert DisposalRun.objects.get(pk=run.pk).status == "awaiting_approval"
        assert LegalHold.objects.get(pk=hold.pk).status == "active"


def test_plan_preview_approve_and_download_the_certificate(compliance, tenant_a, no_broker):
    new_messages(tenant_a, 3, age=8 * YEAR)
    response = compliance.post(reverse("retention:run_plan"), follow=True)
    page = response.content.decode()
    assert "Approve destruction" in page
    assert "Lab result" not in page
    assert "A1C" not in page
    with tenant_context(tenant_a):
        run = DisposalRun.objects.get(requires_approval=True)
    # The compliance user planned it and is the only officer: sole-officer approval, with a reason.
    compliance.post(reverse("retention:run_approve", args=[run.pk]))
    assert no_broker == []
    compliance.post(reverse("retention:run_approve", args=[run.pk]), {"sole_officer_reason": "Sole officer"})
    assert no_broker == [str(run.pk)]
    disposal.disposal_run_execute(tenant_id=tenant_a.pk, run_id=run.pk)  # what the worker does
    progress = compliance.get(reverse("retention:run_detail", args=[run.pk]), HTTP_HX_REQUEST="true")
    assert 'data-testid="run-status">Completed' in progress.content.decode()
    pdf = compliance.get(reverse("retention:certificate_pdf", args=[run.pk]))
    assert pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    package = compliance.get(reverse("retention:certificate_package", args=[run.pk]))
    assert packages.verify(package.content)[0] == []
    assert zipfile.ZipFile(io.BytesIO(package.content)).read("destroyed-records.txt").count(b"\n") == 3
    verified = compliance.post(reverse("retention:certificate_verify", args=[run.pk]), follow=True)
    assert "The certificate verifies" in verified.content.decode()


def test_exception_request_and_decision_pages(compliance, tenant_a):
    (message,) = new_messages(tenant_a, 1, age=8 * YEAR)
    compliance.post(
        reverse("retention:exception_list"),
        {
            "category": "message_metadata",
            "record_ids": str(message.pk),
            "reason": "Audit by payer",
            "extend_until": (timezone.localdate() + datetime.timedelta(days=30)).isoformat(),
        },
    )
    from retention.models import RetentionException

    with tenant_context(tenant_a):
        exception = RetentionException.objects.get()
    assert exception.status == "requested"
    assert exception.record_ids == [str(message.pk)]
    # The requester is the tenant's only compliance officer: they may decide it, saying why alone.
    url = reverse("retention:exception_decide", args=[exception.pk])
    refused = compliance.post(url, {"decision": "approve"}, follow=True).content.decode()
    assert "say why no second person can" in refused
    response = compliance.post(
        url, {"decision": "approve", "sole_officer_reason": "Only officer"}, follow=True
    )
    assert "Exception approved" in response.content.decode()
    with tenant_context(tenant_a):
        exception.refresh_from_db()
    assert (exception.status, exception.sole_officer_reason) == ("approved", "Only officer")


def test_archive_search_and_export_pages(compliance, tenant_a):
    patient = new_contact(tenant_a)
    new_messages(tenant_a, 1, age=YEAR, contact=patient)
    refused = compliance.post(reverse("retention:archive_search"), {"contact_id": str(patient.pk)})
    assert "This field is required" in refused.content.decode()
    found = compliance.post(
        reverse("retention:archive_search"), {"contact_id": str(patient.pk), "reason": "Audit"}
    )
    assert found.content.decode().count("message_metadata") >= 1
    compliance.post(
        reverse("retention:export_list"),
        {"purpose": "OCR audit", "recipient": "HHS OCR", "contact_ids": str(patient.pk)},
    )
    from retention.models import EvidenceExport

    with tenant_context(tenant_a):
        export = EvidenceExport.objects.get()
    download = compliance.get(reverse("retention:export_download", args=[export.pk]))
    assert download["Content-Type"] == "application/zip"
    assert packages.verify(download.content)[0] == []


def test_a_hold_release_is_asked_for_then_confirmed_by_another_officer(client, compliance, tenant_a):
    from tests.conftest import sign_in

    asker = compliance.membership.user
    hold = holds.hold_create(
        tenant=tenant_a,
        actor=officer(tenant_a),
        matter="M",
        reason="R",
        counsel="C",
        scope=holds.HoldScope(categories=("contacts",)),
    )
    page = compliance.post(
        reverse("retention:hold_release", args=[hold.pk]), {"reason": "Settled"}, follow=True
    )
    assert "Release asked for" in page.content.decode()
    refused = compliance.post(reverse("retention:hold_release_confirm", args=[hold.pk]), follow=True)
    assert "Another compliance officer must approve this hold release" in refused.content.decode()
    with tenant_context(tenant_a):
        assert LegalHold.objects.get(pk=hold.pk).status == "active"
    marketer = MembershipFactory(tenant=tenant_a, role=Role.MARKETER).user
    sign_in(client, marketer, tenant=tenant_a)
    assert client.post(reverse("retention:hold_release_confirm", args=[hold.pk])).status_code == 403
    second = MembershipFactory(tenant=tenant_a, role=Role.COMPLIANCE_OFFICER).user
    sign_in(client, second, tenant=tenant_a)
    done = client.post(
        reverse("retention:hold_release_confirm", args=[hold.pk]), follow=True
    ).content.decode()
    assert "Hold released" in done
    with tenant_context(tenant_a):
        released = LegalHold.objects.get(pk=hold.pk)
    assert (released.status, released.release_requested_by, released.released_by) == (
        "released",
        asker,
        second,
    )
