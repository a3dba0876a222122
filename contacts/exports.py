"""Contact export: a CSV of contacts as the reader may see them, streamed page by page.

Masked by default (hints, an age band); identifying fields only for a role allowed to export PHI
who asks for them. Each page is an audited PHI read (`contact_records`); when the stream ends, one
`contacts.export` event records how many rows the database returned and whether the download
finished. Every cell goes through `spreadsheet_safe` (OWASP CSV injection)."""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterator, Sequence

from audit import services as audit
from healthmail.actors import Actor
from healthmail.spreadsheet import spreadsheet_safe
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from .models import Contact
from .selectors import ReadScope, contact_records

EXPORT_PAGE = 500
MASKED_COLUMNS = (
    ("id", "Contact id"),
    ("email", "Email (masked)"),
    ("name", "Name (masked)"),
    ("phone", "Phone (masked)"),
    ("birth_date", "Age band"),
    ("state", "State"),
    ("journey_stage_label", "Journey stage"),
    ("is_minor", "Minor"),
    ("created_at", "Added"),
)
IDENTIFYING_COLUMNS = (
    ("id", "Contact id"),
    ("email", "Email"),
    ("first_name", "First name"),
    ("last_name", "Last name"),
    ("phone", "Phone"),
    ("birth_date", "Birth date"),
    ("state", "State"),
    ("journey_stage_label", "Journey stage"),
    ("is_minor", "Minor"),
    ("created_at", "Added"),
)


class _Echo:
    def write(self, value: str) -> str:
        return value


def contact_export_lines(
    *,
    tenant: Tenant,
    actor: Actor,
    identifying: bool,
    contact_ids: Sequence[uuid.UUID] | None = None,
    source: str = "all contacts",
) -> Iterator[str]:
    """CSV lines for every live contact (or those of `contact_ids`, e.g. a segment's members)."""
    columns = IDENTIFYING_COLUMNS if identifying else MASKED_COLUMNS
    scope = ReadScope(unmasked=identifying, clinical=False, purpose="contact export")
    writer = csv.writer(_Echo())
    rows = 0
    finished = False
    try:
        yield writer.writerow([label for _, label in columns])
        for page in _pages(tenant, contact_ids):
            rows += len(page)
            with tenant_context(tenant):
                records = contact_records(actor=actor, tenant=tenant, contacts=page, scope=scope)
            for record in records:
                yield writer.writerow([spreadsheet_safe(_cell(record.get(key))) for key, _ in columns])
        finished = True
    finally:
        with tenant_context(tenant):
            audit.record(
                actor=actor,
                action="contacts.export",
                tenant=tenant,
                details={"rows": rows, "identifying": identifying, "finished": finished, "source": source},
            )


def _pages(tenant: Tenant, contact_ids: Sequence[uuid.UUID] | None) -> Iterator[list[Contact]]:
    """Live contacts in id order, a page at a time (keyset: no page is read twice or skipped);
    with `contact_ids`, those ids a page at a time."""
    live = Contact.objects.filter(tenant=tenant, deleted_at__isnull=True).order_by("pk")
    if contact_ids is not None:
        ordered = sorted(contact_ids)
        for start in range(0, len(ordered), EXPORT_PAGE):
            with tenant_context(tenant):
                page = list(live.filter(pk__in=ordered[start : start + EXPORT_PAGE]))
            if page:
                yield page
        return
    after: uuid.UUID | None = None
    while True:
        with tenant_context(tenant):
            page = list((live if after is None else live.filter(pk__gt=after))[:EXPORT_PAGE])
        if page:
            yield page
        if len(page) < EXPORT_PAGE:
            return
        after = page[-1].pk


def _cell(value: object) -> object:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return ""
    return value
