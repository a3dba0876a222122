"""Removing a template over the API: refused while a campaign or a journey uses it (409 with the
counts), archived when frozen versions of it exist (the database keeps versions: evidence of what was
sent), deleted otherwise; and removing one of its languages (never the default one)."""

from __future__ import annotations

import uuid

import pytest

from campaigns.forms import CampaignForm
from campaigns.models import CampaignVariant, Template, TemplateContent, TemplateVersion
from campaigns.services import campaigns as campaign_services
from campaigns.services import templates as template_services
from campaigns.services import workflow
from campaigns.services.template_lifecycle import template_uses
from healthmail.errors import NotFound
from healthmail.tenants.context import tenant_context
from journeys.services import journeys as journey_services
from tests.api.conftest import assert_problem, audit_events
from tests.delivery.engine_support import verified_sender_domain

from .conftest import approved, campaign_input, draft, template

pytestmark = pytest.mark.django_db
WRITE = ["templates:write"]
READ = ["campaigns:read"]


def _stored(tenant, template_id):
    with tenant_context(tenant):
        return Template.objects.filter(pk=template_id).first()


def test_a_template_never_frozen_is_deleted_with_its_languages(api, issue_key, tenant_a, team):
    saved = template(tenant_a, team["marketer"].actor)
    writer = api(issue_key(scopes=WRITE))

    answer = writer.delete(f"/api/v1/templates/{saved.pk}")
    assert answer.status_code == 204, answer.content
    assert _stored(tenant_a, saved.pk) is None
    with tenant_context(tenant_a):
        assert not TemplateContent.objects.filter(template_id=saved.pk).exists()
    assert_problem(api(issue_key(scopes=READ)).get(f"/api/v1/templates/{saved.pk}"), 404)
    assert [(e.action, e.target_id) for e in audit_events(tenant=tenant_a, action="template.deleted")] == [
        ("template.deleted", str(saved.pk))
    ]
    assert_problem(writer.delete(f"/api/v1/templates/{saved.pk}"), 404)


def test_a_frozen_template_nothing_uses_is_archived_hidden_and_unusable(api, issue_key, tenant_a, team):
    marketer = team["marketer"].actor
    saved = template(tenant_a, marketer)
    version = template_services.template_freeze(tenant=tenant_a, actor=marketer, template=saved)
    writer, reader = api(issue_key(scopes=WRITE)), api(issue_key(scopes=READ))

    answer = writer.delete(f"/api/v1/templates/{saved.pk}")
    assert answer.status_code == 204, answer.content
    stored = _stored(tenant_a, saved.pk)
    assert stored is not None
    assert stored.archived_at is not None
    with tenant_context(tenant_a):
        assert TemplateVersion.objects.filter(pk=version.pk).exists()
    [event] = audit_events(tenant=tenant_a, action="template.archived")
    assert (event.target_id, event.details) == (str(saved.pk), {"versions": 1})

    # Hidden: not listed, not found by id, not offered in the campaign builder.
    assert str(saved.pk) not in {t["id"] for t in reader.get("/api/v1/templates").json()["results"]}
    for path in ("", "/preview", "/versions"):
        assert_problem(reader.get(f"/api/v1/templates/{saved.pk}{path}"), 404)
    assert saved not in CampaignForm(tenant=tenant_a).fields["template"].queryset
    # The evidence stays readable.
    assert reader.get(f"/api/v1/template-versions/{version.pk}").status_code == 200
    # Nothing new may use it.
    with pytest.raises(NotFound):
        template_services.template_freeze(tenant=tenant_a, actor=marketer, template=saved)
    with pytest.raises(NotFound):
        campaign_services.campaign_create(
            tenant=tenant_a,
            actor=marketer,
            data=campaign_input(tenant_a, template_obj=saved, segment_obj=None, domain=None),
        )
    # Its name is free again.
    again = template(tenant_a, marketer, name=saved.name)
    assert again.pk != saved.pk
    assert_problem(writer.delete(f"/api/v1/templates/{saved.pk}"), 404)


def _with_variant_only(tenant, team, ready):
    other = template(tenant, team["marketer"].actor, name=f"Other {uuid.uuid4().hex[:6]}")
    campaign = draft(tenant, team, {**ready, "template": other})
    with tenant_context(tenant):
        CampaignVariant.objects.create(tenant=tenant, campaign=campaign, key="B", template=ready["template"])


def _cancelled(tenant, team, ready):
    campaign = draft(tenant, team, ready)
    workflow.campaign_cancel(tenant=tenant, actor=team["marketer"].actor, campaign=campaign)


