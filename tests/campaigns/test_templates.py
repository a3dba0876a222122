"""Templates: sanitized and inlined HTML, generated text, languages with fallback, branding, blocks,
the footer no template can remove, and frozen versions."""

from __future__ import annotations

import pytest
from django.db import DatabaseError

from campaigns.models import TemplateVersion
from campaigns.services import previews
from campaigns.services import templates as services
from campaigns.services.common import CampaignError
from campaigns.templating import html as mail_html
from campaigns.templating.render import Branding, Footer, Parts, choose_language, render_parts
from healthmail.tenants.context import tenant_context

from .conftest import GOOD_HTML, template

pytestmark = pytest.mark.django_db

BRANDING = Branding(
    "Synthetic Clinic", logo_url="https://clinic.example.org/logo.png", primary_color="#aa0000"
)
FOOTER = Footer(
    "Synthetic Clinic", "1 Main St, Springfield", True, "https://x/p/unsub", "https://x/p/prefs", "News"
)


def _render(html: str, text: str = "") -> object:
    return render_parts(
        Parts("Subject", "", html, text),
        context={"contact": {"first_name": "Ana"}},
        blocks={},
        branding=BRANDING,
        footer=FOOTER,
    )


def test_html_is_sanitized_and_css_inlined():
    html = (
        "<style>p { color: #123456 } .x { position: fixed }</style>"
        '<p class="x" onclick="steal()">Hi {{ contact.first_name }}</p>'
        "<script>alert(1)</script><iframe src='https://evil.example.org'></iframe>"
        '<a href="javascript:alert(1)">bad</a><a href="http://plain.example.org">plain</a>'
        '<link rel="stylesheet" href="https://evil.example.org/x.css"><form action="https://x"><input></form>'
    )
    body = _render(html).html
    assert 'style="color: #123456' in body or "color:#123456" in body
    for forbidden in (
        "<script",
        "onclick",
        "<iframe",
        "javascript:",
        "http://plain",
        "position",
        "<form",
        "<link",
    ):
        assert forbidden not in body, forbidden


def test_text_part_is_generated_when_missing_and_kept_when_given():
    generated = _render('<h1>Title</h1><p>Go <a href="https://clinic.example.org/book">book</a></p>').text
    assert "Title" in generated
    assert "book (https://clinic.example.org/book)" in generated
    assert "Unsubscribe: https://x/p/unsub" in generated
    assert _render("<p>x</p>", text="Plain {{ contact.first_name }}").text.startswith("Plain Ana")


def test_footer_is_added_after_sanitizing_and_cannot_be_hidden():
    hostile = (
        "<style>[data-hm-footer] { display: none } div { display: none }</style>"
        "<div>content</div><!-- </td></tr></table> -->"
    )
    rendered = _render(hostile).html
    footer_start = rendered.index("data-hm-footer")
    footer = rendered[footer_start - 5 :]
    assert "display:none" not in footer.replace(" ", "")
    assert "1 Main St, Springfield" in footer
    assert 'href="https://x/p/unsub"' in footer
    assert "Email preferences" in footer


def test_branding_wraps_the_content():
    rendered = _render("<p>x</p>").html
    assert 'src="https://clinic.example.org/logo.png"' in rendered
    assert "#aa0000" in rendered


def test_language_choice_falls_back():
    assert choose_language(["en", "es"], "es-mx", "en") == "es"
    assert choose_language(["en", "es"], "vi", "en") == "en"
    assert choose_language(["es"], "", "en") == "es"


def test_branding_refuses_unsafe_values(tenant_a, team):
    actor = team["marketer"].actor
    with pytest.raises(CampaignError):
        services.branding_update(
            tenant=tenant_a, actor=actor, values={"primary_color": "red;background:url(x)"}
        )
    with pytest.raises(CampaignError):
        services.branding_update(
            tenant=tenant_a, actor=actor, values={"logo_url": "http://insecure.example.org/l.png"}
        )
    with pytest.raises(CampaignError):
        services.branding_update(tenant=tenant_a, actor=actor, values={"sender_name": "A\nBcc: x"})
    saved = services.branding_update(
        tenant=tenant_a, actor=actor, values={"sender_name": "Clinic", "primary_color": "#112233"}
    )
    assert services.branding_get(tenant=tenant_a).primary_color == "#112233" == saved.primary_color


def test_blocks_are_frozen_into_the_version(tenant_a, team):
    actor = team["marketer"].actor
    block = services.block_save(
        tenant=tenant_a, actor=actor, key="signature", name="Signature", html="<p>Your care team</p>"
    )
    with_block = template(tenant_a, actor, name="Signed", html=GOOD_HTML + '{% include "signature" %}')
    version = services.template_freeze(tenant=tenant_a, actor=actor, template=with_block)
    assert version.blocks == {"signature": "<p>Your care team</p>"}
    services.block_save(
        tenant=tenant_a, actor=actor, block=block, key="signature", name="Signature", html="<p>Changed</p>"
    )
    with tenant_context(tenant_a):
        version.refresh_from_db()
    assert version.blocks == {"signature": "<p>Your care team</p>"}  # what was approved stays
    again = services.template_freeze(tenant=tenant_a, actor=actor, template=with_block)
    assert again.number == 2
    assert again.blocks == {"signature": "<p>Changed</p>"}


def test_freezing_twice_without_changes_reuses_the_version_and_versions_are_immutable(tenant_a, team):
    actor = team["marketer"].actor
    saved = template(tenant_a, actor)
    first = services.template_freeze(tenant=tenant_a, actor=actor, template=saved)
    assert services.template_freeze(tenant=tenant_a, actor=actor, template=saved).pk == first.pk
    with tenant_context(tenant_a), pytest.raises(DatabaseError):
        TemplateVersion.objects.filter(pk=first.pk).update(contents={})


def test_templates_with_errors_cannot_be_frozen(tenant_a, team):
    actor = team["marketer"].actor
    bad = template(tenant_a, actor, name="Bad", html='<a href="http://x.example.org">x</a>')
    with pytest.raises(CampaignError, match="compliance error"):
        services.template_freeze(tenant=tenant_a, actor=actor, template=bad)


def test_preview_uses_a_synthetic_contact_in_the_chosen_language(tenant_a, team):
    actor = team["marketer"].actor
    saved = template(tenant_a, actor)
    services.template_update(
        tenant=tenant_a,
        actor=actor,
        template=saved,
        content=services.ContentInput("es", "Vacunas", "", "<p>Hola {{ contact.first_name }}</p>", "Hola"),
    )
    shown = previews.template_preview(tenant=tenant_a, template=saved, language="es")
    assert shown.language == "es"
    assert "Hola Synthetic" in shown.rendered.html
    assert tenant_a.postal_address in shown.rendered.html


def test_inspection_finds_links_images_and_buttons():
    found = mail_html.inspect(
        '<a class="btn primary" href="https://a">A</a><img src="https://i" alt=""><a href="https://b">B</a>'
    )
    assert found.cta_links == ["https://a"]
    assert found.images == [{"src": "https://i", "alt": ""}]
    assert found.links == [("https://a", "A"), ("https://b", "B")]
