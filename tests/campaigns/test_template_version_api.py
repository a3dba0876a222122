"""Template versions and previews over the API: a version is what a submission freezes; a preview
renders through the one sandboxed rendering path for the synthetic contact, with the lint."""

from __future__ import annotations

import json
import uuid

import pytest

from campaigns.models import Template, TemplateVersion
from campaigns.services import templates as template_services
from contacts.synthetic import synthetic_contact
from healthmail.tenants.context import tenant_context
from tests.api.conftest import assert_problem, audit_events
from tests.factories import ContactFactory

from .conftest import contacts, template

pytestmark = pytest.mark.django_db
READ = ["campaigns:read"]
WRITE = ["templates:write"]


def test_freeze_list_read_and_an_unchanged_template_reuses_its_version(api, issue_key, tenant_a, team):
    saved = template(tenant_a, team["marketer"].actor)
    writer = api(issue_key(scopes=WRITE, by=team["marketer"].user))
    reader = api(issue_key(scopes=READ))

    first = writer.post(f"/api/v1/templates/{saved.pk}/versions", "")
    again = writer.post(f"/api/v1/templates/{saved.pk}/versions", "")
    assert (first.status_code, again.status_code) == (201, 200), first.content
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["number"] == 1
    assert first.json()["contents"][0]["subject"] == "Flu shots are here"

    template_services.template_update(
        tenant=tenant_a,
        actor=team["marketer"].actor,
        template=saved,
        content=template_services.ContentInput("es", "Vacunas", "", "<p>Hola {{ contact.first_name }}</p>"),
    )
    second = writer.post(f"/api/v1/templates/{saved.pk}/versions", "")
    assert (second.status_code, second.json()["number"], second.json()["languages"]) == (201, 2, ["en", "es"])

    listed = reader.get(f"/api/v1/templates/{saved.pk}/versions")
    assert listed.status_code == 200, listed.content
    assert [v["number"] for v in listed.json()["results"]] == [2, 1]
    read = reader.get(f"/api/v1/template-versions/{first.json()['id']}")
    assert (read.json()["number"], read.json()["languages"]) == (1, ["en"])
    assert read.json()["merge_fields"] == ["contact.first_name"]
    recorded = [
        e.details for e in audit_events(tenant=tenant_a) if e.action == "campaign.template_version_create"
    ]
    assert recorded == [
        {"version": 1, "created": True},
        {"version": 1, "created": False},
        {"version": 2, "created": True},
    ]


def test_a_template_with_errors_is_not_frozen_and_scopes_are_exact(api, issue_key, tenant_a, team):
    broken = template(tenant_a, team["marketer"].actor, html="<p>Hello {{ contact.first_name </p>")
    writer = api(issue_key(scopes=WRITE))
    assert_problem(writer.post(f"/api/v1/templates/{broken.pk}/versions", ""), 422, "template_has_errors")
    with tenant_context(tenant_a):
        assert not TemplateVersion.objects.exists()
    reader = api(issue_key(scopes=READ))
    assert_problem(reader.post(f"/api/v1/templates/{broken.pk}/versions", ""), 403)
    assert_problem(writer.get(f"/api/v1/templates/{broken.pk}/versions"), 403)


def test_a_preview_renders_the_synthetic_contact_never_a_person(api, issue_key, tenant_a, team):
    contacts(tenant_a, 3)  # real (synthetic) people exist in the tenant; none of them is rendered
    saved = template(tenant_a, team["marketer"].actor)
    version = template_services.template_freeze(tenant=tenant_a, actor=team["marketer"].actor, template=saved)
    reader = api(issue_key(scopes=READ))
    synthetic_name = synthetic_contact(1, seed=0).first_name

    for path in (f"/api/v1/template-versions/{version.pk}/preview", f"/api/v1/templates/{saved.pk}/preview"):
        shown = reader.get(path)
        assert shown.status_code == 200, shown.content
        body = shown.json()
        assert (body["language"], body["synthetic"], body["error"]) == ("en", True, "")
        assert f"Hello {synthetic_name}" in body["rendered"]["html"]
        assert body["rendered"]["subject"] == "Flu shots are here"
        assert body["lint"]["merge_fields"] == ["contact.first_name"]
        assert not [f for f in body["lint"]["findings"] if f["severity"] == "error"]


def test_a_preview_shows_a_later_edit_only_for_the_template_not_the_frozen_version(
    api, issue_key, tenant_a, team
):
    saved = template(tenant_a, team["marketer"].actor)
    version = template_services.template_freeze(tenant=tenant_a, actor=team["marketer"].actor, template=saved)
    template_services.template_update(
        tenant=tenant_a,
        actor=team["marketer"].actor,
        template=saved,
        content=template_services.ContentInput("en", "Changed subject", "", "<p>Changed</p>"),
    )
    reader = api(issue_key(scopes=READ))
    frozen = reader.get(f"/api/v1/template-versions/{version.pk}/preview").json()
    current = reader.get(f"/api/v1/templates/{saved.pk}/preview").json()
    assert frozen["rendered"]["subject"] == "Flu shots are here"
    assert current["rendered"]["subject"] == "Changed subject"


