"""A campaign's audience preview is a count the marketer chooses (by picking the segment): a draft on
"diabetics" and a draft on "diabetics but this person" are a differencing pair. The members figure
goes through the marketer's query audit like the builder's count, so the second is not shown.

As in test_breakdowns, the noise is turned down so that only the audit stands in the way; with the
preview's audit switched off the attack succeeds.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from campaigns.services import campaigns as campaign_services
from segmentation import services as segmentation
from segmentation.services import segment_create
from tests.campaigns.conftest import campaign_input, person, template, verified_domain
from tests.conftest import sign_in

from .conftest import CHANCE, DIABETES, MARGIN, PLANTED, tag

pytestmark = pytest.mark.django_db
MEMBERS = re.compile(r'data-testid="audience-members">(?:about )?([0-9,]+)<')


@pytest.mark.parametrize("defended", [True, False], ids=["defended", "preview-audit-off"])
def test_marketer_learns_no_diagnosis_from_campaign_previews(world, client, defended, settings, monkeypatch):
    settings.DISCLOSURE_NOISE_SCALE = 0.01
    settings.DISCLOSURE_ROUNDING_BASE = 1
    settings.DISCLOSURE_BUDGET = 1000
    if not defended:
        monkeypatch.setattr(segmentation, "segment_answer_audit", lambda **kwargs: None)
    tenant = world.tenant
    marketer = person(tenant, "marketer")
    sign_in(client, marketer.user, tenant=tenant)
    ready = {"domain": verified_domain(tenant), "template": template(tenant, marketer.actor)}

    def members(definition: dict, name: str) -> int | None:
        segment = segment_create(tenant=tenant, actor=marketer.actor, name=name, definition=definition)
        data = campaign_input(
            tenant, template_obj=ready["template"], segment_obj=segment, domain=ready["domain"]
        )
        campaign = campaign_services.campaign_create(tenant=tenant, actor=marketer.actor, data=data)
        page = client.get(reverse("campaigns:campaign_detail", args=[campaign.pk])).content.decode()
        found = MEMBERS.search(page)
        return int(found.group(1).replace(",", "")) if found else None

    everyone = members(DIABETES, "Diabetes")
    assert everyone is not None
    right = 0
    for index, bit in enumerate(world.bits):
        without = members({"all": [DIABETES, {"not": tag(index)}]}, f"Diabetes but {index}")
        guess = None if without is None else int(everyone - without >= 0.5)
        right += (guess if guess is not None else index % 2) == bit
    rate = right / PLANTED
    if defended:
        assert rate <= CHANCE + MARGIN, f"the attacker named {rate:.0%} of planted diagnoses"
    else:
        assert rate >= 0.95, f"with the preview's audit off the attack should work, got {rate:.0%}"
