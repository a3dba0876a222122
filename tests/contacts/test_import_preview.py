"""The mapping step shows the first rows as the mapping reads them, masked, before anything is
written; a file with only a header says it has no data rows (and offers no Start button); an empty
file is refused at upload, saying so. The preview is an audited read of the upload."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from audit.models import AuditEvent
from contacts.imports.preview import PREVIEW_ROWS
from contacts.models import Contact
from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context
from tests.contacts.import_helpers import import_file

pytestmark = pytest.mark.django_db

HEADER = "Email,First name,DOB,State,Notes\n"


def _rows(count: int) -> str:
    return "".join(
        f"person{i}.preview@example.org,Name{i},1980-02-0{1 + i % 9},TX,private note {i}\n"
        for i in range(count)
    )


def _map_page(client, content: str) -> str:
    upload = SimpleUploadedFile("people.csv", content.encode(), content_type="text/csv")
    response = client.post(reverse("contact_imports:upload"), {"file": upload})
    assert response.status_code == 302, response.content.decode()[:2000]
    return client.get(response["Location"]).content.decode()


def test_first_rows_are_shown_masked_with_the_mapping(member_client, tenant_a):
    page = _map_page(member_client(Role.MARKETER), HEADER + _rows(8))
    preview = page[page.index('data-testid="import-preview"') :]
    preview = preview[: preview.index("</table>")]
    assert "Email (column 1)" in preview
    assert "State (column 4)" in preview
    assert "Notes" not in preview  # not mapped: not imported, not shown
    assert preview.count("<tr>") == 1 + PREVIEW_ROWS  # the header row and the first five
    assert "p***@example.org" in preview  # masked as the contact list masks
    assert "person0.preview" not in page
    assert "Name0" not in page
    assert "1980-02-01" not in page
    assert "<td>•••</td>" in preview  # the state of an address is part of it: hidden like the rest
    assert "private note" not in page
    assert "Start import" in page
    with tenant_context(tenant_a):
        assert not Contact.objects.exists()  # nothing written by the preview
        read = AuditEvent.objects.filter(action="phi.read", details__purpose="import preview").get()
    assert read.target_type == "contacts.importjob"


def test_changing_the_mapping_changes_the_preview(member_client, tenant_a):
    client = member_client(Role.TENANT_ADMIN)
    upload = SimpleUploadedFile("people.csv", (HEADER + _rows(2)).encode(), content_type="text/csv")
    location = client.post(reverse("contact_imports:upload"), {"file": upload})["Location"]
    partial = client.post(
        location, {"preview": "1", "column_0": "", "column_3": "postal_address.state"}, HTTP_HX_REQUEST="true"
    )
    body = partial.content.decode()
    assert "State (column 4)" in body
    assert "Email (column 1)" not in body


@pytest.mark.parametrize("content", [HEADER, HEADER + "\n\n", "Email\n", "Email;Name\r\n"])
def test_a_header_only_file_says_it_has_no_data_rows(member_client, tenant_a, content):
    page = _map_page(member_client(Role.MARKETER), content)
    assert "This file has no data rows." in page
    assert "Start import" not in page


def test_an_empty_file_is_refused_saying_so(member_client, tenant_a):
    client = member_client(Role.MARKETER)
    upload = SimpleUploadedFile("empty.csv", b"", content_type="text/csv")
    response = client.post(reverse("contact_imports:upload"), {"file": upload})
    assert response.status_code == 400
    assert "The file is empty: it has no header row and no data rows." in response.content.decode()


def test_a_row_that_will_be_rejected_is_marked_in_the_preview(member_client, tenant_a):
    page = _map_page(member_client(Role.MARKETER), HEADER + "a@example.org,A,1980-01-01,TX,x,extra\n")
    assert "Will be rejected" in page


def test_totals_add_up_for_the_previewed_file(tenant_a):
    """What the preview shows is what the import reads: created + updated + unchanged + rejected = rows."""
    content = HEADER + _rows(4) + "bad-email,X,1980-01-01,TX,n\n"
    first = import_file(
        tenant_a, content, mapping={0: "email", 1: "first_name", 2: "birth_date", 3: "postal_address.state"}
    )
    again = import_file(
        tenant_a,
        HEADER + _rows(2) + "person2.preview@example.org,Changed,1980-02-03,TX,n\n",
        mapping={0: "email", 1: "first_name", 2: "birth_date", 3: "postal_address.state"},
    )
    for job, rows in ((first, 5), (again, 3)):
        assert job.total_rows == rows
        assert job.created_count + job.updated_count + job.unchanged_count + job.error_count == rows
        assert job.accepted_count == 0  # told apart: created, updated or unchanged
    assert (first.created_count, first.error_count) == (4, 1)
    assert (again.unchanged_count, again.updated_count) == (2, 1)
