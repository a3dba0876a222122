"""The audit export's CSV is safe to open in a spreadsheet (the shared neutraliser,
healthmail/spreadsheet.py) and still verifies offline: every quoted cell is read back exactly."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
from django.urls import reverse

from audit import services as audit
from audit.exports import verify_export
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from tests.privacy.test_csv_injection import PAYLOADS

pytestmark = pytest.mark.django_db
# What a spreadsheet would run as a formula, after the spaces and controls some of them skip.
_RUNS = ("=", "+", "-", "@", "|", "%", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def _runs_as_formula(cell: str) -> bool:
    return cell.startswith(("\t", "\r", "\n")) or cell.lstrip(" \t\r\n\u00a0").startswith(_RUNS)


def test_formula_payloads_are_quoted_and_the_export_still_verifies(
    member_client, settings, tmp_path, tenant_a
):
    settings.AUDIT_CHECKPOINT_DIR = str(tmp_path / "checkpoints")
    officer = member_client(Role.COMPLIANCE_OFFICER)
    for payload in PAYLOADS:
        # Fields an attacker can reach: a reason typed in a form, a caller's reference, details.
        audit.record(
            actor=Actor("api_key", payload[:64]),
            action="contacts.export",
            tenant=tenant_a,
            target=("contacts.contact", payload),
            reason=payload,
            details={"summary": payload},
        )
    response = officer.post(reverse("audit:event_export"), {"format": "csv"})
    content = b"".join(response.streaming_content) if response.streaming else response.content
    data = zipfile.ZipFile(io.BytesIO(content)).read("events.csv").decode()
    cells = [cell for row in csv.reader(io.StringIO(data)) for cell in row]
    dangerous = [cell for cell in cells if _runs_as_formula(cell)]
    assert not dangerous, dangerous[:5]
    for payload in PAYLOADS:
        assert "'" + payload in cells, payload  # quoted, not altered otherwise
    assert verify_export(content) == []  # the quotes are undone exactly when the chain is recomputed
