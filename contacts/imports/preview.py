"""The mapping step's preview: the file's first data rows as the chosen mapping reads them, masked,
before anything is written — or a plain "no data rows" when there are none.

The rows come from the sealed upload, so showing even their masked hints is a PHI read of the
upload (`phi_access`, purpose "import preview"), as a masked contact list is."""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from audit.phi import phi_access
from contacts.models import ImportJob
from contacts.selectors import contact_with_email
from healthmail.actors import Actor
from healthmail.crypto.masking import HIDDEN, mask

from . import parsing
from .mapping import Target
from .storage import SealedFile

PREVIEW_ROWS = 5
_MASK_KINDS = {"email": "email", "first_name": "name", "last_name": "name", "phone": "phone"}


@dataclass(frozen=True)
class PreviewRow:
    number: int  # the spreadsheet row number (the header is row 1)
    cells: list[str]
    error: str


@dataclass(frozen=True)
class Preview:
    columns: list[str]  # "Email (column 2)" for each mapped column, in file order
    rows: list[PreviewRow]

    @property
    def has_data(self) -> bool:
        return bool(self.rows)


def import_preview(
    *, job: ImportJob, actor: Actor, mapping: dict[int, str], targets: dict[str, Target]
) -> Preview:
    mapped = [(index, targets[key]) for index, key in sorted(mapping.items()) if key in targets]
    columns = [f"{target.label} (column {index + 1})" for index, target in mapped]
    fields = sorted({target.key for _, target in mapped}) or ["file"]
    rows_with_data = (row for row in _rows(job) if row.values or row.error)  # blank lines are not rows
    parsed = list(itertools.islice(rows_with_data, PREVIEW_ROWS))
    # A previewed row of a person already on file is a read of that person: their audit search shows it.
    emails = [
        row.values[index]
        for row in parsed
        for index, key in mapping.items()
        if key == "email" and index < len(row.values)
    ]
    known = [contact_with_email(tenant=job.tenant, email=email) for email in emails if "@" in email]
    with phi_access(
        actor=actor,
        tenant=job.tenant_id,
        objects=[job],
        fields=fields,
        purpose="import preview",
        contact_ids=[contact.pk for contact in known if contact is not None],
    ):
        rows = [
            PreviewRow(
                row.number,
                [_masked(row.values[i] if i < len(row.values) else "", target) for i, target in mapped],
                row.error,
            )
            for row in parsed
        ]
    return Preview(columns, rows)


def _rows(job: ImportJob) -> Iterator[parsing.ParsedRow]:
    raw = SealedFile(job)
    if job.file_format == ImportJob.Format.XLSX:
        return parsing.xlsx_rows(raw, width=job.column_count)
    return parsing.csv_rows(raw, delimiter=job.delimiter, width=job.column_count)


def _masked(value: str, target: Target) -> str:
    """As a masked contact page shows it: hints for identity, an age band for a birth date, nothing
    of any other PHI; fields that are not PHI (state, journey stage, tags) as they are."""
    value = value.strip()
    if not value:
        return ""
    if target.key in _MASK_KINDS:
        return mask(value, _MASK_KINDS[target.key])
    if target.key == "birth_date":
        try:
            return mask(datetime.date.fromisoformat(value), "birth_date")
        except ValueError:
            return HIDDEN
    return mask(value, "", target.phi_class) if target.phi_class else value
