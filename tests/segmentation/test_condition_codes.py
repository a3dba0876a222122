"""ICD-10-CM conditions match by category and subcategory (E11 covers E11.0-E11.9), and the
builder finds codes by name from the CMS code list."""

from __future__ import annotations

import pytest
from django.urls import reverse

from contacts import icd10
from contacts import services as contacts
from contacts.normalize import ContactInput
from healthmail.actors import Actor
from healthmail.disclosure import Viewer
from segmentation import services

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("code", "levels"),
    [
        ("E11.65", ("E11", "E11.6", "E11.65")),
        ("e119", ("E11", "E11.9")),
        ("E11", ("E11",)),
        ("S72.001A", ("S72", "S72.0", "S72.00", "S72.001", "S72.001A")),
    ],
)
def test_a_code_carries_its_category_and_subcategories(code, levels):
    assert icd10.condition_with_ancestors(code) == levels


@pytest.fixture
def coded(tenant_a):
    codes = {"a": ["E11.9"], "b": ["E11.65"], "c": ["E10.9"], "d": ["I10"], "e": ["E119"]}
    results = contacts.contact_upsert_many(
        tenant=tenant_a,
        actor=Actor.system("tests"),
        inputs=[
            ContactInput(email=f"{name}@example.org", clinical={"conditions": value})
            for name, value in codes.items()
        ],
        source="tests",
    )
    return {name: result.contact_id for name, result in zip(codes, results, strict=True)}


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        (["E11"], {"a", "b", "e"}),  # the category: every type 2 diabetes code
        (["E11.6"], {"b"}),  # a subcategory
        (["E11.9"], {"a", "e"}),  # exact code, written with or without its dot
        (["E119"], {"a", "e"}),
        (["E10", "I10"], {"c", "d"}),
    ],
)
def test_conditions_match_by_category_and_prefix(tenant_a, coded, asked, expected):
    definition = {"field": "condition", "op": "in", "value": asked}
    members = set(services.segment_member_ids(tenant=tenant_a, definition=definition))
    assert members == {coded[name] for name in expected}


def test_a_category_no_longer_finds_nobody(tenant_a, coded):
    """The reported bug: "E11" found nobody while "E11.9" found people."""
    count = services.segment_count(
        tenant=tenant_a,
        viewer=Viewer.trusted(),
        definition={"field": "condition", "op": "in", "value": ["E11"]},
        breakdown=False,
    )
    assert not count.empty


def test_codes_are_found_by_name_and_by_prefix():
    by_name = icd10.condition_search("type 2 diabetes mellitus")
    assert {"value": "E11", "label": "E11 Type 2 diabetes mellitus"} in by_name
    by_code = [item["value"] for item in icd10.condition_search("E11.6")]
    assert by_code
    assert all(code.startswith("E11.6") for code in by_code)
    assert icd10.condition_search("   ") == []


@pytest.mark.parametrize(
    ("role", "status"), [("marketer", 200), ("tenant_admin", 200), ("compliance_officer", 403)]
)
def test_the_builder_search_is_for_segment_editors(member_client, role, status):
    response = member_client(role).get(reverse("segmentation:condition_lookup"), {"q": "hypertension"})
    assert response.status_code == status
    if status == 200:
        assert any(item["value"] == "I10" for item in response.json()["results"])


def test_the_rule_rows_get_the_codes_as_suggestions_of_the_box_that_asked(member_client):
    """htmx sends the box's own name and value and the datalist it targets: the answer is that
    datalist, its options the codes for the text after the last comma, the earlier codes kept."""
    client = member_client("marketer")
    url = reverse("segmentation:condition_lookup")
    headers = {"HX-Request": "true", "HX-Trigger-Name": "g-0-r-1-value", "HX-Target": "g-0-r-1-codes"}
    page = client.get(url, {"g-0-r-1-value": "type 2 diabetes"}, headers=headers).content.decode()
    assert page.startswith('<datalist id="g-0-r-1-codes">')
    assert '<option value="E11">E11 Type 2 diabetes mellitus</option>' in page
    page = client.get(url, {"g-0-r-1-value": "I10, type 2 diab"}, headers=headers).content.decode()
    assert '<option value="I10, E11">E11 Type 2 diabetes mellitus</option>' in page
    odd = {**headers, "HX-Target": 'x"><script>'}
    page = client.get(url, {"g-0-r-1-value": "E11"}, headers=odd).content.decode()
    assert page.startswith('<datalist id="condition-codes">')  # an id it did not make is not echoed
    assert client.get(url, {"g-0-r-1-value": ""}, headers=headers).content.decode().count("<option") == 0
