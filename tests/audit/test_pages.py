"""Compliance officers' audit pages: search, detail, verify, export (+ offline verify), alerts."""

import io
import json
import time
import zipfile

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from audit import alerts, chain
from audit import services as audit
from audit.exports import verify_export
from audit.models import Alert, AuditEvent, ChainVerification
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.sysmail import services
from healthmail.sysmail.models import SystemMail
from healthmail.tenants.context import tenant_context
from tests.factories import MembershipFactory
from tests.sysmail.outbox import deliver_system_mail

pytestmark = pytest.mark.django_db

ROLES_WITHOUT_AUDIT = [Role.TENANT_ADMIN, Role.MARKETER, Role.CLINICAL_REVIEWER]


@pytest.fixture(autouse=True)
def checkpoint_dir(settings, tmp_path):
    settings.AUDIT_CHECKPOINT_DIR = str(tmp_path / "checkpoints")


@pytest.fixture
def officer(member_client):
    return member_client(Role.COMPLIANCE_OFFICER)


def _events(tenant, count=5, action="test.thing"):
    return [
        audit.record(actor=Actor.system("test"), action=action, tenant=tenant, details={"n": n})
        for n in range(count)
    ]


def test_officer_filters_the_trail(officer, tenant_a):
    _events(tenant_a, 3, "contact.view")
    _events(tenant_a, 2, "campaign.approve")
    response = officer.get(reverse("audit:event_list"), {"action": "campaign."})
    assert response.status_code == 200
    page = list(response.context["page"])
    assert {e.action for e in page} == {"campaign.approve"}
    assert len(page) == 2


def test_invalid_date_range_is_explained(officer):
    response = officer.get(reverse("audit:event_list"), {"since": "2026-05-01", "until": "2026-04-01"})
    assert "must not be after" in response.content.decode()


@pytest.mark.parametrize("role", ROLES_WITHOUT_AUDIT)
def test_other_roles_are_refused(member_client, role):
    client = member_client(role)
    assert client.get(reverse("audit:event_list")).status_code == 403
    assert client.get(reverse("audit:alert_list")).status_code == 403


def test_foreign_tenant_event_answers_404(officer, tenant_b):
    foreign = _events(tenant_b, 1)[0]
    assert officer.get(reverse("audit:event_detail", args=[foreign.pk])).status_code == 404


def test_event_detail_shows_chain_link(officer, tenant_a):
    event = _events(tenant_a, 1)[0]
    chain.seal_pending(tenant_a.pk)
    page = officer.get(reverse("audit:event_detail", args=[event.pk])).content.decode()
    with tenant_context(tenant_a):
        assert AuditEvent.objects.get(pk=event.pk).hash in page


def test_verify_now_records_the_result_for_the_banner(officer, tenant_a):
    _events(tenant_a, 3)
    response = officer.post(reverse("audit:chain_verify"), follow=True)
    assert "chain intact" in response.content.decode().lower()
    with tenant_context(tenant_a):
        assert ChainVerification.objects.filter(tenant=tenant_a, ok=True).exists()


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_export_verifies_offline_and_is_itself_audited(officer, tenant_a, tmp_path, fmt):
    _events(tenant_a, 4, "contact.view")
    audit.record(actor=Actor.system("test"), action="=cmd|' /C calc'!A0", tenant=tenant_a)
    response = officer.post(reverse("audit:event_export"), {"format": fmt})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    content = b"".join(response.streaming_content) if response.streaming else response.content
    assert verify_export(content) == []
    archive = zipfile.ZipFile(io.BytesIO(content))
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["row_count"] >= 5
    if fmt == "csv":
        assert "'=cmd" in archive.read("events.csv").decode()  # the formula is neutralized
    path = tmp_path / f"export.{fmt}.zip"
    path.write_bytes(content)
    call_command("audit_verify", "--export", str(path))
    with tenant_context(tenant_a):
        assert AuditEvent.objects.filter(tenant=tenant_a, action="audit.export").exists()


def test_modified_export_is_detected(officer, tenant_a, tmp_path):
    _events(tenant_a, 3)
    content = officer.post(reverse("audit:event_export"), {"format": "json"}).content
    source = zipfile.ZipFile(io.BytesIO(content))
    rows = json.loads(source.read("events.json"))
    rows[1]["action"] = "edited"
    tampered = io.BytesIO()
    with zipfile.ZipFile(tampered, "w") as archive:
        archive.writestr("events.json", json.dumps(rows))
        archive.writestr("manifest.json", source.read("manifest.json"))
    problems = verify_export(tampered.getvalue())
    assert any("SHA-256 differs" in p for p in problems)
    assert any(f"row id {rows[1]['id']}" in p for p in problems)
    path = tmp_path / "tampered.zip"
    path.write_bytes(tampered.getvalue())
    with pytest.raises(CommandError, match="does not verify"):
        call_command("audit_verify", "--export", str(path))


def test_alert_rules_fire_and_officers_are_emailed(
    officer, tenant_a, mailoutbox, django_capture_on_commit_callbacks
):
    for _ in range(10):
        audit.record(actor=Actor("user", "someone"), action="auth.login", outcome="denied", tenant=tenant_a)
    audit.record(
        actor=Actor("api_key", "abc123"), action="api_key.use", tenant=tenant_a, details={"new_network": True}
    )
    audit.record(actor=Actor("user", "u1"), action="contacts.export", tenant=tenant_a, details={"rows": 5000})
    chain.seal_all()
    with django_capture_on_commit_callbacks(execute=True):
        fired = alerts.alerts_scan_tenant(tenant_a)
    assert {a.rule for a in fired} >= {"failed_sign_ins", "api_key_new_network", "mass_export"}
    assert alerts.alerts_scan_tenant(tenant_a) == []  # the stream is read once
    assert deliver_system_mail(tenant_a) == ["sent"]
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == [officer.membership.user.email]
    assert "failed sign-in" in mailoutbox[0].body