def test_the_sandbox_refuses_unsafe_content_in_a_preview(api, issue_key, tenant_a, team):
    unsafe = template(
        tenant_a,
        team["marketer"].actor,
        kind=Template.Kind.TRANSACTIONAL,
        html="<p>{{ data.x.__class__.__mro__ }}</p>",
    )
    shown = api(issue_key(scopes=READ)).get(f"/api/v1/templates/{unsafe.pk}/preview")
    assert shown.status_code == 200, shown.content
    body = shown.json()
    assert body["rendered"] is None
    assert body["error"]
    assert "mro" not in json.dumps(body["rendered"])
    assert [f for f in body["lint"]["findings"] if f["severity"] == "error"]


def test_a_preview_language_that_is_not_a_code_is_refused(api, issue_key, tenant_a, team):
    saved = template(tenant_a, team["marketer"].actor)
    reader = api(issue_key(scopes=READ))
    assert_problem(reader.get(f"/api/v1/templates/{saved.pk}/preview?language={'x' * 13}"), 422)
    fallback = reader.get(f"/api/v1/templates/{saved.pk}/preview?language=fr")
    assert fallback.json()["language"] == "en"


def test_a_retried_freeze_with_the_same_idempotency_key_answers_the_first_result(
    api, issue_key, tenant_a, team
):
    saved = template(tenant_a, team["marketer"].actor)
    writer = api(issue_key(scopes=WRITE))
    first = writer.post(f"/api/v1/templates/{saved.pk}/versions", "", HTTP_IDEMPOTENCY_KEY="freeze-1")
    again = writer.post(f"/api/v1/templates/{saved.pk}/versions", "", HTTP_IDEMPOTENCY_KEY="freeze-1")
    assert (first.status_code, again.status_code) == (201, 201), again.content
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]


PREVIEW_WITH_CONTACT = ["campaigns:read", "contacts:phi"]


def _spanish_template(tenant, team):
    saved = template(tenant, team["marketer"].actor)
    template_services.template_update(
        tenant=tenant,
        actor=team["marketer"].actor,
        template=saved,
        content=template_services.ContentInput("es", "Vacunas", "", "<p>Hola {{ contact.first_name }}</p>"),
    )
    return saved


def test_a_preview_with_a_contact_renders_their_values_as_an_audited_phi_read(api, issue_key, tenant_a, team):
    saved = _spanish_template(tenant_a, team)
    version = template_services.template_freeze(tenant=tenant_a, actor=team["marketer"].actor, template=saved)
    person = ContactFactory(tenant=tenant_a, first_name="Rosalind", demographics={"preferred_language": "es"})
    client = api(issue_key(scopes=PREVIEW_WITH_CONTACT))
    body = json.dumps({"contact_id": str(person.pk)})

    for path in (f"/api/v1/templates/{saved.pk}/preview", f"/api/v1/template-versions/{version.pk}/preview"):
        shown = client.post(path, body)
        assert shown.status_code == 200, shown.content
        assert (shown.json()["language"], shown.json()["synthetic"]) == ("es", False)  # their language
        assert "Hola Rosalind" in shown.json()["rendered"]["html"]
    english = client.post(path, json.dumps({"contact_id": str(person.pk), "language": "en"})).json()
    assert "Hello Rosalind" in english["rendered"]["html"]

    reads = audit_events(tenant=tenant_a, action="phi.read")
    assert [(e.details["purpose"], e.details["fields"], e.target_id) for e in reads] == [
        ("api template preview", ["first_name"], str(person.pk))
    ] * 3
    assert all(person.pk in e.contact_ids for e in reads)


def test_a_preview_with_a_contact_needs_the_phi_scope_and_a_contact_of_ones_own(
    api, issue_key, tenant_a, tenant_b, team
):
    saved = template(tenant_a, team["marketer"].actor)
    own = ContactFactory(tenant=tenant_a)
    foreign = ContactFactory(tenant=tenant_b)
    path = f"/api/v1/templates/{saved.pk}/preview"

    without_phi = api(issue_key(scopes=[*READ, "contacts:read"]))
    refused = assert_problem(without_phi.post(path, json.dumps({"contact_id": str(own.pk)})), 403)
    assert "contacts:phi" in refused["detail"]
    client = api(issue_key(scopes=PREVIEW_WITH_CONTACT))
    assert_problem(client.post(path, json.dumps({"contact_id": str(foreign.pk)})), 404)
    assert_problem(client.post(path, json.dumps({"contact_id": str(uuid.uuid4())})), 404)
    assert_problem(client.post(path, json.dumps({})), 422)
    assert not audit_events(tenant=tenant_a, action="phi.read")
    assert not audit_events(tenant=tenant_b, action="phi.read")
