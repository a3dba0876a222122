"""The audit entry point: every event lands in its tenant's trail, or the platform's."""

import pytest
from django.db import connection, transaction
from django.db.utils import ProgrammingError

from audit import services as audit
from audit.models import AuditEvent
from healthmail.actors import Actor
from healthmail.tenants.context import platform_context, tenant_context
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_tenant_event_is_visible_only_in_its_tenant(tenant_a, tenant_b):
    user = UserFactory()
    event = audit.record(
        actor=Actor.for_user(user),
        action="test.event",
        target=tenant_a,
        tenant=tenant_a,
        details={"ref": "x"},
    )
    with tenant_context(tenant_a):
        stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.actor_type, stored.actor_id, stored.target_type, stored.target_id) == (
        "user",
        str(user.pk),
        "tenants.tenant",
        str(tenant_a.pk),
    )
    with tenant_context(tenant_b):
        assert not AuditEvent.objects.filter(pk=event.pk).exists()
    assert not AuditEvent.objects.filter(pk=event.pk).exists()


def test_platform_events_are_readable_only_in_platform_context():
    event = audit.record(
        actor=Actor.anonymous(), action="auth.login", outcome="denied", reason="unknown account"
    )
    assert not AuditEvent.objects.filter(pk=event.pk).exists()
    with platform_context():
        assert AuditEvent.objects.get(pk=event.pk).outcome == "denied"


def test_event_cannot_be_written_into_another_tenant_from_raw_sql(tenant_a, tenant_b):
    with tenant_context(tenant_a), connection.cursor() as cursor:
        with pytest.raises(ProgrammingError, match="row-level"), transaction.atomic():
            cursor.execute(
                "INSERT INTO audit_auditevent (tenant_id, occurred_at, actor_type, actor_id, action,"
                " target_type, target_id, outcome, reason, details, request_id)"
                " VALUES (%s, now(), 'system', '', 'forged', '', '', 'success', '', '{}', '')",
                [tenant_b.pk],
            )
