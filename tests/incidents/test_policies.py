"""Policy acknowledgements: admins publish numbered versions, every member acknowledges the current
one (a banner on every page until they do), a new version asks again, compliance sees who has not;
the records are append-only and audited, and other organizations' versions answer 404."""

from __future__ import annotations

import uuid

import pytest
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

from audit.models import AuditEvent
from healthmail.accounts.roles import Role
from healthmail.errors import Conflict, PermissionRefused
from healthmail.tenants.context import tenant_context
from incidents import policies
from incidents.models import PolicyAcknowledgement
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db
TEXT = "Lock your screen when you leave your desk; never share your authenticator."


def _publish(tenant, title="Workstation security", text=TEXT):
    admin = MembershipFactory(tenant=tenant, role=Role.TENANT_ADMIN)
    return policies.policy_publish(
        tenant=tenant, user=admin.user, role=Role.TENANT_ADMIN, title=title, text=text
    )


def test_a_new_text_under_the_same_title_is_the_next_version_and_asks_again(tenant_a):
    member = MembershipFactory(tenant=tenant_a, role=Role.MARKETER)
    first = _publish(tenant_a)
    assert [v.pk for v in policies.pending_for(tenant=tenant_a, user=member.user)] == [first.pk]
    ack = policies.policy_acknowledge(tenant=tenant_a, user=member.user, version=first)
    assert ack.acknowledged_at is not None
    assert policies.pending_for(tenant=tenant_a, user=member.user) == []
    second = _publish(tenant_a, text=TEXT + " Report lost devices the same day.")
    assert second.number == 2
    assert [v.pk for v in policies.pending_for(tenant=tenant_a, user=member.user)] == [second.pk]
    with pytest.raises(Conflict, match="newer version"):
        policies.policy_acknowledge(tenant=tenant_a, user=member.user, version=first)
    policies.policy_acknowledge(tenant=tenant_a, user=member.user, version=second)
    with pytest.raises(Conflict, match="already"):
        policies.policy_acknowledge(tenant=tenant_a, user=member.user, version=second)
    with tenant_context(tenant_a):
        assert PolicyAcknowledgement.objects.filter(user=member.user).count() == 2
        actions = list(AuditEvent.objects.filter(tenant=tenant_a).values_list("action", flat=True))
    assert actions.count("policy.publish") == 2
    assert actions.count("policy.acknowledge") == 2


def test_compliance_sees_who_has_not_acknowledged(tenant_a):
    done = MembershipFactory(tenant=tenant_a, role=Role.MARKETER)
    missing = MembershipFactory(tenant=tenant_a, role=Role.CLINICAL_REVIEWER)
    gone = MembershipFactory(tenant=tenant_a, role=Role.MARKETER, is_active=False)
    version = _publish(tenant_a)
    policies.policy_acknowledge(tenant=tenant_a, user=done.user, version=version)
    [status] = policies.policy_status(tenant=tenant_a)
    assert [email for email, _ in status.acknowledged] == [done.user.email]
    assert missing.user.email in status.missing
    assert done.user.email not in status.missing
    assert gone.user.email not in status.missing  # deactivated members are not asked
    assert status.members == len(status.missing) + 1


@pytest.mark.parametrize("role", [Role.MARKETER, Role.COMPLIANCE_OFFICER, Role.CLINICAL_REVIEWER])
def test_only_admins_publish(tenant_a, role):
    other = MembershipFactory(tenant=tenant_a, role=role)
    with pytest.raises(PermissionRefused):
        policies.policy_publish(tenant=tenant_a, user=other.user, role=role, title="X", text=TEXT)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE incidents_policyversion SET text = 'changed'",
        "DELETE FROM incidents_policyacknowledgement",
        "UPDATE incidents_policyacknowledgement SET acknowledged_at = now() - interval '1 year'",
        "TRUNCATE incidents_policyversion CASCADE",
    ],
)
def test_versions_and_acknowledgements_are_append_only(tenant_a, statement):
    member = MembershipFactory(tenant=tenant_a, role=Role.MARKETER)
    version = _publish(tenant_a)
    policies.policy_acknowledge(tenant=tenant_a, user=member.user, version=version)
    with (
        tenant_context(tenant_a),
        pytest.raises(DatabaseError),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)
    with tenant_context(tenant_a):
        assert PolicyAcknowledgement.objects.count() == 1


# --- pages -------------------------------------------------------------------------------------


def test_the_banner_shows_on_every_page_until_acknowledged(member_client, tenant_a):
    version = _publish(tenant_a)
    client = member_client(Role.MARKETER)
    home = client.get("/")
    assert "1 policy to read and acknowledge" in home.content.decode()
    mine = client.get(reverse("incidents:my_policies"))
    assert TEXT in mine.content.decode()
    answer = client.post(reverse("incidents:policy_acknowledge", args=[version.pk]))
    assert answer.status_code == 302
    assert "to read and acknowledge" not in client.get("/").content.decode()


@pytest.mark.parametrize(
    ("role", "list_status", "publish_status"),
    [
        (Role.TENANT_ADMIN, 200, 302),
        (Role.COMPLIANCE_OFFICER, 200, 403),
        (Role.MARKETER, 403, 403),
        (Role.CLINICAL_REVIEWER, 403, 403),
    ],
)
def test_roles_on_the_policy_pages(member_client, role, list_status, publish_status):
    client = member_client(role)
    assert client.get(reverse("incidents:policies")).status_code == list_status
    published = client.post(reverse("incidents:policy_publish"), {"title": "Privacy", "text": TEXT})
    assert published.status_code == publish_status


def test_publishing_a_short_text_is_an_error_on_its_field(member_client):
    client = member_client(Role.TENANT_ADMIN)
    response = client.post(reverse("incidents:policy_publish"), {"title": "Privacy", "text": "Be nice"})
    assert response.status_code == 400
    assert "at least 20 characters" in response.content.decode()


def test_a_foreign_or_unknown_version_cannot_be_acknowledged(member_client, tenant_b):
    foreign = _publish(tenant_b)
    client = member_client(Role.MARKETER)
    for version_id in (foreign.pk, uuid.uuid4()):
        response = client.post(reverse("incidents:policy_acknowledge", args=[version_id]))
        assert response.status_code == 404
    with tenant_context(tenant_b):
        assert not PolicyAcknowledgement.objects.exists()
