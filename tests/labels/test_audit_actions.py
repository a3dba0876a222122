"""Audit actions read as words: every action the code base records has a label (read from the
source, so a new one cannot be forgotten), the audit pages show the labels, and the export carries
them next to the codes the chain hashes."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
from django.urls import reverse

from audit import services as audit
from audit.exports import verify_export
from healthmail import labels
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from tests.labels.recorded_actions import recorded_actions
from tests.labels.test_registry import _visible_text

RECORDED, UNREAD = recorded_actions()


def test_the_finder_reads_every_call_site():
    """Every way an action reaches record() is read: a call site it cannot read fails here."""
    assert not UNREAD, f"call sites whose action the finder cannot read (teach it): {UNREAD}"
    assert len(RECORDED) > 200
    assert {
        "auth.login",  # through _refuse_if_locked(action=...)
        "incident.open",  # positional argument of incidents.services._record
        "campaign.launch",  # transition_record(action="launch") → f"campaign.{action}"
        "campaign.approve_clinical",  # f"approve_{kind}" with kind declared
        "portal.verify",  # two forwarders deep: _check_limits → _throttled → f"portal.{what}"
        "consent.granted",  # consent_record(kind=ConsentEvent.Kind.GRANTED)
        "tenant.suspend",  # a local variable
        "phi.lookup",  # a module constant
        "journeys.pause",  # a branch of "a" if x else "b"
    } <= RECORDED
    assert "store_true" not in RECORDED  # argparse's action
    assert "launch" not in RECORDED  # a campaign history action, recorded as "campaign.launch"


def test_every_recorded_action_has_a_label():
    missing = sorted(RECORDED - labels.codes("audit_action"))
    assert not missing, f"audit actions without a label (audit/action_labels.py): {missing}"
    for action in RECORDED:
        text = labels.label("audit_action", action)
        assert text != action, action
        assert "_" not in text, (action, text)  # words, not the code again


def test_no_label_waits_for_an_action_nobody_records():
    unused = sorted(labels.codes("audit_action") - RECORDED)
    assert not unused, f"labels of actions no code records (remove them): {unused}"


@pytest.fixture
def officer(member_client, settings, tmp_path):
    settings.AUDIT_CHECKPOINT_DIR = str(tmp_path / "checkpoints")
    return member_client(Role.COMPLIANCE_OFFICER)


@pytest.mark.django_db
def test_audit_pages_and_export_show_labels(settings, officer, tenant_a):
    settings.LABELS_STRICT = True
    actor = Actor.system("test")
    shown = ["auth.login", "contacts.export", "legal_hold.release_request", "campaign.approve_compliance"]
    events = [audit.record(actor=actor, action=action, tenant=tenant_a) for action in shown]
    page = officer.get(reverse("audit:event_list")).content.decode()
    visible = _visible_text(page)
    for action in shown:
        assert labels.label("audit_action", action) in visible
        assert action not in visible, action
    detail = officer.get(reverse("audit:event_detail", args=[events[0].pk])).content.decode()
    assert "Signed in" in _visible_text(detail)
    response = officer.post(reverse("audit:event_export"), {"format": "csv"})
    content = b"".join(response.streaming_content) if response.streaming else response.content
    assert verify_export(content) == []  # the label column is outside the hashed fields
    rows = list(csv.DictReader(io.StringIO(zipfile.ZipFile(io.BytesIO(content)).read("events.csv").decode())))
    by_action = {row["action"]: row["action_label"] for row in rows}
    assert by_action["legal_hold.release_request"] == "Legal hold release requested"
    assert by_action["auth.login"] == "Signed in"
