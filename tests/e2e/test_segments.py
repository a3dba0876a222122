"""A marketer builds a segment from rule rows (no JSON), watches the count change through the
disclosure policy, and saves it — with htmx re-rendering the rows in place, and without JavaScript
through the same plain form."""

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

ADULTS = {"field": "age", "op": "gte", "value": 18}
WEST = {"field": "region", "op": "in", "value": ["south", "west"]}  # in the choices order


def _shown(person, definition) -> str:
    """What the marketer may be shown for this definition (the disclosure policy's answer)."""
    user = get_user_model().objects.get(email=person.email)
    viewer = Viewer.for_role(user=user, role=Role.MARKETER)
    return services.segment_count(
        viewer=viewer, tenant=person.tenant, definition=definition, breakdown=False
    ).display


def _rule(page, group: int, rule: int):
    return page.get_by_role("group", name=f"Rule {rule} of group {group}")


def _idle(page) -> None:
    """No htmx request on its way nor a swap in progress: the next step acts on the rows the server
    sent last (a late re-render would replace what the test types next)."""
    expect(page.locator(".htmx-request, .htmx-swapping, .htmx-settling")).to_have_count(0)


def _rendered(rule, operator: str) -> None:
    """Wait until the server has re-rendered the row for this operator (its value input fits it)."""
    _idle(rule.page)
    expect(rule.get_by_label("Operator").locator("option[selected]")).to_have_text(operator)


def test_marketer_builds_a_two_rule_segment_and_saves_it(page, make_person):
    marketer = make_person(Role.MARKETER)
    make_contacts(marketer.tenant, 40, seed=5)

    browser_sign_in(page, marketer)
    page.get_by_role("link", name="Segments").first.click()
    page.get_by_role("link", name="New segment").click()
    count = page.get_by_test_id("segment-count")
    expect(count).to_have_text("40")  # no rule yet: everyone
    expect(page.get_by_label("Definition (JSON)")).to_have_count(0)  # marketers build without JSON

    first = _rule(page, 1, 1)
    first.get_by_label("Field").select_option(label="Age")
    _idle(page)
    expect(first.get_by_label("Operator")).to_contain_text("is at least")  # the rows came back for Age
    first.get_by_label("Operator").select_option(label="is at least")
    _rendered(first, "is at least")
    first.get_by_label("Value").fill("18")
    first.get_by_label("Value").press("Tab")
    adults = _shown(marketer, {"all": [ADULTS]})
    assert adults != "40"
    expect(count).to_have_text(adults)

    page.get_by_role("button", name="Add a rule to group 1").click()
    _idle(page)
    second = _rule(page, 1, 2)
    second.get_by_label("Field").select_option(label="Region")
    _rendered(second, "is")
    second.get_by_label("Operator").select_option(label="is any of")
    _rendered(second, "is any of")
    second.get_by_label("Value").select_option(["west", "south"])
    both = {"all": [ADULTS, WEST]}
    expect(count).to_have_text(_shown(marketer, both))
    page.get_by_text("The definition as JSON").click()
    expect(page.get_by_test_id("segment-json")).to_contain_text('"region"')  # follows the rows
    screenshot(page, "segment-rules")

    page.get_by_label("Name").fill("Adults in the West and South")
    page.get_by_role("button", name="Save segment").click()
    expect(page.get_by_role("status").first).to_contain_text("saved")
    with tenant_context(marketer.tenant):
        segment = Segment.objects.get(name="Adults in the West and South")
    assert segment.definition == both
    # The saved segment opens as the same rows.
    expect(_rule(page, 1, 2).get_by_label("Field")).to_have_value("region")
    expect(page.get_by_test_id("segment-json")).to_contain_text('"region"')


def test_rules_without_javascript_are_the_same_plain_form(browser, live_server_url, page, make_person):
    marketer = make_person(Role.MARKETER)
    make_contacts(marketer.tenant, 30, seed=7)
    browser_sign_in(page, marketer)
    context = browser.new_context(base_url=live_server_url, java_script_enabled=False)
    plain = context.new_page()
    plain.context.add_cookies(page.context.cookies())
    plain.goto("/segments/new/")

    _rule(plain, 1, 1).get_by_label("Field").select_option(label="Age")
    plain.get_by_role("button", name="Update rules and count").click()
    _rule(plain, 1, 1).get_by_label("Operator").select_option(label="is at least")
    _rule(plain, 1, 1).get_by_label("Value").fill("200")
    plain.get_by_role("button", name="Add a group").click()
    _rule(plain, 2, 1).get_by_label("Field").select_option(label="Region")
    plain.get_by_role("button", name="Update rules and count").click()
    _rule(plain, 2, 1).get_by_label("Value").select_option("west")
    plain.get_by_label("Name").fill("Plain form segment")
    plain.get_by_role("button", name="Save segment").click()
    # The error names the rule and its field, in words; nothing was saved.
    expect(plain.get_by_role("alert")).to_contain_text("Group 1, rule 1: Value: Age must be")
    expect(_rule(plain, 1, 1)).to_contain_text("Age must be")

    _rule(plain, 1, 1).get_by_label("Value").fill("18")
    plain.get_by_role("button", name="Update rules and count").click()
    expected = {"all": [{"all": [ADULTS]}, {"all": [{"field": "region", "op": "eq", "value": "west"}]}]}
    expect(plain.get_by_test_id("segment-count")).to_have_text(_shown(marketer, expected))
    plain.get_by_role("button", name="Save segment").click()
    expect(plain.get_by_role("status").first).to_contain_text("saved")
    with tenant_context(marketer.tenant):
        assert Segment.objects.get(name="Plain form segment").definition == expected
    context.close()


def test_marketer_finds_a_condition_code_by_its_name(page, make_person):
    """The condition's value box suggests ICD-10 codes as a name is typed (segmentation:
    condition_lookup, through htmx into the box's <datalist>); the code picked is what is saved."""
    marketer = make_person(Role.MARKETER)
    browser_sign_in(page, marketer)
    page.get_by_role("link", name="Segments").first.click()
    page.get_by_role("link", name="New segment").click()
    rule = _rule(page, 1, 1)
    rule.get_by_label("Field").select_option(value="condition")
    _idle(page)
    value = rule.get_by_label("Value")
    value.press_sequentially("diabetes mell", delay=30)
    _idle(page)
    suggestions = page.locator(f"datalist#{value.get_attribute('list')} option")
    expect(suggestions.filter(has_text="Type 2 diabetes mellitus").first).to_be_attached()
    picked = suggestions.filter(has_text="E11 Type 2 diabetes mellitus")
    expect(picked).to_have_count(1)
    assert picked.get_attribute("value") == "E11"
    value.fill(picked.get_attribute("value") or "")  # what choosing the suggestion puts in the box
    value.press("Tab")
    _idle(page)
    # The count follows the picked code (its request starts after a short delay: wait for it).
    expect(page.locator("#segment-count-result")).not_to_contain_text("not complete")
    screenshot(page, "segment-condition-codes")
    page.get_by_label("Name").fill("Type 2 diabetes")
    page.get_by_role("button", name="Save segment").click()
    expect(page.get_by_role("status").first).to_contain_text("saved")
    with tenant_context(marketer.tenant):
        segment = Segment.objects.get(name="Type 2 diabetes")
    (condition,) = segment.definition["all"]
    assert condition["field"] == "condition"
    assert condition["value"] in ("E11", ["E11"])
