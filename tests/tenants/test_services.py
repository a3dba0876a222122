"""Tenant and BAA writes: rules, audit events, concurrency guards."""

import datetime

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from healthmail.actors import Actor
from healthmail.errors import ApplicationError, Conflict
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import BusinessAssociateAgreement, Service, Subcontractor, Tenant
from healthmail.tenants.services import (
    SubcontractorEntry,
    active_baa,
    baa_record,
    baa_terminate,
    tenant_create,
    tenant_set_status,
    tenant_update_settings,
)
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db

ACTOR = Actor.system("test")
TODAY = timezone.localdate()
DAY = datetime.timedelta(days=1)


def _events(tenant, action):
    with tenant_context(tenant):
        return list(AuditEvent.objects.filter(tenant=tenant, action=action))


def _record(tenant, **overrides):
    fields = {
        "actor": ACTOR,
        "tenant": tenant,
        "counterparty": "Synthetic Covered Entity",
        "signed_on": TODAY - DAY,
        "effective_on": TODAY,
        "expires_on": None,
        "signatory_name": "Synthetic Signatory",
        "document_sha256": "AB" * 32,
        "services": [Service.MARKETING_EMAIL],
    }
    return baa_record(**{**fields, **overrides})


def test_tenant_create_is_audited():
    tenant = tenant_create(
        actor=ACTOR,
        name=" Synthetic Hospital ",
        slug="synthetic-hospital",
        postal_address="1 Example Road",
        timezone_name="America/Chicago",
    )
    assert (tenant.name, tenant.timezone, tenant.status) == (
        "Synthetic Hospital",
        "America/Chicago",
        "active",
    )
    [event] = _events(tenant, "tenant.create")
    assert (event.actor_type, event.actor_id, event.details) == (
        "system",
        "test",
        {"slug": "synthetic-hospital"},
    )


def test_tenant_create_refuses_a_taken_slug_and_a_bad_timezone():
    TenantFactory(slug="taken")
    with pytest.raises(Conflict, match="is taken"):
        tenant_create(actor=ACTOR, name="X", slug="taken", postal_address="1 Example Road")
    with pytest.raises(ApplicationError, match="Unknown time zone"):
        tenant_create(
            actor=ACTOR,
            name="X",
            slug="fresh",
            postal_address="1 Example Road",
            timezone_name="Mars/Olympus_Mons",
        )
    assert not Tenant.objects.filter(slug="fresh").exists()


def test_suspend_and_reactivate_need_a_reason_and_are_audited():
    tenant = TenantFactory()
    with pytest.raises(ApplicationError, match="reason is required"):
        tenant_set_status(actor=ACTOR, tenant=tenant, status="suspended", reason="  ")
    tenant_set_status(actor=ACTOR, tenant=tenant, status="suspended", reason="unpaid invoices")
    assert (tenant.status, tenant.status_reason) == ("suspended", "unpaid invoices")
    with pytest.raises(ApplicationError, match="already suspended"):
        tenant_set_status(actor=ACTOR, tenant=tenant, status="suspended", reason="again")
    tenant_set_status(actor=ACTOR, tenant=tenant, status="active", reason="paid")
    assert tenant.is_active
    assert [e.reason for e in _events(tenant, "tenant.suspend")] == ["unpaid invoices"]
    assert [e.reason for e in _events(tenant, "tenant.reactivate")] == ["paid"]


def test_status_change_from_a_stale_copy_is_refused():
    tenant = TenantFactory()
    stale = Tenant.objects.get(pk=tenant.pk)
    tenant_set_status(actor=ACTOR, tenant=tenant, status="suspended", reason="first")
    stale.status = "active"
    with pytest.raises(Conflict):
        tenant_set_status(actor=ACTOR, tenant=stale, status="suspended", reason="second")
    assert Tenant.objects.get(pk=tenant.pk).status_reason == "first"


def test_settings_change_audits_only_changed_fields():
    tenant = TenantFactory(timezone="America/New_York", idle_timeout_minutes=15)
    tenant_update_settings(
        actor=ACTOR,
        tenant=tenant,
        postal_address=tenant.postal_address,
        timezone_name="America/Denver",
        idle_timeout_minutes=15,
    )
    tenant_update_settings(
        actor=ACTOR,
        tenant=tenant,
        postal_address=tenant.postal_address,
        timezone_name="America/Denver",
        idle_timeout_minutes=15,
    )
    assert Tenant.objects.get(pk=tenant.pk).timezone == "America/Denver"
    assert [e.details for e in _events(tenant, "tenant.settings_change")] == [{"fields": ["timezone"]}]
    with pytest.raises(ApplicationError):
        tenant_update_settings(
            actor=ACTOR,
            tenant=tenant,
            postal_address="x",
            timezone_name="Nowhere/Else",
            idle_timeout_minutes=15,
        )
    assert Tenant.objects.get(pk=tenant.pk).timezone == "America/Denver"


def test_baa_record_keeps_hash_scope_and_subcontractors():
    tenant = TenantFactory()
    baa = _record(
        tenant,
        services=["forms", "marketing_email", "forms"],
        subcontractors=[SubcontractorEntry("Synthetic Hosting", "database hosting")],
    )
    assert baa.document_sha256 == "ab" * 32
    assert baa.services == ["forms", "marketing_email"]
    with tenant_context(tenant):
        assert list(Subcontractor.objects.values_list("name", "service")) == [
            ("Synthetic Hosting", "database hosting")
        ]
    [event] = _events(tenant, "baa.record")
    assert event.details["subcontractors"] == 1
    assert active_baa(tenant=tenant) == baa


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"effective_on": TODAY - 2 * DAY}, "cannot take effect before it is signed"),
        ({"expires_on": TODAY}, "expiry date must come after the effective date"),
        ({"services": []}, "at least one service"),
        ({"services": ["carrier_pigeon"]}, "Unknown service"),
        ({"breach_notification_days": 90}, "less than or equal to 60"),
        ({"document_sha256": "not-a-hash"}, "sha256"),
    ],
)
def test_baa_record_refuses_bad_input(overrides, message):
    tenant = TenantFactory()
    with pytest.raises(ApplicationError, match=message):
        _record(tenant, **overrides)
    with tenant_context(tenant):
        assert not BusinessAssociateAgreement.objects.exists()


def test_baa_terminate_once_with_reason():
    tenant = TenantFactory()
    baa = _record(tenant)
    with pytest.raises(ApplicationError, match="reason"):
        baa_terminate(actor=ACTOR, tenant=tenant, baa=baa, on=TODAY, reason="")
    baa_terminate(actor=ACTOR, tenant=tenant, baa=baa, on=TODAY, reason="contract ended")
    with pytest.raises(Conflict, match="already terminated"):
        baa_terminate(actor=ACTOR, tenant=tenant, baa=baa, on=TODAY + DAY, reason="again")
    with tenant_context(tenant):
        assert BusinessAssociateAgreement.objects.get(pk=baa.pk).terminated_on == TODAY
    assert [e.reason for e in _events(tenant, "baa.terminate")] == ["contract ended"]


def test_baa_terminate_refuses_another_tenants_baa():
    tenant, other = TenantFactory(), TenantFactory()
    baa = _record(tenant)
    with pytest.raises(ApplicationError, match="another organization"):
        baa_terminate(actor=ACTOR, tenant=other, baa=baa, on=TODAY, reason="mixup")
