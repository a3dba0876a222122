"""Accessibility of what we send (campaigns/templating/accessibility.py and the compliance lint):
language and direction, alt text, real headings, link text, contrast on brand colours, a text part;
the portal notices and system mails pass."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from campaigns.templating import accessibility
from campaigns.templating import lint as linting
from campaigns.templating.render import Branding, Footer, Parts, render_parts
from delivery.portal import services as portal_services
from healthmail.sysmail.services import system_mail_queue
from tests.factories import TenantFactory, UserFactory

from .conftest import GOOD_HTML
from .test_lint import _facts, codes


def problems(html: str, *, document: bool = False) -> set[str]:
    return {p.code for p in accessibility.check_html(html, document=document)}


def test_contrast_ratio_matches_wcag_examples():
    assert accessibility.contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert accessibility.contrast_ratio("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
    assert accessibility.contrast_ratio("#767676", "#ffffff") >= 4.5  # the lightest grey that passes
    assert accessibility.parse_colour("#FFF") == "#ffffff"
    assert accessibility.parse_colour("rgb(0, 0, 255)") == "#0000ff"
    assert accessibility.parse_colour("url(x)") is None


@pytest.mark.parametrize(
    ("html", "code"),
    [
        ('<p><a href="https://c.example/x">click here</a></p>', "link_text"),
        ('<p><a href="https://c.example/x">Read more…</a></p>', "link_text"),
        ('<p><a href="https://c.example/x">https://c.example/x</a></p>', "link_text"),
        ('<p><a href="https://c.example/x"><img src="https://c.example/i.png"></a></p>', "link_text"),
        ('<p style="font-size:28px;font-weight:bold">Flu shots are here</p>', "styled_heading"),
        ("<h1>Title</h1><h3>Skipped a level</h3>", "heading_order"),
        ('<p style="color:#999999">Light grey on white</p>', "low_contrast"),
        (
            '<td style="background-color:#1d4e89"><span style="color:#333333">Dark on blue</span></td>',
            "low_contrast",
        ),
    ],
)
def test_each_mail_check_finds_its_problem(html, code):
    assert code in problems(html)


def test_accessible_markup_passes():
    assert problems(GOOD_HTML) == set()
    assert (
        problems(
            '<p><a href="https://c.example/x"><img src="https://c.example/i.png" alt="Book a visit"></a></p>'
        )
        == set()
    )
    # Large text needs 3:1 only: #949494 on white is 3.0:1.
    assert "low_contrast" not in problems('<h2 style="color:#949494;font-size:24px">Big</h2>')
    assert "low_contrast" in problems('<p style="color:#949494;font-size:16px">Small</p>')


def test_a_whole_message_states_language_and_direction():
    assert "mail_language" in problems("<html><body><p>Hi</p></body></html>", document=True)
    assert "mail_language" in problems('<html lang="en"><body><p>Hi</p></body></html>', document=True)
    assert problems('<html lang="en" dir="ltr"><body><p>Hi</p></body></html>', document=True) == set()
    assert accessibility.text_direction("ar") == accessibility.text_direction("he-IL") == "rtl"
    assert accessibility.text_direction("es-MX") == "ltr"


def test_the_lint_reports_them_with_their_severity():
    assert (
        codes(html=GOOD_HTML + '<p><a href="https://c.example/x">click here</a></p>')["link_text_vague"]
        == "warning"
    )
    assert codes(html=GOOD_HTML + '<p><a href="https://c.example/x"></a></p>')["link_text_missing"] == "error"
    assert codes(html=GOOD_HTML + '<p style="color:#aaaaaa">faint</p>')["low_contrast"] == "error"
    assert codes(html=GOOD_HTML + '<p style="font-size:30px">Big news</p>')["styled_heading"] == "warning"
    assert codes(html="<h1>A</h1><h4>B</h4>")["heading_order"] == "warning"
    assert codes(text="")["missing_text_part"] == "warning"


def test_brand_colours_that_make_text_unreadable_are_a_message_error():
    light = Branding("Clinic", primary_color="#7fb3ff")  # white on it: 2.1:1
    assert {f.code for f in linting.lint_message(_facts(branding=light))} == {"brand_contrast"}
    grey_text = Branding("Clinic", text_color="#a0a0a0")
    assert {f.code for f in linting.lint_message(_facts(branding=grey_text))} == {"brand_contrast"}
    assert linting.lint_message(_facts(branding=Branding("Clinic"))) == []


def _render(language: str, branding: Branding | None = None):
    parts = Parts("Flu shots", "", GOOD_HTML, "Flu shots are here.")
    footer = Footer("Clinic", "1 Main St\nSpringfield", False)
    context = {"contact": {"first_name": "Pat"}}
    return render_parts(
        parts,
        context=context,
        blocks={},
        branding=branding or Branding("Clinic"),
        footer=footer,
        language=language,
    )


def test_a_rendered_message_carries_the_template_language_and_passes():
    rendered = _render("es")
    assert '<html lang="es" dir="ltr">' in rendered.html
    assert accessibility.check_message(html=rendered.html, text=rendered.text) == []
    assert '<html lang="ar" dir="rtl">' in _render("ar").html


def test_the_layout_header_fails_with_a_light_brand_colour():
    rendered = _render("en", Branding("Clinic", primary_color="#7fb3ff"))
    assert "low_contrast" in {
        p.code for p in accessibility.check_message(html=rendered.html, text=rendered.text)
    }


@pytest.mark.django_db
def test_the_portal_notices_pass():
    tenant = TenantFactory(name="Springfield Clinic", postal_address="1 Main St\nSpringfield, IL 62701")
    url = "https://mail.example.org/p/portal/token/"
    notice = portal_services._notice(tenant, url, timezone.now() + datetime.timedelta(days=30))
    assert accessibility.check_message(html=notice.html, text=notice.text) == []
    commercial = portal_services.portal_notice_commercial(
        notice,
        tenant=tenant,
        subject="Spring newsletter",
        sender_identity="Springfield Clinic",
        unsubscribe_url="https://mail.example.org/p/unsubscribe/x/",
        preferences_url="https://mail.example.org/p/preferences/x/",
    )
    assert accessibility.check_message(html=commercial.html, text=commercial.text) == []


@pytest.mark.django_db
def test_system_mails_are_plain_text_and_pass():
    """System mail (staff notices) is sent as plain text only: nothing for a reader to trip on."""
    tenant = TenantFactory()
    [mail] = system_mail_queue(
        tenant=tenant,
        topic="tests.notice",
        subject="A hold was placed",
        body="A legal hold was placed.",
        users=[UserFactory()],
    )
    assert set(mail.content) == {"subject", "body"}
    assert accessibility.check_message(html=None, text=mail.content["body"]) == []
