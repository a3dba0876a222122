"""Bad input: every malformed file or row is reported, never imported silently or half-way."""

from __future__ import annotations

import io

import openpyxl
import pytest

from contacts.imports import services
from contacts.imports.parsing import FileRejected
from contacts.imports.reports import error_report_lines
from contacts.imports.storage import job_headers
from contacts.models import ImportJob
from healthmail.tenants.context import tenant_context
from tests.contacts.import_helpers import contacts, import_file, row_errors, run, start, upload

pytestmark = pytest.mark.django_db


def report(job) -> str:
    return "".join(error_report_lines(job))


def test_a_file_that_is_not_utf8_is_refused_at_upload(tenant_a):
    latin1 = "Email,First name\nrene@example.org,Ren\xe9\n".encode("latin-1")
    with pytest.raises(FileRejected, match=r"not UTF-8 text \(byte 38, line 2\).*CSV UTF-8"):
        upload(tenant_a, latin1)


def test_utf16_is_refused_not_guessed(tenant_a):
    with pytest.raises(FileRejected, match="UTF-16"):
        upload(tenant_a, "Email\nx@example.org\n".encode("utf-16"))


def test_a_bad_byte_deep_in_the_file_fails_the_job_before_anything_is_written(tenant_a):
    rows = "".join(f"p{i}@example.org,Synthetic\n" for i in range(3000))  # well past the sniffed head
    content = b"Email,First name\n" + rows.encode() + b"late@example.org,Ren\xe9\n"
    job = import_file(tenant_a, content)

    assert job.status == ImportJob.Status.FAILED
    assert "not UTF-8" in job.failure_reason
    assert "line 3002" in job.failure_reason
    assert contacts(tenant_a) == []  # not one row of the 3,000 good ones: no partial import


def test_utf8_with_byte_order_mark_imports(tenant_a):
    job = import_file(tenant_a, "\ufeffEmail,First name\nzoe@example.org,Zoë\n".encode())
    assert (job.status, job.created_count) == (ImportJob.Status.SUCCEEDED, 1)


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_other_delimiters_are_detected(tenant_a, delimiter):
    content = delimiter.join(["Email", "First name", "State"]) + "\n"
    content += delimiter.join(["ada@example.org", "Ada", "CA"]) + "\n"
    job = upload(tenant_a, content)
    with tenant_context(tenant_a):
        assert (job.delimiter, job_headers(job)) == (delimiter, ["Email", "First name", "State"])


def test_an_undetectable_delimiter_is_a_clear_error(tenant_a):
    with pytest.raises(FileRejected, match="Only one column was found"):
        upload(tenant_a, "email:first:last\nada@example.org:Ada:Synthetic\n")


def test_a_single_mappable_column_is_fine(tenant_a):
    job = import_file(tenant_a, "Email\nada@example.org\n")
    assert job.created_count == 1


def test_duplicate_headers_are_named(tenant_a):
    with pytest.raises(FileRejected, match=r"repeats column names: “Email”, “Phone”\."):
        upload(tenant_a, "Email,Phone,email,phone,Phone\nx@example.org,1,2,3,4\n")


def test_a_10_megabyte_field_is_a_row_error_not_a_crash(tenant_a):
    huge = "x" * (10 * 1024 * 1024)
    content = f"Email,First name\nbefore@example.org,Ada\nhuge@example.org,{huge}\nafter@example.org,Bob\n"
    job = import_file(tenant_a, content)

    assert job.status == ImportJob.Status.SUCCEEDED
    assert (job.created_count, job.error_count) == (2, 1)
    ((row, _column, message),) = row_errors(job)
    assert row == 3
    assert "longer than 131,072 characters" in message


def test_rows_wider_than_the_header_are_errors(tenant_a):
    job = import_file(tenant_a, "Email,First name\na@example.org,Ada,extra\nb@example.org,Bob,,\n")
    assert row_errors(job) == [(2, "", "This row has 3 columns; the header has 2.")]
    assert job.created_count == 1  # trailing empty cells are not extra columns


def test_formula_cells_are_stored_as_text_and_neutralized_in_the_report(tenant_a):
    formula = "=cmd|' /C calc'!A0"
    content = f'=Email,First name\n"{formula}",Mallory\nok@example.org,"{formula}"\n'
    job = import_file(tenant_a, content, mapping={0: "email", 1: "first_name"})

    (contact,) = contacts(tenant_a)
    with tenant_context(tenant_a):
        assert contact.first_name == formula  # kept exactly, as text
    lines = report(job).splitlines()
    assert lines[1].startswith("2,Email (column 1),")  # named by its field: "=Email" came from the file
    assert formula not in report(job)


