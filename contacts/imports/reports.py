"""The per-row error report: row number, column, message. Never a cell's value (that is PHI).

A column is named by the field it was mapped to and its position, never by the file's header (a
file without a header row puts a patient's values there). Every cell is made spreadsheet-safe.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator

from django.db.models import Q

from contacts.models import ImportJob, ImportRowError
from healthmail.spreadsheet import spreadsheet_safe
from healthmail.tenants.context import tenant_context

from .mapping import Target, targets_for

REPORT_PAGE = 2000


class _Echo:
    def write(self, value: str) -> str:
        return value


def column_label(job: ImportJob, index: int | None, targets: dict[str, Target]) -> str:
    """ "Email (column 2)": the field the column was mapped to, and where it is in the file."""
    if index is None:
        return ""
    target = targets.get((job.mapping or {}).get(str(index), ""))
    return f"{target.label} (column {index + 1})" if target else f"Column {index + 1}"


def error_rows(job: ImportJob, *, after: tuple[int, int] = (0, 0), limit: int = REPORT_PAGE) -> list[tuple]:
    """(row number, id, column label, message), ordered; call inside the job's tenant context."""
    targets = targets_for(tenant=job.tenant_id)
    page = (
        ImportRowError.objects.filter(tenant_id=job.tenant_id, job_id=job.pk)
        .filter(Q(row_number__gt=after[0]) | Q(row_number=after[0], id__gt=after[1]))
        .order_by("row_number", "id")
        .values_list("row_number", "id", "column_index", "message")[:limit]
    )
    return [(row, id_, column_label(job, index, targets), message) for row, id_, index, message in page]


def error_report_lines(job: ImportJob) -> Iterator[str]:
    """CSV lines, fetched a page at a time so a report of a million errors never sits in memory.

    A streamed response is read after the request's transaction has ended, so each page opens the
    job's tenant context itself."""
    writer = csv.writer(_Echo())
    yield writer.writerow(["row", "column", "message"])
    after = (0, 0)
    while True:
        with tenant_context(job.tenant_id):
            page = error_rows(job, after=after)
        for row_number, _id, column, message in page:
            yield writer.writerow([row_number, spreadsheet_safe(column), spreadsheet_safe(message)])
        if len(page) < REPORT_PAGE:
            return
        after = (page[-1][0], page[-1][1])
