"""The per-row error report: row number, column, message. Never a cell's value (that is PHI).

Every exported cell is made spreadsheet-safe, including column names, which come from the file.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator

from django.db.models import Q

from contacts.models import ImportJob, ImportRowError
from healthmail.tenants.context import tenant_context

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "|", "%")
REPORT_PAGE = 2000


def spreadsheet_safe(value) -> str:
    """Spreadsheets run a cell starting with = + - @ (and DDE's |) as a formula: quote it."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def error_report_lines(job: ImportJob) -> Iterator[str]:
    """CSV lines, fetched a page at a time so a report of a million errors never sits in memory.

    A streamed response is read after the request's transaction has ended, so each page opens the
    job's tenant context itself."""
    writer = csv.writer(_Echo())
    yield writer.writerow(["row", "column", "message"])
    after = (0, 0)
    while True:
        with tenant_context(job.tenant_id):
            page = list(
                ImportRowError.objects.filter(tenant_id=job.tenant_id, job_id=job.pk)
                .filter(Q(row_number__gt=after[0]) | Q(row_number=after[0], id__gt=after[1]))
                .order_by("row_number", "id")
                .values_list("row_number", "id", "column", "message")[:REPORT_PAGE]
            )
        for row_number, _id, column, message in page:
            yield writer.writerow([row_number, spreadsheet_safe(column), spreadsheet_safe(message)])
        if len(page) < REPORT_PAGE:
            return
        after = (page[-1][0], page[-1][1])
