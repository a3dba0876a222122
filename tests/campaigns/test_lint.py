"""The compliance lint: one test per rule, on templates as saved and on campaigns as submitted."""

from __future__ import annotations

import pytest

from campaigns.models import Template
from campaigns.services import campaigns as campaign_services
from campaigns.services import templates as template_services
from campaigns.services import workflow
from campaigns.services.common import CampaignError
from campaigns.templating import fields
from campaigns.templating import lint as linting
from campaigns.templating.render import Branding, Footer, Parts
from delivery.models import EncryptionPolicy
from healthmail.tenants.context import tenant_context

from .conftest import GOOD_HTML, campaign_input, draft, segment, template

pytestmark = pytest.mark.django_db

FIELD_SET = fields.FieldSet({f.name: f for f in (*fields.CONTACT_FIELDS, *fields.SYSTEM_FIELDS)})


def codes(html=GOOD_HTML, subject="Hello", preheader="", text="text part") -> dict[str, str]:
    result = linting.lint_template(
        contents={"en": Parts(subject, preheader, html, text)}, blocks={}, field_set=FIELD_SET
    )
    return {f.code: f.severity for f in result.findings}


def test_a_compliant_template_has_no_findings():
    assert codes() == {}


@pytest.mark.parametrize(
    ("change", "code", "severity"),
    [
        ({"subject": "Your visit with {{ contact.provider }}"}, "phi_in_subject", "error"),
        ({"preheader": "Since {{ contact.last_visit }}"}, "phi_in_preheader", "error"),
        (
            {"html": '<a href="https://x.example.org/?dob={{ contact.birth_date }}">Open</a>'},
            "phi_in_link",
            "error",
        ),
        (
            {"html": '<img src="https://x.example.org/a.png" alt="{{ contact.provider|upper }}">'},
            "phi_in_alt",
            "error",
        ),
        ({"html": '<a href="http://x.example.org/">Open</a>'}, "insecure_link", "error"),
        ({"html": '<img src="https://x.example.org/a.png">'}, "image_missing_alt", "error"),
        (
            {
                "html": '<a class="button" href="https://a.example.org">Book</a><a class="btn" href="https://b.example.org">Call</a>'
            },
            "multiple_primary_cta",
            "warning",
        ),
        ({"text": ""}, "missing_text_part", "warning"),
        ({"subject": "Hi {{ contact.first_name }}"}, "identifier_in_subject", "warning"),
        ({"subject": "Hello\r\nBcc: victim@example.org"}, "header_injection", "error"),
        ({"subject": ""}, "subject_missing", "error"),
        ({"html": ""}, "html_missing", "error"),
        ({"html": "{{ contact.ssn }}"}, "unknown_merge_field", "error"),
        ({"html": "{{ ''.__class__ }}"}, "disallowed_expression", "error"),
        ({"html": "{% if %}"}, "syntax_error", "error"),
    ],
)
def test_each_template_rule(change, code, severity):
    found = codes(**change)
    assert found.get(code) == severity, found


def test_phi_in_a_link_is_found_in_the_false_branch_too():
    html = (
        "{% if contact.first_name %}Hi{% else %}"
        '<a href="https://x.example.org/{{ contact.provider }}">x</a>{% endif %}'
    )
    assert "phi_in_link" in codes(html=html)


def _facts(**overrides) -> linting.MessageFacts:
    values = {
        "purpose": "marketing",
        "encryption_policy": EncryptionPolicy.TLS_ELSE_PORTAL,
        "uses_phi": False,
        "phi_fields": frozenset(),
        "sender_name": "Clinic",
        "branding": Branding("Clinic"),
        "footer": Footer(
            "Clinic", "1 Main St", True, "http://testserver/p/unsubscribe/abc/", "https://p", "News"
        ),
    }
    values.update(overrides)
    return linting.MessageFacts(**values)


