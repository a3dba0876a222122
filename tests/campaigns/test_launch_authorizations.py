"""A campaign that uses PHI excludes each contact with the gate's authorization reason."""

from __future__ import annotations

import pytest

from campaigns.models import Campaign, CampaignExclusion
from campaigns.services import launch
from healthmail.tenants.context import tenant_context
from tests.consent.scenarios import build

from .conftest import scheduled

pytestmark = pytest.mark.django_db


def test_exclusions_name_the_authorization_reason(tenant_a, team, ready):
    situations = {"valid": None, "expired": "authorization_expired", "revoked": "authorization_revoked"}
    contacts = {name: build(tenant_a, consent="granted", authorization=name) for name in situations}
    contacts["none"] = build(tenant_a, consent="granted")
    campaign = scheduled(tenant_a, team, ready)
    with tenant_context(tenant_a):
        Campaign.objects.filter(pk=campaign.pk).update(uses_phi=True)  # as if its segment used PHI

    launched = launch.campaign_launch(tenant=tenant_a, campaign_id=campaign.pk)

    with tenant_context(tenant_a):
        reasons = dict(
            CampaignExclusion.objects.filter(campaign=campaign).values_list("contact_id", "reason")
        )
    assert reasons == {
        contacts["expired"].pk: "authorization_expired",
        contacts["revoked"].pk: "authorization_revoked",
        contacts["none"].pk: "no_authorization",
    }
    assert launched.excluded_counts == {
        "authorization_expired": 1,
        "authorization_revoked": 1,
        "no_authorization": 1,
    }
