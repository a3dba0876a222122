"""manage.py import_authorizations: back-fill from CSV, every refused row named with every reason."""

from __future__ import annotations

import csv
import datetime
import io

import pytest
from django.core.management import CommandError, call_command

from consent.authorization_records import tenant_today
from consent.models import AUTHORIZATION_TEXT_ELEMENTS, Authorization
from healthmail.tenants.context import tenant_context
from tests.api.conftest import audit_events

from .conftest import COMPLETE_ELEMENTS, new_contact

pytestmark = pytest.mark.django_db

COLUMNS = [
    "contact_id", "email", "kind", "signer_name", "signed_on", "expires_on", "expiry_event", "source",
    "combined_with", "conditioned_on", "external_reference", *AUTHORIZATION_TEXT_ELEMENTS,
]  # fmt: skip


def _row(**values) -> dict:
    base = {key: COMPLETE_ELEMENTS[key] for key in AUTHORIZATION_TEXT_ELEMENTS}
    return {"kind": "marketing", "signer_name": "Pat Example", "source": "paper", **base, **values}


def _write(tmp_path, rows) -> str:
    path = tmp_path / "authorizations.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def test_the_report_names_every_refused_row_and_why(tmp_path, tenant_a, tenant_b):
    today = tenant_today(tenant_a)
    last_month, later = str(today - datetime.timedelta(days=31)), str(today + datetime.timedelta(days=200))
    contact = new_contact(tenant_a, email="back.fill@example.org")
    foreign = new_contact(tenant_b)
    rows = [
        _row(contact_id=str(contact.pk), signed_on=last_month, expires_on=later, external_reference="f-1"),
        _row(email="back.fill@example.org", signed_on=last_month, expires_on=later, external_reference="f-1"),
        _row(
            contact_id=str(contact.pk),
            signed_on=last_month,
            expires_on=later,
            recipients="",
            combined_with="treatment_consent",
            conditioned_on="treatment",
        ),
        _row(contact_id=str(foreign.pk), signed_on=last_month, expires_on=later),
        _row(contact_id=str(contact.pk), signed_on="last month", expires_on=later),
        _row(contact_id=str(contact.pk), signed_on=last_month),
    ]
    out = io.StringIO()
    with pytest.raises(CommandError, match="4 rows were refused"):
        call_command("import_authorizations", _write(tmp_path, rows), tenant=tenant_a.slug, stdout=out)
    report = out.getvalue()
    assert "line 2" not in report
    assert "line 3" not in report  # the same form again: the first record, not a refusal
    assert "line 4: refused\n  - missing_recipients:" in report
    assert "  - compound_authorization: " in report
    assert "  - conditioning_prohibited: " in report
    assert "(45 CFR 164.508(b)(4))" in report
    assert "line 5: refused\n  - contact_not_found:" in report  # another tenant's contact
    assert "line 6: refused\n  - signed_on_invalid:" in report
    assert "line 7: refused\n  - missing_expiration:" in report
    assert report.strip().endswith("1 recorded, 1 already recorded before, 4 refused, 6 rows.")
    with tenant_context(tenant_a):
        [recorded] = Authorization.objects.all()
    assert recorded.signed_on == today - datetime.timedelta(days=31)
    assert recorded.source == "import"
    assert len(audit_events(tenant=tenant_a, action="authorization.record")) == 1
    with tenant_context(tenant_b):
        assert not Authorization.objects.exists()


def test_a_clean_file_succeeds(tmp_path, tenant_a):
    today = tenant_today(tenant_a)
    contact = new_contact(tenant_a)
    rows = [_row(contact_id=str(contact.pk), signed_on=str(today), expiry_event="Leaving the plan")]
    out = io.StringIO()
    call_command("import_authorizations", _write(tmp_path, rows), tenant=tenant_a.slug, stdout=out)
    assert out.getvalue().strip() == "1 recorded, 0 already recorded before, 0 refused, 1 rows."


def test_an_unknown_tenant_is_refused(tmp_path):
    with pytest.raises(CommandError, match="No tenant"):
        call_command("import_authorizations", _write(tmp_path, []), tenant="nobody")
