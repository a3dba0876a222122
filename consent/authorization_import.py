"""Bulk back-fill of authorizations signed elsewhere, from CSV rows (manage.py import_authorizations).

Every row goes through the one record service (consent.authorization_records) with the same
validation as the API; a refused row is reported with every reason and the others are still
recorded (each row is its own transaction).

Columns: contact_id or email; kind (marketing, research); text_id, or the document's words in the
columns of AUTHORIZATION_TEXT_ELEMENTS (+ remuneration_involved, remuneration_statement); signer_name;
signed_on (YYYY-MM-DD); by_representative (yes/no); representative_authority; expires_on or
expiry_event; initiated_by; combined_with and conditioned_on (separated by ";"); source (paper,
electronic, ehr); external_reference (the row's id in the source system: importing it again returns
the first record).
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from contacts.models import Contact
from contacts.selectors import contact_with_email
from healthmail.actors import Actor
from healthmail.errors import ApplicationError
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from . import authorization_records as records
from .authorization_records import AuthorizationDefective
from .models import AUTHORIZATION_TEXT_ELEMENTS, AuthorizationText, FormSource, Initiator, Source
from .services import Evidence

_TRUE = {"yes", "y", "true", "1", "x"}


@dataclass(frozen=True)
class RowOutcome:
    line: int  # the CSV line (the header is line 1)
    recorded: bool
    authorization_id: uuid.UUID | None = None
    duplicate: bool = False
    reasons: tuple[str, ...] = ()  # "code: sentence (paragraph)" for each reason a row was refused


class RowRefused(ApplicationError):
    pass


def _date(value: str, column: str) -> datetime.date | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise RowRefused(f"{column} is not a date (YYYY-MM-DD).", code=f"{column}_invalid") from None


def _set(value: str) -> frozenset[str]:
    return frozenset(part.strip() for part in (value or "").split(";") if part.strip())


def _contact(tenant: Tenant, row: dict) -> Contact:
    found = None
    if (row.get("contact_id") or "").strip():
        try:
            found = Contact.objects.for_tenant(tenant).filter(pk=uuid.UUID(row["contact_id"].strip())).first()
        except ValueError:
            found = None
    elif (row.get("email") or "").strip():
        found = contact_with_email(tenant=tenant, email=row["email"].strip())
    if found is None or found.deleted_at is not None:
        raise RowRefused("No such contact in this organization.", code="contact_not_found")
    return found


def _text(tenant: Tenant, row: dict) -> AuthorizationText:
    kind = (row.get("kind") or "marketing").strip()
    if (row.get("text_id") or "").strip():
        try:
            text_id = uuid.UUID(row["text_id"].strip())
        except ValueError:
            raise RowRefused("No such document of this kind.", code="text_not_found") from None
        text = AuthorizationText.objects.for_tenant(tenant).filter(pk=text_id, kind=kind).first()
        if text is None:
            raise RowRefused("No such document of this kind.", code="text_not_found")
        return text
    elements = {key: row.get(key, "") for key in AUTHORIZATION_TEXT_ELEMENTS}
    elements["remuneration_involved"] = (row.get("remuneration_involved") or "").strip().lower() in _TRUE
    elements["remuneration_statement"] = row.get("remuneration_statement", "")
    return records.authorization_text_from_elements(
        tenant=tenant, kind=kind, title=row.get("title", ""), elements=elements
    )


def _record(tenant: Tenant, actor: Actor, row: dict) -> tuple:
    source = (row.get("source") or FormSource.PAPER).strip()
    if source not in FormSource.values:
        raise RowRefused("source must be paper, electronic or ehr.", code="source_invalid")
    initiated_by = (row.get("initiated_by") or Initiator.COVERED_ENTITY).strip()
    if initiated_by not in Initiator.values:
        raise RowRefused("initiated_by must be individual or covered_entity.", code="initiated_by_invalid")
    reference = (row.get("external_reference") or "").strip() or uuid.uuid4().hex
    return records.authorization_record(
        tenant=tenant,
        contact=_contact(tenant, row),
        text=_text(tenant, row),
        signature=records.Signature(
            signer_name=row.get("signer_name", ""),
            signed_on=_date(row.get("signed_on", ""), "signed_on"),
            by_representative=(row.get("by_representative") or "").strip().lower() in _TRUE,
            representative_authority=row.get("representative_authority", ""),
        ),
        circumstances=records.Circumstances(
            initiated_by=initiated_by,
            combined_with=_set(row.get("combined_with", "")),
            conditioned_on=_set(row.get("conditioned_on", "")),
            form_source=source,
            expires_on=_date(row.get("expires_on", ""), "expires_on"),
            expiry_event=row.get("expiry_event", ""),
        ),
        evidence=Evidence(source=Source.IMPORT, actor=actor),
        submission_key=f"import:{reference}"[:64],
    )


def authorization_import_rows(*, tenant: Tenant, actor: Actor, rows: Iterable[dict]) -> list[RowOutcome]:
    """Record each row; one outcome per row, naming every reason a refused row was refused."""
    outcomes = []
    with tenant_context(tenant):
        for line, row in enumerate(rows, start=2):
            try:
                authorization, created = _record(tenant, actor, row)
            except AuthorizationDefective as refused:
                reasons = tuple(f"{d.code}: {d.message} ({d.paragraph})" for d in refused.defects)
                outcomes.append(RowOutcome(line, False, reasons=reasons))
            except ApplicationError as refused:
                outcomes.append(RowOutcome(line, False, reasons=(f"{refused.code}: {refused.message}",)))
            else:
                outcomes.append(RowOutcome(line, True, authorization.pk, duplicate=not created))
    return outcomes
