"""BAA expiry reminders: 60/30/14/7/1 days before, once per threshold, none when a renewal covers the
day after, and they reach the compliance officers' alerts."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from audit.alerts import alerts_scan_tenant
from audit.chain import seal_pending
from audit.models import Alert
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import BusinessAssociateAgreement
from incidents import oversight
from tests.factories import BaaFactory

pytestmark = pytest.mark.django_db
D = datetime.date


@pytest.mark.parametrize(
    ("today", "threshold"),
    [
        (D(2026, 1, 1), None),
        (D(2026, 1, 31), 60),
        (D(2026, 3, 1), 60),  # 31 days left
        (D(2026, 3, 2), 30),
        (D(2026, 3, 24), 14),  # 8 days left
        (D(2026, 3, 25), 7),
        (D(2026, 3, 31), 1),
    ],
)
def test_thresholds(today, threshold):
    assert oversight.reminder_threshold(D(2026, 4, 1), today) == threshold


def _expiring(tenant, days: int):
    today = timezone.localdate()
    with tenant_context(tenant):
        BusinessAssociateAgreement.objects.filter(tenant=tenant).update(
            expires_on=today + datetime.timedelta(days=days)
        )


def test_a_reminder_once_per_threshold_reaches_the_alerts(tenant_a):
    _expiring(tenant_a, 25)
    today = timezone.localdate()
    assert oversight.baa_reminders_tenant(tenant_a, today) == 1
    assert oversight.baa_reminders_tenant(tenant_a, today) == 0
    assert oversight.baa_reminders_tenant(tenant_a, today + datetime.timedelta(days=20)) == 1  # 5 left: 7
    seal_pending(tenant_a.pk)
    alerts_scan_tenant(tenant_a)
    with tenant_context(tenant_a):
        severities = sorted(
            Alert.objects.filter(rule="baa_expiry_reminder").values_list("severity", flat=True)
        )
    assert severities == ["critical", "warning"]


def test_no_reminder_when_a_renewal_covers_the_expiry_or_far_away(tenant_a, tenant_b):
    _expiring(tenant_a, 20)
    with tenant_context(tenant_a):
        current = BusinessAssociateAgreement.objects.get(tenant=tenant_a)
    BaaFactory(
        tenant=tenant_a,
        signed_on=current.signed_on,
        effective_on=current.expires_on - datetime.timedelta(days=1),
    )
    assert oversight.baa_reminders_tenant(tenant_a) == 0
    _expiring(tenant_b, 90)
    assert oversight.baa_reminders_tenant(tenant_b) == 0
