"""Engagement fields in segments: engagement.opened / clicked / converted, bots never counted; the
compiled SQL and the Python evaluator agree."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from delivery.models import EngagementEvent
from healthmail.tenants.context import tenant_context
from segmentation import services
from segmentation.dsl import DefinitionError
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def _contact(tenant, email):
    return ContactFactory(tenant=tenant, email=email).pk


def _events(tenant, contact_id, kind, days_ago, bot=False):
    now = timezone.now()
    with tenant_context(tenant):
        EngagementEvent.objects.bulk_create(
            EngagementEvent(
                tenant=tenant,
                contact_id=contact_id,
                kind=kind,
                is_bot=bot,
                occurred_at=now - datetime.timedelta(days=d),
            )
            for d in days_ago
        )


@pytest.fixture
def people(tenant_a, tenant_b):
    fan = _contact(tenant_a, "fan@patients.example")
    once = _contact(tenant_a, "once@patients.example")
    lapsed = _contact(tenant_a, "lapsed@patients.example")
    botted = _contact(tenant_a, "botted@patients.example")
    _events(tenant_a, fan, "open", [1, 2, 5])
    _events(tenant_a, fan, "click", [2])
    _events(tenant_a, once, "open", [3])
    _events(tenant_a, lapsed, "open", [90])
    _events(tenant_a, botted, "open", [1, 1, 1], bot=True)
    other = _contact(tenant_b, "fan@patients.example")
    _events(tenant_b, other, "open", [1, 1, 1])
    return {"fan": fan, "once": once, "lapsed": lapsed, "botted": botted}


def _members(tenant, condition):
    return set(
        services.segment_member_ids(tenant=tenant, definition={"all": [condition]}, now=timezone.now())
    )


def test_opened_within_days(tenant_a, people):
    got = _members(tenant_a, {"field": "engagement.opened", "op": "within_days", "value": 30})
    assert got == {people["fan"], people["once"]}


def test_not_opened_within_days_includes_bot_only_contacts(tenant_a, people):
    got = _members(tenant_a, {"field": "engagement.opened", "op": "not_within_days", "value": 30})
    assert got == {people["lapsed"], people["botted"]}


def test_opened_at_least_times(tenant_a, people):
    got = _members(tenant_a, {"field": "engagement.opened", "op": "count_at_least", "value": [2, 7]})
    assert got == {people["fan"]}


def test_clicked_and_converted(tenant_a, people):
    assert _members(tenant_a, {"field": "engagement.clicked", "op": "within_days", "value": 7}) == {
        people["fan"]
    }
    assert _members(tenant_a, {"field": "engagement.converted", "op": "within_days", "value": 7}) == set()


@pytest.mark.parametrize("value", [[0, 7], [2], "2", [2, 0], [True, 7], [2, 9999]])
def test_count_operator_values_are_validated(tenant_a, value):
    with pytest.raises(DefinitionError):
        services.segment_parse(
            tenant=tenant_a,
            definition={"field": "engagement.opened", "op": "count_at_least", "value": value},
        )
