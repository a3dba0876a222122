"""The import wizard over HTTP: permissions, 404 for foreign jobs, sealed upload, mapping, double submit."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse

from contacts.models import ImportJob, ImportUploadChunk
from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context
from tests.contacts.import_helpers import contacts, run, upload

pytestmark = pytest.mark.django_db

CSV = b"Email,First name,Last name,DOB,Notes\nada.canary@example.org,Ada,Synthetic,1980-02-03,private\n"


def csv_file(content: bytes = CSV, name: str = "patients.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/csv")


def without_tokens(body: bytes) -> bytes:
    """The page minus its per-render CSRF token, which differs on every response."""
    return re.sub(rb"[A-Za-z0-9]{64}", b"TOKEN", body)


def jobs(tenant) -> list[ImportJob]:
    with tenant_context(tenant):
        return list(ImportJob.objects.all())


@pytest.mark.parametrize("role", [Role.MARKETER, Role.TENANT_ADMIN])
def test_marketer_and_admin_upload_and_map(member_client, tenant_a, role):
    client = member_client(role)
    response = client.post(reverse("contact_imports:upload"), {"file": csv_file()})

    (job,) = jobs(tenant_a)
    assert response.status_code == 302
    assert response["Location"] == reverse("contact_imports:job_map", args=[job.pk])
    with tenant_context(tenant_a):
        sealed = b"".join(bytes(d) for d in ImportUploadChunk.objects.values_list("data", flat=True))
    assert b"ada.canary" not in sealed  # sealed as it streamed in

    page = client.get(response["Location"]).content.decode()
    assert 'value="email" selected' in page  # suggested from the header
    assert "Direct identifier" in page
    assert "Date tied to a person" in page
    assert "Ignored: not imported" in page  # the Notes column


@pytest.mark.parametrize("role", [Role.COMPLIANCE_OFFICER, Role.CLINICAL_REVIEWER])
def test_other_roles_cannot_import(member_client, tenant_a, role):
    client = member_client(role)
    assert client.get(reverse("contact_imports:upload")).status_code == 403
    assert client.post(reverse("contact_imports:upload"), {"file": csv_file()}).status_code == 403
    assert jobs(tenant_a) == []


def test_a_rejected_file_shows_why_and_stores_nothing(member_client, tenant_a):
    client = member_client(Role.MARKETER)
    response = client.post(reverse("contact_imports:upload"), {"file": csv_file(b"Email,email\nx,y\n")})
    assert response.status_code == 400
    assert "repeats column names" in response.content.decode()
    assert jobs(tenant_a) == []
    with tenant_context(tenant_a):
        assert not ImportUploadChunk.objects.exists()


@override_settings(CONTACT_IMPORT_MAX_BYTES=1024)
def test_a_file_over_the_size_limit_is_refused(member_client, tenant_a):
    client = member_client(Role.MARKETER)
    big = CSV + b"".join(b"p%d@example.org,P,Q,1980-01-01,n\n" % i for i in range(100))
    response = client.post(reverse("contact_imports:upload"), {"file": csv_file(big)})
    assert response.status_code == 400
    assert "larger than the limit" in response.content.decode()
    assert jobs(tenant_a) == []


def test_confirming_twice_starts_one_job(member_client, tenant_a, django_capture_on_commit_callbacks):
    client = member_client(Role.MARKETER)
    job = upload(tenant_a, CSV)
    data = {"column_0": "email", "column_1": "first_name", "column_3": "birth_date"}
    url = reverse("contact_imports:job_map", args=[job.pk])
    with django_capture_on_commit_callbacks() as callbacks:
        first = client.post(url, data)
        second = client.post(url, data)
    assert first.status_code == second.status_code == 302
    # The task wake-ups (the first use of a key adds healthmail.crypto.keys' own commit hook).
    assert len([hook for hook in callbacks if "enqueue" in hook.__qualname__]) == 1
    with tenant_context(tenant_a):
        job.refresh_from_db()
    assert job.status == ImportJob.Status.QUEUED
    assert job.mapping == {
        "0": "email",
        "1": "first_name",
        "3": "birth_date",
    }


def test_mapping_errors_are_shown(member_client, tenant_a):
    client = member_client(Role.MARKETER)
    job = upload(tenant_a, CSV)
    response = client.post(
        reverse("contact_imports:job_map", args=[job.pk]), {"column_0": "email", "column_1": "email"}
    )
    assert response.status_code == 400
    assert "Each field can be filled from one column only: Email." in response.content.decode()


def test_the_phi_preview_answers_with_the_rows_only(member_client, tenant_a):
    client = member_client(Role.MARKETER)
    job = upload(tenant_a, CSV)
    response = client.post(
        reverse("contact_imports:job_map", args=[job.pk]),
        {"column_4": "clinical.conditions", "preview": "1"},
        headers={"HX-Request": "true"},
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<table id="mapping-rows">')
    assert "Clinical information" in body


def test_job_page_progress_and_error_report(member_client, tenant_a):
    client = member_client(Role.MARKETER)
    job = upload(tenant_a, CSV + b"=bad,Bob,S,2023-02-30,x\n")
    client.post(
        reverse("contact_imports:job_map", args=[job.pk]), {"column_0": "email", "column_3": "birth_date"}
    )
    run(job)

    page = client.get(reverse("contact_imports:job_detail", args=[job.pk])).content.decode()
    assert "Finished" in page
    assert 'data-testid="created">1<' in page
    assert "hx-trigger" not in page  # no more polling once finished
    partial = client.get(reverse("contact_imports:job_detail", args=[job.pk]), headers={"HX-Request": "true"})
    assert partial.content.decode().lstrip().startswith('<section id="job-progress"')

    response = client.get(reverse("contact_imports:error_report", args=[job.pk]))
    report = b"".join(response.streaming_content).decode()
    assert response["Content-Type"].startswith("text/csv")
    assert response["Cache-Control"] == "no-store"
    assert report.splitlines() == [
        "row,column,message",
        "3,Email (column 1),Email is not a valid email address",
        "3,Date of birth (column 4),Date of birth is not a real calendar date",
    ]
    assert "=bad" not in report
    assert "Bob" not in report
    assert len(contacts(tenant_a)) == 1


def test_running_job_page_polls(member_client, tenant_a):
    client = member_client(Role.MARKETER)
    job = upload(tenant_a, CSV)
    client.post(reverse("contact_imports:job_map", args=[job.pk]), {"column_0": "email"})
    page = client.get(reverse("contact_imports:job_detail", args=[job.pk])).content.decode()
    assert 'hx-trigger="every 2s"' in page
    assert "Queued" in page


@pytest.mark.parametrize("name", ["job_detail", "job_map", "error_report"])
def test_a_foreign_tenants_job_is_not_found(member_client, tenant_a, tenant_b, name):
    foreign = upload(tenant_a, CSV)
    client = member_client(Role.MARKETER, tenant=tenant_b)
    foreign_response = client.get(reverse(f"contact_imports:{name}", args=[foreign.pk]))
    missing_response = client.get(
        reverse(f"contact_imports:{name}", args=["00000000-0000-4000-8000-000000000000"])
    )
    assert foreign_response.status_code == missing_response.status_code == 404
    assert without_tokens(foreign_response.content) == without_tokens(missing_response.content)


def test_job_list_shows_only_own_tenant(member_client, tenant_a, tenant_b):
    upload(tenant_a, CSV, name="clinic-a-list.csv")
    upload(tenant_b, CSV, name="clinic-b-list.csv")
    page = (
        member_client(Role.MARKETER, tenant=tenant_b)
        .get(reverse("contact_imports:job_list"))
        .content.decode()
    )
    assert "clinic-b-list.csv" in page
    assert "clinic-a-list.csv" not in page


def test_the_upload_still_checks_csrf(tenant_a):
    from django.test import Client

    from healthmail.accounts.models import Membership
    from tests.conftest import sign_in
    from tests.factories import MembershipFactory

    membership: Membership = MembershipFactory(tenant=tenant_a, role=Role.MARKETER)
    client = sign_in(Client(enforce_csrf_checks=True), membership.user, tenant=tenant_a)
    response = client.post(reverse("contact_imports:upload"), {"file": csv_file()})
    assert response.status_code == 403
    assert jobs(tenant_a) == []
    with tenant_context(tenant_a):
        assert not ImportUploadChunk.objects.exists()
