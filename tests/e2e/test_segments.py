"""A marketer builds a nested segment in the visual builder, watches the count change (noisy and
rounded once clinical), and saves it."""

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from healthmail.accounts.roles import Role
from healthmail.disclosure import Viewer
from healthmail.tenants.context import tenant_context
from segmentation import services
from segmentation.models import Segment
from tests.segmentation.conftest import make_contacts

from .conftest import browser_sign_in, screenshot

pytestmark = pytest.mark.browser


def test_marketer_builds_a_nested_segment_and_saves_it(page, make_person):
    marketer = make_person(Role.MARKETER)
    make_contacts(marketer.tenant, 40, seed=5)

    browser_sign_in(page, marketer)
    page.get_by_role("link", name="Segments").first.click()
    page.get_by_role("link", name="New segment").click()
    count = page.get_by_test_id("segment-count")
    expect(count).to_have_text("40")  # an empty definition is everyone

    page.get_by_role("button", name="Add condition").click()
    condition = page.get_by_role("group", name="Condition").first
    condition.get_by_label("Field").select_option(label="Age")
    condition.get_by_label("Operator").select_option(label="is at least")
    condition.get_by_label("Value").fill("18")
    adults = services.segment_count(
        viewer=Viewer.trusted(),
        tenant=marketer.tenant,
        definition={"field": "age", "op": "gte", "value": 18},
        breakdown=False,
    )
    assert adults.display != "40"
    expect(count).to_have_text(adults.display)

    page.get_by_role("button", name="Add group").click()
    group = page.locator("fieldset.group.depth-1")
    group.get_by_role("button", name="Add condition").click()
    group.get_by_label("Field").select_option(label="Condition (ICD-10) (PHI)")
    expect(group.locator(".badge.phi")).to_have_text("PHI")
    group.get_by_label("Value").fill("E11.9, I10")
    group.get_by_role("button", name="Add condition").click()
    second = group.get_by_role("group", name="Condition").nth(1)
    second.get_by_label("Field").select_option(label="Journey stage")
    final = {
        "all": [
            {"field": "age", "op": "gte", "value": 18},
            {
                "any": [
                    {"field": "condition", "op": "in", "value": ["E11.9", "I10"]},
                    {"field": "journey_stage", "op": "eq", "value": "prospect"},
                ]
            },
        ]
    }
    # What the marketer is shown: clinical criteria go through the disclosure policy (rounded, noisy).
    user = get_user_model().objects.get(email=marketer.email)
    as_marketer = Viewer.for_role(user=user, role=Role.MARKETER)
    expected = services.segment_count(
        viewer=as_marketer, tenant=marketer.tenant, definition=final, breakdown=False
    )
    assert expected.display != adults.display
    expect(count).to_have_text(expected.display)
    expect(page.locator("#segment-count .badge.phi")).to_be_visible()
    screenshot(page, "segment-builder")

    page.get_by_label("Name").fill("Adults with diabetes or hypertension")
    page.get_by_role("button", name="Save segment").click()
    expect(page.get_by_role("status").first).to_contain_text("saved")
    with tenant_context(marketer.tenant):
        segment = Segment.objects.get(name="Adults with diabetes or hypertension")
    assert segment.uses_phi
    assert segment.definition["all"][0] == {"field": "age", "op": "gte", "value": 18}
    nested = segment.definition["all"][1]["any"]
    assert nested[0] == {"field": "condition", "op": "in", "value": ["E11.9", "I10"]}
    assert nested[1]["field"] == "journey_stage"
