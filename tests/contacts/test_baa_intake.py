"""The BAA gate on every intake of patient data (issue 25, point 6): the contacts API (one and bulk),
the import upload (service and page) and an import already running refuse contact data for a tenant
without a BAA in force, with a clear error, and store nothing."""

from __future__ import annotations

import datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from contacts.models import Contact, ImportJob
from contacts.services import ContactInput, contact_upsert_many
from healthmail.accounts.roles import Role
from healthmail.errors import PhiFlowRefused
from healthmail.tenants.context import tenant_context
from tests.api.conftest import assert_problem
from tests.factories import BaaFactory, TenantFactory

from . import import_helpers
from .conftest import SYSTEM

pytestmark = pytest.mark.django_db
CLINICAL = {"email": "intake.patient@example.org", "clinical": {"conditions": ["E11.9"]}}
CSV = "email,first_name\nintake.one@example.org,Synthetic\n"


@pytest.fixture
def unbound(db):
    """A tenant that never recorded a BAA."""
    return TenantFactory(slug="no-baa", name="Clinic Without BAA")


@pytest.fixture
def expired(db):
    tenant = TenantFactory(slug="expired-baa", name="Clinic With Expired BAA")
    today = timezone.localdate()
    BaaFactory(
        tenant=tenant,
        signed_on=today - datetime.timedelta(days=400),
        effective_on=today - datetime.timedelta(days=400),
        expires_on=today - datetime.timedelta(days=1),
    )
    return tenant


def _stored(tenant) -> int:
    with tenant_context(tenant):
        return Contact.objects.count()


@pytest.mark.parametrize("tenant_name", ["unbound", "expired"])
def test_the_api_refuses_contacts_without_a_baa_in_force(request, tenant_name, api, issue_key):
    tenant = request.getfixturevalue(tenant_name)
    client = api(issue_key(scopes=["contacts:write"], tenant=tenant))
    one = client.post("/api/v1/contacts", CLINICAL)
    body = assert_problem(one, 403, "baa_required")
    assert "No Business Associate Agreement is in force" in body["detail"]
    bulk = client.post("/api/v1/contacts/bulk", {"contacts": [CLINICAL, {"email": "b@example.org"}]})
    assert_problem(bulk, 403, "baa_required")
    assert _stored(tenant) == 0


def test_with_a_baa_in_force_the_same_contact_is_accepted(tenant_a, api, issue_key):
    answer = api(issue_key(scopes=["contacts:write", "contacts:phi"])).post("/api/v1/contacts", CLINICAL)
    assert answer.status_code == 201, answer.content
    assert _stored(tenant_a) == 1


def test_the_service_refuses_every_writer_alike(unbound):
    with pytest.raises(PhiFlowRefused, match="No Business Associate Agreement"):
        contact_upsert_many(
            tenant=unbound, actor=SYSTEM, inputs=[ContactInput(email="x@example.org")], source="test"
        )
    assert _stored(unbound) == 0


def test_an_import_upload_is_refused_before_anything_is_stored(unbound):
    with pytest.raises(PhiFlowRefused):
        import_helpers.upload(unbound, CSV)
    with tenant_context(unbound):
        assert ImportJob.objects.count() == 0


def test_the_import_page_says_why_and_keeps_nothing(unbound, member_client):
    client = member_client(Role.TENANT_ADMIN, tenant=unbound)
    page = client.post("/contacts/imports/new/", {"file": SimpleUploadedFile("patients.csv", CSV.encode())})
    assert page.status_code == 400
    assert "No Business Associate Agreement is in force" in page.content.decode()
    with tenant_context(unbound):
        assert ImportJob.objects.count() == 0


def test_an_import_started_before_the_baa_ended_fails_with_the_reason(db):
    tenant = TenantFactory(slug="ending-baa", name="Clinic Whose BAA Ends")
    baa = BaaFactory(tenant=tenant)
    job = import_helpers.start(tenant, import_helpers.upload(tenant, CSV))
    with tenant_context(tenant):
        type(baa).objects.filter(pk=baa.pk).update(terminated_on=timezone.localdate())
    finished = import_helpers.run(job)
    assert finished.status == ImportJob.Status.FAILED
    assert "No Business Associate Agreement is in force" in finished.failure_reason
    assert _stored(tenant) == 0
