"""Import totals always add up: created + updated + unchanged + rejected (+ accepted, for importers
who may not learn which rows were new) = the rows of the file, blank lines not being rows; and a
file with a header but no data rows fails with a message that says so."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contacts.imports import services
from contacts.models import ImportJob
from tests.contacts.import_helpers import import_file

pytestmark = pytest.mark.django_db

HEADER = "Email,First name\n"

# What a row of the generated file is: a new contact, a known contact again (unchanged), a known
# contact with a new first name (updated), a row the import rejects, or a blank line.
ROW_KINDS = st.sampled_from(["new", "same", "changed", "bad_email", "too_many_cells", "blank"])


def _file(kinds: list[str], known: list[str]) -> tuple[str, int]:
    lines, rows = [], 0
    for position, kind in enumerate(kinds):
        if kind == "blank":
            lines.append("")
            continue
        rows += 1
        address = known[position % len(known)]
        if kind == "new":
            lines.append(f"new.{uuid.uuid4().hex[:12]}@example.org,Ada")
        elif kind == "same":
            lines.append(f"{address},Known")
        elif kind == "changed":
            lines.append(f"{address},Renamed{position}")
        elif kind == "bad_email":
            lines.append("not-an-address,Bob")
        else:
            lines.append("x@example.org,Cy,extra,cells")
    return HEADER + "\n".join(lines) + "\n", rows


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(ROW_KINDS, min_size=1, max_size=25), dry_run=st.booleans())
def test_totals_add_up_to_the_rows_of_the_file(tenant_a, kinds, dry_run):
    known = [f"known.{uuid.uuid4().hex[:12]}@example.org" for _ in range(3)]
    import_file(tenant_a, HEADER + "".join(f"{address},Known\n" for address in known))
    content, rows = _file(kinds, known)
    job = import_file(tenant_a, content, dry_run=dry_run)

    if rows == 0:
        assert job.status == ImportJob.Status.FAILED
        assert job.failure_reason == services.NO_DATA_ROWS
        return
    assert job.status == ImportJob.Status.SUCCEEDED
    assert job.total_rows == rows
    totals = (job.created_count, job.updated_count, job.unchanged_count, job.accepted_count, job.error_count)
    assert sum(totals) == rows, totals
    assert job.processed_rows == rows
    assert services.import_job_progress(job) == {"processed": rows, "total": rows, "percent": 100}


@pytest.mark.parametrize("content", [HEADER, HEADER + "\n\n", "Email,First name"])
def test_a_file_without_data_rows_fails_and_says_so(tenant_a, content):
    job = import_file(tenant_a, content)
    assert job.status == ImportJob.Status.FAILED
    assert "no data rows" in job.failure_reason


def test_blank_lines_between_rows_are_not_counted(tenant_a):
    job = import_file(tenant_a, HEADER + "a.synthetic@example.org,Ada\n\n\nb.synthetic@example.org,Bob\n")
    assert (job.total_rows, job.created_count, job.error_count) == (2, 2, 0)
