"""A marketer imports a CSV through the wizard and then sees the contacts, masked."""

import pytest
from playwright.sync_api import expect

from contacts.imports import services
from contacts.models import ImportJob
from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context
from tests.contacts.import_helpers import run

from .conftest import browser_sign_in, screenshot

pytestmark = pytest.mark.browser

CSV = (
    "Email,Given name,Surname,Date of birth,State,Notes\n"
    "jane.doe.e2e@example.org,Jane,Doe,1980-02-03,CA,not imported\n"
    "john.roe.e2e@example.org,John,Roe,1975-06-07,TX,not imported\n"
    "broken-address,Bad,Row,1990-01-01,ZZ,not imported\n"
)


def test_marketer_imports_a_csv_and_sees_masked_contacts(page, make_person, tmp_path, monkeypatch):
    queued = []
    monkeypatch.setattr(services, "enqueue", lambda task, *, tenant, **ids: queued.append(ids["job_id"]))
    marketer = make_person(Role.MARKETER)
    path = tmp_path / "patients.csv"
    path.write_text(CSV, encoding="utf-8")

    browser_sign_in(page, marketer)
    page.get_by_role("link", name="Imports").click()
    page.get_by_role("link", name="Import a file").click()
    page.get_by_label("CSV or Excel file").set_input_files(str(path))
    page.get_by_role("button", name="Upload").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Map columns")
    expect(page.get_by_label("Email")).to_have_value("email")  # suggested from the header
    expect(page.get_by_label("Notes")).to_have_value("")  # ignored
    page.get_by_label("Given name").select_option("first_name")
    page.get_by_label("Surname").select_option("last_name")
    # The table re-renders with each column's PHI class (htmx).
    row = page.get_by_role("row", name="Surname")
    expect(row).to_contain_text("Direct identifier")
    # The preview shows the first rows as the mapping reads them, masked; nothing imported yet.
    preview = page.get_by_test_id("import-preview")
    expect(preview.get_by_role("columnheader", name="Last name (column 3)")).to_be_visible()
    expect(preview.get_by_role("row")).to_have_count(4)  # the header and the three data rows
    expect(preview).to_contain_text("j***@example.org")
    expect(preview).not_to_contain_text("jane.doe.e2e")
    expect(preview).not_to_contain_text("not imported")  # the Notes column is not mapped
    screenshot(page, "import-mapping")
    page.get_by_role("button", name="Start import").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("patients.csv")
    expect(page.get_by_text("Queued")).to_be_visible()
    assert len(queued) == 1
    with tenant_context(marketer.tenant):
        job = ImportJob.objects.get(pk=queued[0])
    run(job)  # what the marketing worker does with the queued task

    expect(page.get_by_text("Finished")).to_be_visible(timeout=10_000)  # the page polls
    # A marketer cannot read PHI: told how many rows were imported, not which were new.
    expect(page.get_by_test_id("accepted")).to_have_text("2")
    expect(page.get_by_test_id("created")).to_have_count(0)
    expect(page.get_by_test_id("errors")).to_have_text("1")
    expect(page.get_by_role("link", name="Download the error report")).to_be_visible()
    screenshot(page, "import-finished")

    page.get_by_role("link", name="See the contacts").click()
    table = page.get_by_role("table")
    expect(table).to_contain_text("J*** D***")
    expect(table).to_contain_text("j***@example.org")
    expect(table).not_to_contain_text("jane.doe.e2e")
    expect(table).not_to_contain_text("Jane")


def test_a_file_with_only_a_header_says_it_has_no_data_rows(page, make_person, tmp_path):
    marketer = make_person(Role.MARKETER)
    path = tmp_path / "header-only.csv"
    path.write_text("Email,Given name,Surname\n\n", encoding="utf-8")
    browser_sign_in(page, marketer)
    page.goto("/contacts/imports/new/")
    page.get_by_label("CSV or Excel file").set_input_files(str(path))
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_test_id("no-data-rows")).to_contain_text("This file has no data rows.")
    expect(page.get_by_role("button", name="Start import")).to_have_count(0)
    screenshot(page, "import-no-data-rows")
