"""Break-glass: reason, time limit, flagged actions, alert to every compliance officer."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from audit import alerts, chain
from audit.break_glass import break_glass_active, break_glass_open
from audit.models import AuditEvent, BreakGlassGrant
from audit.phi import phi_access
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.errors import ApplicationError, NotFound, PermissionRefused
from healthmail.tenants.context import tenant_context
from tests.factories import MembershipFactory
from tests.sysmail.outbox import deliver_system_mail
from tests.testapp.models import SecretNote

pytestmark = pytest.mark.django_db
NOTE = "testapp.secretnote"


@pytest.fixture
def note(tenant_a):
    with tenant_context(tenant_a):
        return SecretNote.objects.create(tenant=tenant_a, body="Synthetic Patient Zed")


@pytest.fixture
def reviewer(tenant_a):
    return MembershipFactory(tenant=tenant_a, role=Role.CLINICAL_REVIEWER).user


def _open(user, tenant, note, **overrides):
    arguments = {
        "user": user,
        "role": Role.CLINICAL_REVIEWER,
        "tenant": tenant,
        "target_type": NOTE,
        "target_id": str(note.pk),
        "reason": "Patient in ER, chart needed now",
        "minutes": 15,
    }
    return break_glass_open(**{**arguments, **overrides})


def test_open_requires_reason_role_limit_and_an_existing_record(reviewer, tenant_a, tenant_b, note):
    with pytest.raises(ApplicationError, match="Explain"):
        _open(reviewer, tenant_a, note, reason="because")
    with pytest.raises(ApplicationError, match="1 to 60"):
        _open(reviewer, tenant_a, note, minutes=240)
    with pytest.raises(PermissionRefused):
        _open(reviewer, tenant_a, note, role=Role.MARKETER)
    with pytest.raises(NotFound):
        _open(reviewer, tenant_b, note)  # the record belongs to tenant A
    with pytest.raises(NotFound):
        _open(reviewer, tenant_a, note, target_id="not-a-uuid")


def test_reads_under_a_grant_are_flagged_and_officers_alerted(
    reviewer, tenant_a, note, mailoutbox, django_capture_on_commit_callbacks
):
    officer = MembershipFactory(tenant=tenant_a, role=Role.COMPLIANCE_OFFICER).user
    grant = _open(reviewer, tenant_a, note)
    assert break_glass_active(user=reviewer, tenant=tenant_a, target_type=NOTE, target_id=note.pk) == grant
    with tenant_context(tenant_a):
        fresh = SecretNote.objects.get(pk=note.pk)
        with phi_access(
            actor=Actor.for_user(reviewer),
            tenant=tenant_a,
            objects=[fresh],
            fields=["body"],
            purpose="emergency review",
        ):
            assert fresh.body == "Synthetic Patient Zed"
        read = AuditEvent.objects.get(tenant=tenant_a, action="phi.read")
    assert read.details["break_glass"] == str(grant.pk)
    chain.seal_all()
    with django_capture_on_commit_callbacks(execute=True):
        fired = alerts.alerts_scan_tenant(tenant_a)
    assert [a.rule for a in fired if a.severity == "critical"] == ["break_glass"]
    deliver_system_mail(tenant_a)
    assert officer.email in mailoutbox[0].to


def test_expired_grant_is_no_longer_active(reviewer, tenant_a, note):
    grant = _open(reviewer, tenant_a, note)
    with tenant_context(tenant_a):
        BreakGlassGrant.objects.filter(pk=grant.pk).update(
            opened_at=timezone.now() - datetime.timedelta(hours=2),
            expires_at=timezone.now() - datetime.timedelta(hours=1),
        )
    assert break_glass_active(user=reviewer, tenant=tenant_a, target_type=NOTE, target_id=note.pk) is None


def test_reviewer_opens_and_closes_access_in_the_ui(member_client, tenant_a, note):
    client = member_client(Role.CLINICAL_REVIEWER)
    response = client.post(
        reverse("audit:break_glass_list"),
        {
            "target_type": NOTE,
            "target_id": str(note.pk),
            "reason": "Patient in ER, chart needed now",
            "minutes": 10,
        },
        follow=True,
    )
    assert "Compliance officers have been alerted" in response.content.decode()
    with tenant_context(tenant_a):
        grant = BreakGlassGrant.objects.get(tenant=tenant_a)
    client.post(reverse("audit:break_glass_close", args=[grant.pk]))
    with tenant_context(tenant_a):
        grant.refresh_from_db()
    assert grant.closed_at is not None


def test_marketer_cannot_open_break_glass(member_client):
    assert member_client(Role.MARKETER).get(reverse("audit:break_glass_list")).status_code == 403


def test_after_hours_phi_read_raises_an_info_alert(tenant_a):
    from audit import services as audit

    event = audit.record(actor=Actor("user", "u1"), action="phi.read", tenant=tenant_a, details={"count": 1})
    event.occurred_at = datetime.datetime(2026, 11, 21, 8, 0, tzinfo=datetime.UTC)  # Saturday 03:00 local
    fired = list(alerts.after_hours_access(tenant_a, [event]))
    assert [f.rule for f in fired] == ["after_hours"]
    event.occurred_at = datetime.datetime(2026, 11, 23, 15, 0, tzinfo=datetime.UTC)  # Monday 10:00 local
    assert list(alerts.after_hours_access(tenant_a, [event])) == []
