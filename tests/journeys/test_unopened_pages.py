"""The "did not open within N days" entry in the builder's form (the emails offered by name, problems
next to their fields, the saved definition) and on the journey pages (in words, never an id)."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context
from journeys.models import Journey

from .conftest import activated, definition
from .steps_support import EXIT

pytestmark = pytest.mark.django_db


def _newsletter(tenant, people, ready):
    send = {
        "type": "send", "template_id": str(ready["template"].pk), "purpose": "marketing",
        "topic": "marketing_newsletters", "next": "done",
    }  # fmt: skip
    body = definition(
        template_id=ready["template"].pk,
        sender_domain_id=ready["sender_domain"].pk,
        entry={"kind": "manual"},
        start="mail",
        steps={"mail": send, **EXIT},
    )
    return activated(tenant, people, body, name="Monthly newsletter")


def _field_errors(page: str, name: str) -> list[str]:
    found = re.search(rf'data-testid="field-{name}">(.*?)</div>', page, flags=re.DOTALL)
    assert found, name
    return re.findall(r'<p class="error" role="alert">(.*?)</p>', found.group(1))


def test_the_form_takes_an_unopened_entry(member_client, tenant_a, people, ready):
    source = _newsletter(tenant_a, people, ready)
    client = member_client(Role.MARKETER)
    form = {
        "name": "Did not open the newsletter",
        "entry_kind": "engagement",
        "entry_action": "not_opened",
        "entry_days": "",
        "start": "wait",
        "cycle_cap": "3",
        "steps": json.dumps({"wait": {"type": "wait", "seconds": 3600, "next": "done"}, **EXIT}),
    }
    refused = client.post(reverse("journeys:journey_new"), form)
    assert refused.status_code == 400
    page = refused.content.decode()
    assert _field_errors(page, "entry_send") == [
        "Choose the email not opened: a campaign or a send step of a journey."
    ]
    assert _field_errors(page, "entry_days") == ["The days without an open are a whole number from 1 to 90."]
    # The emails offered: by the journey's name and its step, grouped.
    value = f"journey:{source.pk}:mail"
    assert f'<option value="{value}">Monthly newsletter: step mail</option>' in page
    assert '<optgroup label="Journey emails">' in page
    assert "Does not open an email within some days" in page

    saved = client.post(reverse("journeys:journey_new"), form | {"entry_send": value, "entry_days": "7"})
    assert saved.status_code == 302
    with tenant_context(tenant_a):
        journey = Journey.objects.get(name="Did not open the newsletter")
        entry = journey.versions.get().definition["entry"]
    assert entry == {
        "kind": "engagement",
        "action": "not_opened",
        "journey_id": str(source.pk),
        "step": "mail",
        "days": 7,
    }
    # Edited again, the form shows what was chosen.
    edit = client.get(reverse("journeys:journey_edit", args=[journey.pk])).content.decode()
    assert f'<option value="{value}" selected>' in edit
    assert re.search(r'name="entry_days"[^>]*value="7"', edit)


def test_the_pages_say_which_email_and_how_many_days(settings, member_client, tenant_a, people, ready):
    settings.LABELS_STRICT = True
    source = _newsletter(tenant_a, people, ready)
    watched = {"journey_id": str(source.pk), "step": "mail"}
    body = {
        "entry": {"kind": "engagement", "action": "not_opened", "days": 5, **watched},
        "start": "wait",
        "steps": {"wait": {"type": "wait", "seconds": 3600, "next": "done"}, **EXIT},
    }
    journey = activated(tenant_a, people, body, name="Nudge")
    client = member_client(Role.MARKETER)
    detail = client.get(reverse("journeys:journey_detail", args=[journey.pk])).content.decode()
    shown = re.search(r'data-testid="entry">(.*?)</dd>', detail, flags=re.DOTALL).group(1).strip()
    assert shown == (
        "An email opened, clicked or left unopened: does not open the email of step mail of the journey "
        "Monthly newsletter within 5 days"
    )
    assert str(source.pk) not in re.sub(r"<[^>]+>", " ", detail)