def _approved_then_switched(tenant, team, ready):
    """Only the version its reviewers approved names the template now."""
    campaign = approved(tenant, team, ready)
    other = template(tenant, team["marketer"].actor, name=f"Other {uuid.uuid4().hex[:6]}")
    data = campaign_input(tenant, template_obj=other, segment_obj=ready["segment"], domain=ready["domain"])
    campaign_services.campaign_update(
        tenant=tenant, actor=team["marketer"].actor, campaign=campaign, data=data
    )


@pytest.mark.parametrize(
    "use",
    [
        pytest.param(lambda tenant, team, ready: draft(tenant, team, ready), id="draft"),
        pytest.param(_cancelled, id="cancelled"),
        pytest.param(_with_variant_only, id="ab-variant"),
        pytest.param(_approved_then_switched, id="approved-version"),
    ],
)
def test_a_template_a_campaign_uses_is_refused_with_the_counts(api, issue_key, tenant_a, team, ready, use):
    use(tenant_a, team, ready)
    saved = ready["template"]

    body = assert_problem(
        api(issue_key(scopes=WRITE)).delete(f"/api/v1/templates/{saved.pk}"), 409, "template_in_use"
    )
    assert (body["campaigns"], body["journeys"]) == (1, 0)
    stored = _stored(tenant_a, saved.pk)
    assert stored is not None
    assert stored.archived_at is None
    assert not audit_events(tenant=tenant_a, action__startswith="template.")


def test_a_template_a_journey_sends_is_refused_with_the_counts(api, issue_key, tenant_a, team):
    marketer = team["marketer"]
    saved = template(tenant_a, marketer.actor)
    sender_domain, _ = verified_sender_domain(tenant_a)
    send = {"type": "send", "template_id": str(saved.pk), "purpose": "treatment", "next": "done"}
    for name in ("Recall", "Follow-up"):
        journey_services.journey_create(
            tenant=tenant_a,
            actor=marketer.actor,
            role=marketer.role,
            name=name,
            definition={
                "entry": {"kind": "manual"},
                "start": "remind",
                "sender_domain_id": str(sender_domain.pk),
                "sender_name": "Synthetic Clinic",
                "steps": {"remind": send, "done": {"type": "exit"}},
            },
        )
    assert template_uses(tenant=tenant_a, template=saved) == {"campaigns": 0, "journeys": 2}

    body = assert_problem(
        api(issue_key(scopes=WRITE)).delete(f"/api/v1/templates/{saved.pk}"), 409, "template_in_use"
    )
    assert (body["campaigns"], body["journeys"]) == (0, 2)
    assert _stored(tenant_a, saved.pk).archived_at is None


def test_removal_is_idempotent_and_needs_the_write_scope(api, issue_key, tenant_a, team):
    saved = template(tenant_a, team["marketer"].actor)
    assert_problem(api(issue_key(scopes=READ)).delete(f"/api/v1/templates/{saved.pk}"), 403)
    writer = api(issue_key(scopes=WRITE))
    headers = {"HTTP_IDEMPOTENCY_KEY": "remove-flu-template"}

    first = writer.delete(f"/api/v1/templates/{saved.pk}", **headers)
    again = writer.delete(f"/api/v1/templates/{saved.pk}", **headers)
    assert (first.status_code, again.status_code) == (204, 204)
    assert again["Idempotent-Replayed"] == "true"
    assert len(audit_events(tenant=tenant_a, action="template.deleted")) == 1


def test_a_language_is_removed_but_never_the_default(api, issue_key, tenant_a, team):
    saved = template(tenant_a, team["marketer"].actor)
    template_services.template_update(
        tenant=tenant_a,
        actor=team["marketer"].actor,
        template=saved,
        content=template_services.ContentInput("es", "Vacunas", "", "<p>Hola {{ contact.first_name }}</p>"),
    )
    writer = api(issue_key(scopes=WRITE))
    assert_problem(api(issue_key(scopes=READ)).delete(f"/api/v1/templates/{saved.pk}/languages/es"), 403)

    body = assert_problem(
        writer.delete(f"/api/v1/templates/{saved.pk}/languages/en"), 409, "language_is_default"
    )
    assert "default" in body["detail"]
    answer = writer.delete(f"/api/v1/templates/{saved.pk}/languages/es")
    assert answer.status_code == 204, answer.content
    detail = api(issue_key(scopes=READ)).get(f"/api/v1/templates/{saved.pk}").json()
    assert [c["language"] for c in detail["contents"]] == ["en"]
    assert detail["revision"] == 3
    [event] = audit_events(tenant=tenant_a, action="campaign.template_language_remove")
    assert event.details == {"language": "es", "revision": 3}
    assert_problem(writer.delete(f"/api/v1/templates/{saved.pk}/languages/es"), 404, "language_not_found")
