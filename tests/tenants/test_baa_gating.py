"""`tenant_can`: PHI may flow only under an active BAA whose scope covers the service."""

import datetime

import pytest
from django.utils import timezone

from healthmail.actors import Actor
from healthmail.errors import PhiFlowRefused
from healthmail.tenants.models import Service, Tenant
from healthmail.tenants.services import (
    active_baa,
    baa_terminate,
    require_phi_flow,
    tenant_can,
    tenant_service_permits,
)
from tests.factories import BaaFactory, TenantFactory

pytestmark = pytest.mark.django_db


def _today() -> datetime.date:
    return timezone.localdate()  # at run time: a run that crosses midnight must not use a stale date


DAY = datetime.timedelta(days=1)
EMAIL = Service.MARKETING_EMAIL


def _baa(tenant, **overrides):
    fields = {
        "signed_on": _today() - 30 * DAY,
        "effective_on": _today() - 30 * DAY,
        "expires_on": _today() + 300 * DAY,
    }
    return BaaFactory(tenant=tenant, **{**fields, **overrides})


CASES = [
    # (case, set-up, service, allowed, words in the reason)
    ("no BAA", lambda t: None, EMAIL, False, "No Business Associate Agreement is in force"),
    (
        "not yet effective",
        lambda t: _baa(t, signed_on=_today(), effective_on=_today() + 5 * DAY),
        EMAIL,
        False,
        "No Business Associate Agreement",
    ),
    (
        "expired",
        lambda t: _baa(t, effective_on=_today() - 30 * DAY, expires_on=_today()),
        EMAIL,
        False,
        "No Business Associate Agreement",
    ),
    (
        "expired yesterday",
        lambda t: _baa(t, expires_on=_today() - DAY),
        EMAIL,
        False,
        "No Business Associate",
    ),
    ("terminated", lambda t: _baa(t, terminated_on=_today()), EMAIL, False, "No Business Associate"),
    (
        "terminated tomorrow",
        lambda t: _baa(t, terminated_on=_today() + DAY),
        EMAIL,
        True,
        "Covered by the BAA",
    ),
    (
        "service not in scope",
        lambda t: _baa(t, services=[Service.TRANSACTIONAL_EMAIL]),
        EMAIL,
        False,
        "does not cover marketing email",
    ),
    (
        "suspended tenant",
        lambda t: (_baa(t), Tenant.objects.filter(pk=t.pk).update(status="suspended")),
        EMAIL,
        False,
        "is suspended",
    ),
    ("covered", lambda t: _baa(t), EMAIL, True, "Covered by the BAA"),
    ("covered, no expiry", lambda t: _baa(t, expires_on=None), Service.FORMS, True, "Covered by the BAA"),
    (
        "newer renewal governs scope",
        lambda t: (
            _baa(t, effective_on=_today() - 30 * DAY),
            _baa(t, effective_on=_today() - DAY, services=[Service.SECURE_PORTAL]),
        ),
        EMAIL,
        False,
        "does not cover",
    ),
    (
        "old BAA expired, renewal in force",
        lambda t: (
            _baa(
                t,
                signed_on=_today() - 400 * DAY,
                effective_on=_today() - 400 * DAY,
                expires_on=_today() - 10 * DAY,
            ),
            _baa(t, signed_on=_today() - 20 * DAY, effective_on=_today() - 10 * DAY, expires_on=None),
        ),
        EMAIL,
        True,
        "Covered",
    ),
]


@pytest.mark.parametrize(("case", "setup", "service", "allowed", "reason"), CASES, ids=[c[0] for c in CASES])
def test_tenant_can(case, setup, service, allowed, reason):
    tenant = TenantFactory()
    setup(tenant)
    tenant.refresh_from_db()
    permit = tenant_can(tenant, service)
    assert permit.allowed is allowed
    assert bool(permit) is allowed
    assert reason in permit.reason
    assert tenant_service_permits(tenant)[service] == permit


def test_require_phi_flow_raises_with_the_reason():
    tenant = TenantFactory(name="Synthetic Unsigned Clinic")
    with pytest.raises(PhiFlowRefused, match="No Business Associate Agreement") as raised:
        require_phi_flow(tenant, Service.TRANSACTIONAL_EMAIL)
    assert raised.value.code == "baa_required"
    assert raised.value.status_code == 403


def test_require_phi_flow_passes_when_covered(tenant_a):
    require_phi_flow(tenant_a, Service.TRANSACTIONAL_EMAIL)


def test_unknown_service_is_a_programming_error(tenant_a):
    with pytest.raises(ValueError, match="carrier_pigeon"):
        tenant_can(tenant_a, "carrier_pigeon")


def test_one_tenants_baa_never_covers_another(tenant_a):
    other = TenantFactory()
    assert tenant_can(tenant_a, EMAIL)
    assert not tenant_can(other, EMAIL)
    assert active_baa(tenant=other) is None


def test_terminating_the_baa_stops_phi_at_once(tenant_a):
    baa = active_baa(tenant=tenant_a)
    baa_terminate(actor=Actor.system("test"), tenant=tenant_a, baa=baa, on=_today(), reason="contract ended")
    assert not tenant_can(tenant_a, EMAIL)
