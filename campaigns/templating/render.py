"""One message from a template: merge fields through the sandbox, HTML sanitized and inlined, the
tenant's branding around it, and the footer appended last — after sanitizing, outside anything the
template controls — so a template can neither remove nor restyle it (CAN-SPAM, 15 U.S.C. 7704)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from delivery.smtp.message import FORBIDDEN

from . import html as mail_html
from .accessibility import text_direction
from .limits import render_limits
from .sandbox import RenderError, render_string

# Exactly what delivery's header validation refuses (CR, LF, NUL, other controls, Unicode line
# separators): refused when a sender name or subject is saved, so no campaign fails at send time.
HEADER_UNSAFE = FORBIDDEN
FOOTER_MARK = "data-hm-footer"


@dataclass(frozen=True)
class Parts:
    """One language of a template, as authored."""

    subject: str
    preheader: str
    html: str
    text: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"subject": self.subject, "preheader": self.preheader, "html": self.html, "text": self.text}


@dataclass(frozen=True)
class Branding:
    sender_name: str
    logo_url: str = ""
    primary_color: str = "#1d4e89"
    background_color: str = "#f4f6f8"
    text_color: str = "#1f2933"
    footer_text: str = ""


@dataclass(frozen=True)
class Footer:
    """What every message ends with. Commercial mail (marketing, fundraising, research invitations)
    carries the opt-out; transactional mail the sender identity and address only."""

    sender_identity: str
    postal_address: str
    commercial: bool
    unsubscribe_url: str = ""
    preferences_url: str = ""
    topic_name: str = ""


@dataclass(frozen=True)
class Rendered:
    subject: str
    preheader: str
    html: str
    text: str


def choose_language(available: list[str] | tuple[str, ...], preferred: str, default: str) -> str:
    """The contact's language, else its primary subtag (es-MX -> es), else the template default."""
    preferred = (preferred or "").lower()
    if preferred in available:
        return preferred
    primary = preferred.split("-")[0]
    if primary in available:
        return primary
    return default if default in available else available[0]


def header_safe(value: str) -> str:
    """No line break or control character reaches a header, whatever a merge value holds (CVE-2024-6923)."""
    return HEADER_UNSAFE.sub(" ", value).strip()


def footer_html(footer: Footer, branding: Branding) -> str:
    e = mail_html.escape
    lines = [f"<strong>{e(footer.sender_identity)}</strong>", e(footer.postal_address).replace("\n", "<br>")]
    if branding.footer_text:
        lines.append(e(branding.footer_text))
    if footer.commercial:
        why = (
            f" You receive this email because you opted in to “{e(footer.topic_name)}”."
            if footer.topic_name
            else ""
        )
        lines.append(
            f'{why.strip()} <a href="{e(footer.unsubscribe_url)}" style="color:#555555">Unsubscribe</a>'
            f' · <a href="{e(footer.preferences_url)}" style="color:#555555">Email preferences</a>'.strip()
        )
    body = "<br>".join(line for line in lines if line)
    return (
        f'<div {FOOTER_MARK}="1" style="font-size:12px;line-height:18px;color:#555555;'
        f'font-family:Arial,sans-serif">{body}</div>'
    )


def footer_text(footer: Footer, branding: Branding) -> str:
    lines = ["--", footer.sender_identity, footer.postal_address]
    if branding.footer_text:
        lines.append(branding.footer_text)
    if footer.commercial:
        if footer.topic_name:
            lines.append(f"You receive this email because you opted in to “{footer.topic_name}”.")
        lines.append(f"Unsubscribe: {footer.unsubscribe_url}")
        lines.append(f"Email preferences: {footer.preferences_url}")
    return "\n".join(line for line in lines if line)


_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


def _color(value: str, default: str) -> str:
    """Colours reach a style attribute: only #rrggbb passes, whatever was stored."""
    return value if _COLOR.match(value or "") else default


def layout(
    *,
    body: str,
    subject: str,
    preheader: str,
    branding: Branding,
    footer: Footer,
    head_css: str = "",
    language: str = "en",
) -> str:
    """The message around the template's body. It states the template language's code and direction
    so screen readers pronounce it right and right-to-left text lays out right (WCAG 3.1.1, 1.3.2)."""
    e = mail_html.escape
    background = _color(branding.background_color, "#f4f6f8")
    primary = _color(branding.primary_color, "#1d4e89")
    text = _color(branding.text_color, "#1f2933")
    name = e(branding.sender_name)
    if branding.logo_url.startswith("https://"):
        logo = f'<img src="{e(branding.logo_url)}" alt="{name}" height="40" style="height:40px;border:0">'
    else:
        logo = f'<span style="color:#ffffff;font-size:20px;font-weight:bold">{name}</span>'
    hidden = ""
    if preheader:
        hidden = f'<div style="display:none;max-height:0;overflow:hidden;mso-hide:all">{e(preheader)}</div>'
    return (
        f'<!doctype html><html lang="{e(language)}" dir="{text_direction(language)}">'
        '<head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(subject)}</title>{_style(head_css)}</head>"
        f'<body style="margin:0;padding:0;background-color:{background}">{hidden}'
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" '
        f'style="background-color:{background}"><tr><td align="center" style="padding:16px 8px">'
        '<table role="presentation" width="600" cellpadding="0" cellspacing="0" '
        'style="width:100%;max-width:600px;background-color:#ffffff">'
        f'<tr><td style="padding:16px 24px;background-color:{primary}">{logo}</td></tr>'
        f'<tr><td style="padding:24px;color:{text};font-family:Arial,sans-serif;'
        f'font-size:16px;line-height:24px">{body}</td></tr>'
        '<tr><td style="padding:16px 24px;border-top:1px solid #e5e7eb">'
        f"{footer_html(footer, branding)}</td></tr>"
        "</table></td></tr></table></body></html>"
    )


def _style(css: str) -> str:
    # Only ever CSS written by mail_html.responsive_css (never a template's): no "</" can occur in it.
    return f'<style type="text/css">{css}</style>' if css else ""


def render_parts(
    parts: Parts,
    *,
    context: Mapping,
    blocks: Mapping[str, str] | None,
    branding: Branding,
    footer: Footer,
    subject_override: str = "",
    language: str = "en",
) -> Rendered:
    """Render one language (`language`, a template language code) of a template for one recipient
    (or a synthetic one)."""
    subject_source = subject_override or parts.subject
    subject = header_safe(render_string(subject_source, context, blocks=blocks, autoescape=False))
    preheader = header_safe(render_string(parts.preheader, context, blocks=blocks, autoescape=False))
    body = mail_html.sanitize(render_string(parts.html, context, blocks=blocks))
    if parts.text.strip():
        text = render_string(parts.text, context, blocks=blocks, autoescape=False).strip()
    else:
        text = mail_html.html_to_text(body)
    rendered = Rendered(
        subject=subject,
        preheader=preheader,
        html=layout(
            body=body,
            subject=subject,
            preheader=preheader,
            branding=branding,
            footer=footer,
            head_css=mail_html.responsive_css(body),
            language=language,
        ),
        text=f"{text}\n\n{footer_text(footer, branding)}\n",
    )
    limit = render_limits().message_chars
    if sum(map(len, (rendered.subject, rendered.preheader, rendered.html, rendered.text))) > limit:
        raise RenderError(f"The rendered message would be longer than {limit:,} characters, the limit.")
    return rendered