def test_invalid_email_impossible_date_and_unknown_state_are_per_row_errors(tenant_a):
    content = (
        "Email,Date of birth,State,First name\n"
        "not-an-email,1980-01-01,CA,Canary1\n"
        "ok1@example.org,2023-02-30,CA,Canary2\n"
        "ok2@example.org,1980-01-01,XX,Canary3\n"
        "ok3@example.org,1980-01-01,ca,Fine\n"
    )
    job = import_file(
        tenant_a, content, mapping={0: "email", 1: "birth_date", 2: "postal_address.state", 3: "first_name"}
    )

    assert row_errors(job) == [
        (2, "Email (column 1)", "Email is not a valid email address"),
        (3, "Date of birth (column 2)", "Date of birth is not a real calendar date"),
        (4, "State (column 3)", "State is not a US state or territory code (e.g. CA)"),
    ]
    assert (job.created_count, job.error_count, job.status) == (1, 3, ImportJob.Status.SUCCEEDED)


def test_the_error_report_never_contains_cell_values(tenant_a):
    canaries = ["canary-email-7731", "1899-13-45", "QQ", "canary-name-5521"]
    content = f"Email,DOB,State,Name\n{canaries[0]},{canaries[1]},{canaries[2]},{canaries[3]}\n"
    job = import_file(
        tenant_a, content, mapping={0: "email", 1: "birth_date", 2: "postal_address.state", 3: "first_name"}
    )

    text = report(job)
    assert text.splitlines()[0] == "row,column,message"
    assert "2,Email (column 1)," in text
    for canary in canaries:
        assert canary not in text


def test_a_row_without_email_or_external_id_is_reported(tenant_a):
    job = import_file(tenant_a, "Email,First name\n,Ada\n")
    assert row_errors(job) == [(2, "", "The row has neither an email nor an external id.")]


def test_blank_lines_are_skipped_and_row_numbers_stay_spreadsheet_rows(tenant_a):
    job = import_file(tenant_a, "Email\n\na@example.org\nbad\n")
    assert row_errors(job) == [(4, "Email (column 1)", "Email is not a valid email address")]


def test_xlsx_with_formula_and_date_cells(tenant_a):
    import datetime

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Email", "First name", "DOB"])
    sheet.append(["ada@example.org", "=1+1", datetime.datetime(1980, 2, 3)])  # noqa: DTZ001
    sheet.append(["bad-address", "Bob", datetime.date(1990, 1, 1)])
    buffer = io.BytesIO()
    workbook.save(buffer)
    job = import_file(tenant_a, buffer.getvalue(), name="list.xlsx")

    assert (job.file_format, job.created_count, job.error_count) == ("xlsx", 1, 1)
    (contact,) = contacts(tenant_a)
    with tenant_context(tenant_a):
        assert (contact.first_name, contact.birth_year) == ("=1+1", 1980)


def test_a_damaged_xlsx_or_old_xls_is_refused(tenant_a):
    with pytest.raises(FileRejected, match="damaged"):
        upload(tenant_a, b"PK\x03\x04not really a zip", name="list.xlsx")
    with pytest.raises(FileRejected, match=r"\.xls"):
        upload(tenant_a, b"\xd0\xcf\x11\xe0rest", name="list.xls")


def test_an_empty_file_is_refused(tenant_a):
    with pytest.raises(FileRejected, match="empty"):
        upload(tenant_a, b"")


def test_resume_after_a_crash_imports_every_row_exactly_once(tenant_a, monkeypatch):
    monkeypatch.setattr(services, "BATCH_SIZE", 10)
    monkeypatch.setitem(services.SLICE_ROWS, ImportJob.Format.CSV, 20)
    content = "Email,First name\n" + "".join(f"p{i}@example.org,P{i}\n" for i in range(55))
    job = start(tenant_a, upload(tenant_a, content))
    real = services.contact_upsert_many
    calls = {"n": 0}

    def crash_on_fourth_batch(**kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("worker killed")
        return real(**kwargs)

    monkeypatch.setattr(services, "contact_upsert_many", crash_on_fourth_batch)
    with tenant_context(tenant_a):
        assert services.import_job_run_slice(job_id=job.pk) is True  # rows 1-20 committed
    with pytest.raises(RuntimeError), tenant_context(tenant_a):
        services.import_job_run_slice(job_id=job.pk)  # rows 21-30 written, then the crash
    with tenant_context(tenant_a):
        job.refresh_from_db()
    assert (job.last_committed_row, job.created_count, job.status) == (20, 20, ImportJob.Status.RUNNING)
    assert len(contacts(tenant_a)) == 20  # the crashed slice rolled back as a whole

    finished = run(job)  # the retried task
    assert finished.status == ImportJob.Status.SUCCEEDED
    assert (finished.last_committed_row, finished.created_count, finished.updated_count) == (55, 55, 0)
    assert len(contacts(tenant_a)) == 55