def test_message_rules():
    assert linting.lint_message(_facts()) == []
    found = {f.code for f in linting.lint_message(_facts(uses_phi=True, encryption_policy="opportunistic"))}
    assert found == {"phi_with_unencrypted_fallback"}
    found = {f.code for f in linting.lint_message(_facts(sender_name=""))}
    assert "canspam_sender_identity" in found
    no_address = Footer("Clinic", "", True, "http://testserver/p/unsubscribe/abc/", "https://p")
    assert {f.code for f in linting.lint_message(_facts(footer=no_address))} == {"canspam_postal_address"}
    broken = Footer("Clinic", "1 Main St", True, "https://elsewhere.example.org/unsub", "https://p")
    assert {f.code for f in linting.lint_message(_facts(footer=broken))} == {"canspam_unsubscribe"}
    assert {f.code for f in linting.lint_message(_facts(sender_name="A\nB"))} == {"header_injection"}
    assert {f.code for f in linting.lint_message(_facts(has_topic=False))} == {"topic_required"}


def test_minimum_necessary_flags_phi_the_purpose_does_not_need():
    marketing = linting.lint_message(_facts(uses_phi=True, phi_fields=frozenset({"contact.provider"})))
    assert [(f.code, f.severity) for f in marketing] == [("minimum_necessary", "warning")]
    treatment = linting.lint_message(
        _facts(
            purpose="treatment",
            uses_phi=True,
            phi_fields=frozenset({"contact.provider", "contact.birth_date"}),
        )
    )
    assert [f.message for f in treatment if f.code == "minimum_necessary"] == [
        "“contact.birth_date” is PHI that a treatment message does not need."
    ]


def test_transactional_mail_needs_no_unsubscribe():
    transactional = Footer("Clinic", "1 Main St", False)
    assert linting.lint_message(_facts(purpose="treatment", footer=transactional)) == []


def test_lint_runs_on_every_template_save(tenant_a, team):
    marketer = team["marketer"].actor
    created = template(tenant_a, marketer, html='<img src="https://x.example.org/a.png">')
    assert created.has_errors
    assert [f["code"] for f in created.lint["findings"]] == ["image_missing_alt"]
    template_services.template_update(
        tenant=tenant_a,
        actor=marketer,
        template=created,
        content=template_services.ContentInput("en", "Hello", "", GOOD_HTML, "text"),
    )
    with tenant_context(tenant_a):
        created.refresh_from_db()
    assert not created.has_errors
    assert created.lint["findings"] == []


def test_lint_errors_block_submission_and_name_the_rule(tenant_a, team, ready):
    marketer = team["marketer"].actor
    bad = template(tenant_a, marketer, name="Bad", subject="About {{ contact.provider }}")
    campaign = draft(tenant_a, team, {**ready, "template": bad})
    assert campaign.has_errors
    assert campaign.uses_phi
    with pytest.raises(CampaignError) as refused:
        workflow.campaign_submit(tenant=tenant_a, actor=marketer, campaign=campaign)
    assert "PHI field “contact.provider” is used in the subject" in refused.value.message
    assert {e["code"] for e in refused.value.extra["errors"]} == {"phi_in_subject"}


def test_phi_content_with_opportunistic_tls_is_a_campaign_error(tenant_a, team, ready):
    marketer = team["marketer"].actor
    phi_template = template(
        tenant_a, marketer, name="Provider", html=GOOD_HTML + "<p>{{ contact.provider }}</p>"
    )
    campaign = draft(tenant_a, team, {**ready, "template": phi_template}, encryption_policy="opportunistic")
    assert "phi_with_unencrypted_fallback" in {f["code"] for f in campaign.lint}
    assert campaign.has_errors


def test_campaign_without_audience_or_template_is_flagged(tenant_a, team, ready):
    data = campaign_input(tenant_a, template_obj=None, segment_obj=None, domain=ready["domain"])
    campaign = campaign_services.campaign_create(tenant=tenant_a, actor=team["marketer"].actor, data=data)
    assert {"segment_required", "template_required"} <= {f["code"] for f in campaign.lint}


def test_transactional_templates_cannot_be_used_for_campaigns(tenant_a, team, ready):
    api_template = template(tenant_a, team["marketer"].actor, name="API", kind=Template.Kind.TRANSACTIONAL)
    with pytest.raises(CampaignError):
        draft(tenant_a, team, {**ready, "template": api_template})


def test_segment_using_phi_makes_the_campaign_use_phi(tenant_a, team, ready):
    clinical = segment(tenant_a, {"field": "condition", "op": "in", "value": ["E11.9"]}, name="Diabetes")
    campaign = draft(tenant_a, team, {**ready, "segment": clinical})
    assert campaign.uses_phi
    assert workflow.required_reviews(campaign) == ["compliance", "clinical"]