def test_officer_acknowledges_an_alert(officer, tenant_a):
    with tenant_context(tenant_a):
        alert = Alert.objects.create(tenant=tenant_a, rule="mass_export", severity="warning", summary="x")
    officer.post(reverse("audit:alert_acknowledge", args=[alert.pk]))
    with tenant_context(tenant_a):
        alert.refresh_from_db()
    assert alert.acknowledged_by_id == officer.membership.user.pk


def _alert_rows(html: str) -> list[str]:
    import re

    return re.findall(r"<tr>(.*?)</tr>", html, re.S)[1:]


def test_alert_page_shows_each_officers_mail_delivery_status(officer, tenant_a, tenant_b, smtp_receiver):
    colleague = MembershipFactory(tenant=tenant_a, role=Role.COMPLIANCE_OFFICER).user
    foreign = MembershipFactory(tenant=tenant_b, role=Role.COMPLIANCE_OFFICER).user
    alert = alerts.alert_chain_broken(tenant_id=tenant_a.pk, problem="seq 3: planted", found_by="test")
    alerts.alert_chain_broken(tenant_id=tenant_b.pk, problem="seq 5: planted", found_by="test")
    me = officer.membership.user

    [row] = _alert_rows(officer.get(reverse("audit:alert_list")).content.decode())
    assert f"{me.email}: <span" in row
    assert row.count("Queued") == 2

    assert deliver_system_mail(tenant_a) == ["retrying", "retrying"]  # the mail server is down
    smtp_receiver.up()
    time.sleep(1.1)  # the first retry's backoff
    with tenant_context(tenant_a):
        mine = SystemMail.objects.get(source_ids__contains=[str(alert.pk)], recipient_user=me)
    assert (
        services.system_mail_send(tenant_id=tenant_a.pk, mail_id=mine.pk) == "sent"
    )  # only my copy got through so far

    html = officer.get(reverse("audit:alert_list")).content.decode()
    [row] = _alert_rows(html)
    mine_line, colleague_line = (
        next(line for line in row.split("<li>") if line.startswith(email))
        for email in (me.email, colleague.email)
    )
    assert "Sent" in mine_line
    assert "Retrying" in colleague_line
    assert "1 attempt, mail server unreachable (ConnectionRefusedError)" in colleague_line
    assert foreign.email not in html  # another tenant's alert mail is not ours to see


def _hidden_inputs(html: str, form_action: str) -> dict[str, str]:
    import re

    form = html.split(f'action="{form_action}"', 1)[1].split("</form>", 1)[0]
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form))


def _exported_rows(response) -> list[dict]:
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    return json.loads(archive.read("events.json")), json.loads(archive.read("manifest.json"))


def test_export_after_an_htmx_filter_holds_exactly_the_rows_shown(officer, tenant_a):
    """The filter swaps the rows by htmx; the export form travels with them, so "Export these
    events" takes the filter shown (the whole trail was exported before)."""
    _events(tenant_a, 7, "contact.view")
    _events(tenant_a, 3, "campaign.approve")
    shown = officer.get(reverse("audit:event_list"), {"action": "campaign."}, HTTP_HX_REQUEST="true")
    html = shown.content.decode()
    assert "Export these events" in html  # part of the swapped partial
    fields = _hidden_inputs(html, reverse("audit:event_export"))
    assert fields["action"] == "campaign."
    _events(tenant_a, 2, "campaign.approve")  # written after the officer looked: not "these"
    rows, manifest = _exported_rows(officer.post(reverse("audit:event_export"), {**fields, "format": "json"}))
    shown_ids = {e.pk for e in shown.context["page"]}
    assert {r["id"] for r in rows} == shown_ids
    assert len(rows) == 3
    assert manifest["filters"]["action"] == "campaign."
    assert manifest["filters"]["through_id"] == fields["through_id"]
    assert manifest["row_count"] == 3


def test_an_unreadable_filter_shows_and_exports_nothing(officer, tenant_a):
    _events(tenant_a, 3)
    response = officer.get(reverse("audit:event_list"), {"since": "2026-05-02", "until": "2026-05-01"})
    assert list(response.context["page"]) == []
    assert response.context["export_form"] is None


def test_patient_filter_finds_every_event_about_the_patient(officer, tenant_a):
    import uuid

    patient, other = uuid.uuid4(), uuid.uuid4()
    audit.record(actor=Actor.system("test"), action="phi.read", tenant=tenant_a, contacts=[patient, other])
    audit.record(actor=Actor.system("test"), action="phi.read", tenant=tenant_a, contacts=[other])
    audit.record(
        actor=Actor.system("test"),
        action="contact.update",
        tenant=tenant_a,
        target=("contacts.contact", str(patient)),
    )
    response = officer.get(reverse("audit:event_list"), {"contact": str(patient)})
    assert [e.action for e in response.context["page"]] == ["contact.update", "phi.read"]
    rows, manifest = _exported_rows(
        officer.post(
            reverse("audit:event_export"),
            {**_hidden_inputs(response.content.decode(), reverse("audit:event_export")), "format": "json"},
        )
    )
    assert len(rows) == 2
    assert manifest["filters"]["contact"] == str(patient)


def test_event_detail_links_each_patient_to_their_trail(officer, tenant_a):
    import uuid

    patient = uuid.uuid4()
    event = audit.record(actor=Actor.system("test"), action="phi.read", tenant=tenant_a, contacts=[patient])
    page = officer.get(reverse("audit:event_detail", args=[event.pk])).content.decode()
    assert f"{reverse('audit:event_list')}?contact={patient}" in page
