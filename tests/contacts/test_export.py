"""Contact export: masked by default, identifying only for a role that may export PHI, every cell
safe to open in a spreadsheet (OWASP CSV injection), streamed page by page, each page an audited PHI
read, and one `contacts.export` event with the rows the database returned."""

from __future__ import annotations

import csv
import io

import pytest
from django.http import StreamingHttpResponse

from audit.models import AuditEvent
from contacts import exports
from contacts.models import Contact
from contacts.services import ContactInput, contact_upsert_many
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from segmentation.services import segment_create
from tests.privacy.test_csv_injection import HARMLESS, PAYLOADS

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("tests")


def _people(tenant, names: list[str]) -> list:
    inputs = [
        ContactInput(
            email=f"export.{i}@example.org", first_name=name, last_name="Synthetic", phone="555-010-2000"
        )
        for i, name in enumerate(names)
    ]
    return [
        r.contact_id for r in contact_upsert_many(tenant=tenant, actor=ACTOR, inputs=inputs, source="test")
    ]


def _download(response) -> list[list[str]]:
    assert isinstance(response, StreamingHttpResponse)
    assert response["Cache-Control"].startswith("no-store") or "no-store" in response["Cache-Control"]
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


def _export_events(tenant) -> list[AuditEvent]:
    with tenant_context(tenant):
        return list(AuditEvent.objects.filter(action="contacts.export").order_by("id"))


def test_marketer_gets_masked_fields_only(member_client, tenant_a):
    _people(tenant_a, ["Dana", "Eli"])
    rows = _download(member_client(Role.MARKETER).get("/contacts/export/"))
    assert rows[0] == [label for _, label in exports.MASKED_COLUMNS]
    body = "\n".join(",".join(row) for row in rows)
    assert "export.0@example.org" not in body
    assert "e***@example.org" in body  # the hint the masked list shows
    assert "Dana" not in body
    assert "555-010-2000" not in body
    assert len(rows) == 3


@pytest.mark.parametrize(
    ("role", "status"),
    [
        (Role.TENANT_ADMIN, 403),
        (Role.MARKETER, 403),
        (Role.CLINICAL_REVIEWER, 403),
        (Role.COMPLIANCE_OFFICER, 200),
    ],
)
def test_identifying_fields_need_the_export_permission(member_client, tenant_a, role, status):
    _people(tenant_a, ["Dana"])
    response = member_client(role).get("/contacts/export/", {"identifying": "1"})
    assert response.status_code == status
    if status == 200:
        rows = _download(response)
        assert rows[0] == [label for _, label in exports.IDENTIFYING_COLUMNS]
        assert rows[1][1] == "export.0@example.org"
    else:
        assert not _export_events(tenant_a)


def test_formula_payloads_come_out_as_text(member_client, tenant_a):
    _people(tenant_a, PAYLOADS + HARMLESS)
    rows = _download(member_client(Role.COMPLIANCE_OFFICER).get("/contacts/export/", {"identifying": "1"}))
    first_names = {row[2] for row in rows[1:]}
    with tenant_context(tenant_a):
        stored = {contact.first_name for contact in Contact.objects.all()}  # as the import normalized them
    # Exported with the quote that makes a spreadsheet show it as text; harmless names unchanged.
    assert first_names == {"'" + name for name in stored - set(HARMLESS)} | set(HARMLESS)
    for row in rows[1:]:
        for cell in row:
            assert not cell.lstrip(" \t\r\n\u00a0").startswith(("=", "+", "-", "@", "|", "%")), cell


def test_streamed_in_pages_each_audited_and_the_count_is_what_the_database_returned(
    member_client, tenant_a, monkeypatch
):
    monkeypatch.setattr(exports, "EXPORT_PAGE", 3)
    ids = _people(tenant_a, [f"Person{i}" for i in range(8)])
    with tenant_context(tenant_a):
        Contact.objects.filter(pk=ids[0]).update(deleted_at="2026-01-01T00:00:00Z")  # erased: not exported
        reads_before = AuditEvent.objects.filter(action="phi.read").count()
    rows = _download(member_client(Role.MARKETER).get("/contacts/export/"))
    exported = [row[0] for row in rows[1:]]
    assert sorted(exported) == sorted(str(pk) for pk in ids[1:])
    assert len(set(exported)) == 7
    with tenant_context(tenant_a):
        reads = AuditEvent.objects.filter(action="phi.read").count() - reads_before
    assert reads == 3  # pages of 3, 3 and 1
    (event,) = _export_events(tenant_a)
    assert event.details == {"rows": 7, "identifying": False, "finished": True, "source": "all contacts"}


def test_a_download_stopped_halfway_is_recorded_as_unfinished(tenant_a, monkeypatch):
    monkeypatch.setattr(exports, "EXPORT_PAGE", 2)
    _people(tenant_a, [f"Person{i}" for i in range(5)])
    lines = exports.contact_export_lines(tenant=tenant_a, actor=ACTOR, identifying=False)
    next(lines), next(lines)  # the header and the first row
    lines.close()
    (event,) = _export_events(tenant_a)
    assert event.details["rows"] == 2
    assert event.details["finished"] is False


def test_segment_export_by_role_and_foreign_tenant(member_client, tenant_a, tenant_b):
    _people(tenant_a, ["Dana", "Eli"])
    plain = segment_create(tenant=tenant_a, actor=ACTOR, name="Everyone", definition={"all": []})
    clinical = segment_create(
        tenant=tenant_a,
        actor=ACTOR,
        name="Hypertension",
        definition={"all": [{"field": "condition", "op": "in", "value": ["I10"]}]},
    )
    foreign = segment_create(tenant=tenant_b, actor=ACTOR, name="Theirs", definition={"all": []})
    marketer = member_client(Role.MARKETER)
    rows = _download(marketer.get(f"/segments/{plain.pk}/export/"))
    assert len(rows) == 3
    assert marketer.get(f"/segments/{clinical.pk}/export/").status_code == 403  # membership is PHI
    assert marketer.get(f"/segments/{foreign.pk}/export/").status_code == 404
    officer = member_client(Role.COMPLIANCE_OFFICER)
    assert officer.get(f"/segments/{foreign.pk}/export/").status_code == 404
    assert len(_download(officer.get(f"/segments/{clinical.pk}/export/", {"identifying": "1"}))) == 1
    events = _export_events(tenant_a)
    assert [e.details["rows"] for e in events] == [2, 0]
    assert events[0].details["source"] == f"segment {plain.pk}"
