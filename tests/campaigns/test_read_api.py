"""Templates and campaigns over the API (scope campaigns:read): the tenant's own, in cursor pages,
with template content per language; campaign answers carry settings, never audience counts."""

from __future__ import annotations

import pytest

from tests.api.conftest import assert_problem

from .conftest import draft, template

pytestmark = pytest.mark.django_db


def test_templates_list_and_detail(api, issue_key, tenant_a, tenant_b, team):
    mine = template(tenant_a, team["marketer"].actor, name="Flu season")
    client = api(issue_key(scopes=["campaigns:read"]))

    listed = client.get("/api/v1/templates")
    detail = client.get(f"/api/v1/templates/{mine.pk}")

    assert listed.status_code == 200
    assert [row["id"] for row in listed.json()["results"]] == [str(mine.pk)]
    assert detail.status_code == 200
    body = detail.json()
    assert (body["name"], body["kind"]) == ("Flu season", "marketing")
    assert [(c["language"], c["subject"]) for c in body["contents"]] == [("en", "Flu shots are here")]


def test_campaigns_list_and_detail_carry_settings_not_counts(api, issue_key, tenant_a, team, ready):
    campaign = draft(tenant_a, team, ready)
    client = api(issue_key(scopes=["campaigns:read"]))

    listed = client.get("/api/v1/campaigns").json()["results"]
    detail = client.get(f"/api/v1/campaigns/{campaign.pk}").json()

    assert [row["id"] for row in listed] == [str(campaign.pk)]
    assert detail["status"] == "draft"
    assert detail["template_id"] == str(ready["template"].pk)
    assert detail["segment_id"] == str(ready["segment"].pk)
    assert not {"audience", "count", "recipients", "sent"} & set(detail)


def test_reading_needs_campaigns_read(api, issue_key):
    client = api(issue_key(scopes=["messages:read"]))
    assert_problem(client.get("/api/v1/templates"), 403, "permission_denied")
    assert_problem(client.get("/api/v1/campaigns"), 403, "permission_denied")
