"""The block editor's server side: MJML rendered by mrml and saved through the template service
(lint, versions), the locked footer, nothing fetched from other hosts, roles and foreign tenants."""

import re
import uuid

import pytest
from django.urls import reverse

from campaigns.models import TemplateContent, TemplateVersion
from campaigns.services import editor as design
from campaigns.services import previews
from campaigns.services.common import CampaignError
from campaigns.templating import html as mail_html
from campaigns.templating.mjml import mjml_render
from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context

from .conftest import person, template

pytestmark = pytest.mark.django_db

FOOTER = (
    '<mj-section css-class="hm-compliance-footer"><mj-column><mj-text>Legal footer</mj-text>'
    "</mj-column></mj-section>"
)


def mjml(*sections: str) -> str:
    return "<mjml><mj-body>" + "".join(sections) + "</mj-body></mjml>"


TEXT = "<mj-section><mj-column><mj-text>Hello {{ contact.first_name }}</mj-text></mj-column></mj-section>"
COLUMNS = (
    "<mj-section><mj-column><mj-text>Left</mj-text></mj-column>"
    "<mj-column><mj-text>Right</mj-text></mj-column></mj-section>"
)


def save(tenant, actor, source, *, subject="Spring news", existing=None, name="Designed"):
    return design.template_design_save(
        tenant=tenant,
        actor=actor,
        template=existing,
        name=name,
        design=design.DesignInput("en", subject, "", source),
    )


def test_mrml_renders_without_web_fonts_or_includes():
    html = mjml_render(
        mjml("<mj-section><mj-column><mj-text font-family='Ubuntu'>Hi</mj-text></mj-column></mj-section>")
    )
    assert "mj-column-per-100" in html
    assert "fonts.googleapis.com" not in html  # mrml links Google Fonts for Ubuntu unless told not to
    assert "<link" not in html
    with pytest.raises(ValueError, match="mj-include"):
        mjml_render(mjml('<mj-include path="/etc/passwd" />'))
    with pytest.raises(ValueError, match="empty"):
        mjml_render("  ")
    with pytest.raises(ValueError, match="could not be rendered"):
        mjml_render("<mjml><mj-body><mj-section>")


def test_design_saved_through_the_template_service_as_a_version(tenant_a):
    marketer = person(tenant_a, Role.MARKETER)
    saved = save(tenant_a, marketer.actor, mjml(TEXT, FOOTER))
    assert saved.version is not None
    assert saved.version.number == 1
    assert saved.version.fields == ["contact.first_name"]
    with tenant_context(tenant_a):
        content = TemplateContent.objects.get(template=saved.template, language="en")
    assert "hm-compliance-footer" not in content.mjml  # the placeholder never reaches storage
    assert "Legal footer" not in content.html
    assert content.html == mjml_render(content.mjml)

    again = save(tenant_a, marketer.actor, mjml(TEXT, COLUMNS), existing=saved.template)
    assert again.version.number == 2
    with tenant_context(tenant_a):
        assert TemplateVersion.objects.filter(template=saved.template).count() == 2


def test_the_lint_governs_designed_emails_phi_in_a_subject_is_an_error(tenant_a):
    marketer = person(tenant_a, Role.MARKETER)
    saved = save(tenant_a, marketer.actor, mjml(TEXT), subject="Your visit on {{ contact.last_visit }}")
    assert saved.version is None  # nothing frozen while the lint finds errors
    assert "phi_in_subject" in {finding.code for finding in saved.lint.errors}
    assert saved.template.has_errors


def test_bad_mjml_is_refused_with_a_clear_message(tenant_a):
    marketer = person(tenant_a, Role.MARKETER)
    with pytest.raises(CampaignError, match="could not be rendered") as error:
        save(tenant_a, marketer.actor, "<mjml><mj-body><mj-section>")
    assert error.value.code == "mjml_invalid"


def test_rendered_message_keeps_columns_responsive_and_the_real_footer(tenant_a):
    marketer = person(tenant_a, Role.MARKETER)
    saved = save(tenant_a, marketer.actor, mjml(COLUMNS))  # no footer placeholder at all
    shown = previews.template_preview(tenant=tenant_a, template=saved.template)
    html = shown.rendered.html
    assert re.search(r"@media only screen and \(min-width:480px\) \{ \.mj-column-per-50 \{ width:50%", html)
    assert "data-hm-footer" in html  # appended by the layout whatever the design holds
    assert "Unsubscribe" in html


def test_responsive_rules_are_written_from_class_names_not_copied_css():
    css = mail_html.responsive_css('<div class="mj-column-per-33-333333333333336 evil}{x">')
    assert css == (
        "@media only screen and (min-width:480px) { .mj-column-per-33-333333333333336 "
        "{ width:33.333333333333336% !important; max-width:33.333333333333336%; } }"
    )
    assert mail_html.responsive_css("<p>no columns</p>") == ""


@pytest.mark.parametrize(
    ("role", "status"),
    [
        (Role.MARKETER, 200),
        (Role.TENANT_ADMIN, 403),
        (Role.COMPLIANCE_OFFICER, 403),
        (Role.CLINICAL_REVIEWER, 403),
    ],
)
def test_role_matrix(member_client, role, status):
    assert member_client(role).get(reverse("campaigns:template_design_new")).status_code == status


def test_editor_page_creates_then_edits_and_previews(member_client, tenant_a):
    client = member_client(Role.MARKETER)
    page = client.get(reverse("campaigns:template_design_new"))
    body = page.content.decode()
    assert 'id="design-source"' in body
    assert "vendor/grapes.min.js" in body
    assert "campaigns/editor.js" in body
    for attributes in re.findall(r"<script\b([^>]*)>", body):  # no inline script: files or JSON data only
        assert "src=" in attributes or 'type="application/json"' in attributes, attributes
    assert " style=" not in body.split('id="design-source"')[0].split("<main")[1]
    response = client.post(
        reverse("campaigns:template_design_new"),
        {"name": "Designed", "kind": "marketing", "language": "en", "subject": "News", "mjml": mjml(TEXT)},
    )
    assert response.status_code == 302
    with tenant_context(tenant_a):
        content = TemplateContent.objects.get(template__name="Designed")
    frame = client.get(reverse("campaigns:template_preview_frame", args=[content.template_id]))
    assert frame.status_code == 200
    assert "sandbox" in frame["Content-Security-Policy"]
    assert "Hello Synthetic" in frame.content.decode()
    bad = client.post(
        reverse("campaigns:template_design", args=[content.template_id]),
        {"language": "en", "subject": "News", "mjml": "<mjml><mj-body><mj-section>"},
    )
    assert bad.status_code == 400
    assert "could not be rendered" in bad.content.decode()


def test_foreign_and_missing_templates_answer_404(member_client, tenant_a, tenant_b):
    other = person(tenant_b, Role.MARKETER)
    theirs = template(tenant_b, other.actor, name="Theirs")
    client = member_client(Role.MARKETER)
    for name in ("campaigns:template_design", "campaigns:template_preview_frame"):
        for template_id in (theirs.pk, uuid.uuid4()):
            assert client.get(reverse(name, args=[template_id])).status_code == 404, name
    response = client.post(
        reverse("campaigns:template_design", args=[theirs.pk]),
        {"language": "en", "subject": "Mine now", "mjml": mjml(TEXT)},
    )
    assert response.status_code == 404
    with tenant_context(tenant_b):
        assert TemplateContent.objects.get(template=theirs).subject != "Mine now"
