"""Log lines at the decisions operators act on (suppressions, alerts, disposal), each naming the
object by id with its counts and codes, never the person (no address, no name, no alert summary)."""

import pytest

from audit import alerts, chain
from audit import services as audit
from consent.suppressions import suppression_add, suppression_remove
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from retention import disposal
from retention.models import DisposalRun
from tests.retention.helpers import YEAR, new_contact, new_messages, officer

from .conftest import json_lines

pytestmark = pytest.mark.django_db

ADDRESS = "operator.log.patient@example.org"


def _named(stream, message: str) -> list[dict]:
    return [line for line in json_lines(stream) if line["message"] == message]


def test_suppressions_are_logged_by_id_and_reason_without_the_address(json_log, tenant_a):
    actor = Actor.system("test")
    entry = suppression_add(tenant=tenant_a, actor=actor, reason="manual", email=ADDRESS)
    suppression_remove(tenant=tenant_a, actor=actor, suppression=entry, reason="added in error")
    [added] = _named(json_log, "consent: suppression added")
    [removed] = _named(json_log, "consent: suppression removed")
    assert (added["suppression"], added["reason"], added["by"]) == (str(entry.pk), "manual", "system")
    assert added["tenant_id"] == str(tenant_a.pk)
    assert removed["suppression"] == str(entry.pk)
    assert ADDRESS not in json_log.getvalue()
    assert "operator.log.patient" not in json_log.getvalue()


def test_alerts_are_logged_by_rule_and_severity_without_their_summary(
    json_log, tenant_a, django_capture_on_commit_callbacks
):
    for _ in range(10):
        audit.record(actor=Actor("user", "someone"), action="auth.login", outcome="denied", tenant=tenant_a)
    chain.seal_all()
    with django_capture_on_commit_callbacks(execute=True):
        fired = alerts.alerts_scan_tenant(tenant_a)
    lines = _named(json_log, "audit: alert raised")
    assert sorted(line["alert"] for line in lines) == sorted(str(alert.pk) for alert in fired)
    assert {line["rule"] for line in lines} >= {"failed_sign_ins"}
    assert {line["tenant_id"] for line in lines} == {str(tenant_a.pk)}
    for alert in fired:
        assert alert.summary not in json_log.getvalue()


def test_disposal_batches_and_completion_are_logged_with_the_database_counts(json_log, tenant_a, monkeypatch):
    monkeypatch.setattr(disposal, "enqueue", lambda task, *, tenant, **ids: None)
    contact = new_contact(tenant_a)
    new_messages(tenant_a, 3, age=8 * YEAR, contact=contact)
    actor = officer(tenant_a)
    (run,) = [r for r in disposal.disposal_plan(tenant=tenant_a, actor=actor) if r.requires_approval]
    disposal.disposal_approve(tenant=tenant_a, actor=officer(tenant_a), run=run)
    disposal.disposal_run_execute(tenant_id=tenant_a.pk, run_id=run.pk)
    with tenant_context(tenant_a):
        run.refresh_from_db()
    assert run.status == DisposalRun.Status.COMPLETED
    batches = _named(json_log, "retention: disposal batch")
    [complete] = _named(json_log, "retention: disposal complete")
    assert len(batches) == run.batches_done
    assert (complete["run"], complete["destroyed"]) == (str(run.pk), run.destroyed_count)
    assert complete["tenant_id"] == str(tenant_a.pk)
    assert run.destroyed_count >= 3
    assert contact.email not in json_log.getvalue()
