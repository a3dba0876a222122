"""Codes never reach the journey pages or the contact page raw: every entry kind, engagement action,
consent change and demographic has a label, and the pages show the label (in strict mode a code
without one fails the render)."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from consent import services as consent
from contacts.normalize import DEMOGRAPHIC_FIELDS
from contacts.services import ContactInput, contact_upsert
from healthmail import labels
from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context
from journeys import definition as spec
from journeys.models import Journey
from tests.campaigns.conftest import segment

from .conftest import SYSTEM, active_journey

pytestmark = pytest.mark.django_db

ENTRIES = [
    ({"kind": "event", "event": "lab_result.ready"}, "An event from your systems: lab_result.ready"),
    ({"kind": "manual"}, "Enrolled by hand or through the API"),
    (
        {"kind": "date", "field": "birth_date", "offset_days": 0, "anniversary": True},
        "A date of the contact: Date of birth + 0 days, every year",
    ),
    (
        {"kind": "consent", "topic": "marketing_newsletters", "change": "revoked"},
        "A consent change: Consent revoked, Newsletters",
    ),
    (
        {"kind": "engagement", "action": "clicked"},
        "An email opened, clicked or left unopened: Clicks a link in an email",
    ),
    ({"kind": "segment"}, "Joining a segment: Post-visit patients"),
    ({"kind": "form", "form": "intake-form"}, "A form submitted: intake-form"),
]


@pytest.mark.parametrize(
    ("kind", "codes"),
    [
        ("journey_entry", set(spec.ENTRY_KINDS)),
        ("journey_engagement", set(spec.ENGAGEMENT_ACTIONS)),
        ("journey_consent_change", set(spec.CONSENT_CHANGES)),
        ("demographic", set(DEMOGRAPHIC_FIELDS)),
    ],
)
def test_every_code_has_a_label(kind, codes):
    missing = sorted(code for code in codes if not labels.has_label(kind, code))
    assert not missing, f"codes of {kind} without a label: {missing}"
    assert all(labels.label(kind, code) != code for code in codes)


def _cell(page: str, testid: str) -> str:
    found = re.search(rf'data-testid="{testid}">(.*?)</dd>', page, flags=re.DOTALL)
    assert found, testid
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


@pytest.mark.parametrize(("entry", "shown"), ENTRIES, ids=[e["kind"] for e, _ in ENTRIES])
def test_journey_pages_name_the_entry_in_words(settings, member_client, tenant_a, entry, shown):
    settings.LABELS_STRICT = True
    client = member_client(Role.MARKETER)
    if entry["kind"] == "segment":
        audience = segment(
            tenant_a, {"field": "journey_stage", "op": "eq", "value": "post_visit"}, "Post-visit patients"
        )
        entry = {**entry, "segment_id": str(audience.pk)}
    consent.topic_by_key(tenant=tenant_a, key="marketing_newsletters")  # system topics exist once used
    journey = active_journey(tenant_a, entry=entry)
    detail = client.get(reverse("journeys:journey_detail", args=[journey.pk])).content.decode()
    assert _cell(detail, "entry") == shown
    listing = client.get(reverse("journeys:journey_list")).content.decode()
    row = re.search(rf"{journey.pk}/\">Recall</a></td>(.*?)</tr>", listing, flags=re.DOTALL)
    assert row, "the journey's row"
    cells = re.findall(r"<td>(.*?)</td>", row.group(1), flags=re.DOTALL)
    assert re.sub(r"<[^>]+>", "", cells[2]) == shown.split(":")[0] + (
        ": " + shown.split(": ", 1)[1] if entry["kind"] in ("event", "form") else ""
    )
    for page in (detail, listing):
        assert not re.search(rf">\s*{entry['kind']}\b", page), "the raw entry kind"
        if "segment_id" in entry:
            assert entry["segment_id"] not in re.sub(r"<[^>]+>", " ", page), "the segment's id"


def test_the_contact_page_names_the_demographics(settings, member_client, tenant_a):
    settings.LABELS_STRICT = True
    client = member_client(Role.COMPLIANCE_OFFICER)  # sees the sealed demographics
    result = contact_upsert(
        tenant=tenant_a,
        actor=SYSTEM,
        data=ContactInput(
            email="labels.person@patients.test",
            demographics={"time_zone": "Pacific/Auckland", "preferred_language": "es"},
        ),
        source="api",
    )
    page = client.get(reverse("contacts:contact_detail", args=[result.contact_id])).content.decode()
    assert "<dt>Time zone</dt><dd>Pacific/Auckland</dd>" in page
    assert "<dt>Preferred language</dt>" in page
    assert "Time_zone" not in page
    assert "Preferred_language" not in page


def _field_errors(page: str, name: str) -> list[str]:
    found = re.search(rf'data-testid="field-{name}">(.*?)</div>', page, flags=re.DOTALL)
    assert found, name
    return re.findall(r'<p class="error" role="alert">(.*?)</p>', found.group(1))


def test_the_form_takes_a_consent_entry_and_puts_each_problem_next_to_its_field(member_client, tenant_a):
    client = member_client(Role.MARKETER)
    form = {
        "name": "Welcome back",
        "entry_kind": "consent",
        "start": "done",
        "cycle_cap": "3",
        "steps": json.dumps({"done": {"type": "exit"}}),
    }

    refused = client.post(reverse("journeys:journey_new"), form)
    assert refused.status_code == 400
    page = refused.content.decode()
    assert _field_errors(page, "entry_topic") == ["Choose the consent topic whose change starts the journey."]
    assert _field_errors(page, "entry_change") == [
        "Choose whether consent granted or consent revoked starts the journey."
    ]
    # The topics offered are the organization's, by name (system topics included).
    assert '<option value="marketing_newsletters">Newsletters</option>' in page

    unknown = client.post(
        reverse("journeys:journey_new"), form | {"entry_topic": "no_such_topic", "entry_change": "granted"}
    )
    assert unknown.status_code == 400  # not one of the choices offered
    assert _field_errors(unknown.content.decode(), "entry_topic")

    chosen = {"entry_topic": "marketing_newsletters", "entry_change": "granted"}
    saved = client.post(reverse("journeys:journey_new"), form | chosen)
    assert saved.status_code == 302
    with tenant_context(tenant_a):
        entry = Journey.objects.get(name="Welcome back").versions.get().definition["entry"]
    assert entry == {"kind": "consent", "topic": "marketing_newsletters", "change": "granted"}
