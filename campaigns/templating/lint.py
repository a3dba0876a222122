"""Compliance lint. Runs on every save; errors block submission, warnings inform the reviewers.

Template rules look at each language's parts; message rules add what depends on the campaign or
API call (purpose, encryption policy, the CAN-SPAM footer as it will really be rendered).
Where a merge field lands in the HTML (a link, an alt text) is found by rendering the template
with a unique marker for every personal field — once with markers (true branches) and once with
empty values (false branches) — and looking for the markers in the output.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from django.urls import Resolver404, resolve

from . import accessibility
from . import html as mail_html
from .fields import FieldSet, nest
from .render import HEADER_UNSAFE, Branding, Footer, Parts, footer_html
from .sandbox import Analysis, RenderError, analyze, render_string

ERROR, WARNING = "error", "warning"

# Every rule: its code, severity and what it protects. The template editor lists these.
RULES: dict[str, tuple[str, str]] = {
    "syntax_error": (ERROR, "The template must parse."),
    "unknown_merge_field": (ERROR, "Only whitelisted merge fields may be used."),
    "disallowed_expression": (ERROR, "Templates may read merge fields only (no code, no attribute tricks)."),
    "disallowed_filter": (ERROR, "Only the listed filters and tests are available."),
    "unknown_block": (ERROR, "Included blocks must exist."),
    "too_long": (ERROR, "A part is too long."),
    "literal_too_long": (ERROR, "Quoted text inside a tag is too long."),
    "output_too_large": (ERROR, "A template may not grow past the size limit when rendered."),
    "subject_missing": (ERROR, "Every language needs a subject."),
    "html_missing": (ERROR, "Every language needs an HTML body."),
    "header_injection": (ERROR, "No line breaks in the subject, preheader or sender name."),
    "phi_in_subject": (ERROR, "No PHI in the subject: it shows on lock screens and in inbox lists."),
    "phi_in_preheader": (ERROR, "No PHI in the preheader: it shows next to the subject."),
    "phi_in_link": (ERROR, "No PHI in link or image URLs: URLs end up in logs and proxies."),
    "phi_in_alt": (ERROR, "No PHI in alt or title texts: clients show them when images are blocked."),
    "insecure_link": (ERROR, "Links and images must use HTTPS."),
    "image_missing_alt": (ERROR, "Every image needs an alt text (empty for decorative images)."),
    "low_contrast": (ERROR, "Text must reach 4.5:1 against its background (3:1 when large), WCAG 1.4.3."),
    "link_text_missing": (
        ERROR,
        "Every link needs text, or an image with alt text, that names it (WCAG 2.4.4).",
    ),
    "link_text_vague": (
        WARNING,
        "Link text should make sense alone: not “click here” or a bare URL (WCAG 2.4.4).",
    ),
    "styled_heading": (WARNING, "Headings should be real <h1> to <h3>, not large text (WCAG 1.3.1)."),
    "heading_order": (WARNING, "Heading levels should not skip (an <h3> after an <h1>), WCAG 1.3.1."),
    "brand_contrast": (ERROR, "The brand colours must keep text readable: 4.5:1 (WCAG 1.4.3)."),
    "mail_language": (ERROR, "The message states its language and direction (<html lang dir>), WCAG 3.1.1."),
    "multiple_primary_cta": (WARNING, "More than one primary call to action dilutes the message."),
    "missing_text_part": (WARNING, "No text part: one is generated from the HTML — review it."),
    "identifier_in_subject": (WARNING, "A name in the subject is visible to anyone who sees the screen."),
    "phi_with_unencrypted_fallback": (ERROR, "PHI needs an encryption policy without a plaintext fallback."),
    "canspam_sender_identity": (ERROR, "Commercial email must identify the sender."),
    "canspam_postal_address": (ERROR, "Commercial email must carry the sender's postal address."),
    "canspam_unsubscribe": (ERROR, "Commercial email must carry a working unsubscribe link."),
    "minimum_necessary": (WARNING, "PHI used that the message's purpose does not need."),
    "topic_required": (ERROR, "Marketing email names the topic people opted in to."),
    "segment_required": (ERROR, "Choose an audience."),
    "template_required": (ERROR, "Choose a template."),
    "sender_domain_unverified": (WARNING, "The sender domain must be verified before launch."),
    "purpose_mismatch": (ERROR, "The template's kind does not fit the message purpose."),
}

# The PHI each purpose may need (minimum necessary, 45 CFR 164.502(b)). Treatment notices may name
# the provider and the visit; nothing commercial needs clinical details or a birth date.
NEEDED_BY_PURPOSE: dict[str, frozenset[str]] = {
    "treatment": frozenset({"contact.provider", "contact.last_visit"}),
    "operations": frozenset({"contact.provider", "contact.last_visit"}),
    "payment": frozenset({"contact.last_visit"}),
}
COMMERCIAL_PURPOSES = frozenset({"marketing", "fundraising", "research"})


@dataclass(frozen=True)
class Finding:
    code: str
    message: str
    where: str = ""
    line: int | None = None
    column: int | None = None

    @property
    def severity(self) -> str:
        return RULES[self.code][0]

    def as_dict(self) -> dict:
        return {**asdict(self), "severity": self.severity}


@dataclass
class TemplateLint:
    findings: list[Finding] = field(default_factory=list)
    fields: set[str] = field(default_factory=set)
    phi_fields: set[str] = field(default_factory=set)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]

    def as_dict(self) -> dict:
        return {
            "findings": [f.as_dict() for f in self.findings],
            "fields": sorted(self.fields),
            "phi_fields": sorted(self.phi_fields),
        }


def findings_from_dicts(items: list[dict]) -> list[Finding]:
    return [
        Finding(i["code"], i["message"], i.get("where", ""), i.get("line"), i.get("column")) for i in items
    ]


def _where(part: str, language: str, multi: bool) -> str:
    return f"{part} ({language})" if multi else part


def _problems(analysis: Analysis, where: str) -> list[Finding]:
    return [Finding(p.code, p.message, where, p.line, p.column) for p in analysis.problems]


def _marker(index: int) -> str:
    return f"zqmf{index}x"  # survives upper/lower/title (matched case-insensitively)


def _marked_html(parts: Parts, used: set[str], field_set: FieldSet, blocks: Mapping[str, str]):
    """The HTML rendered a few times with markers for personal fields, and which marker is which."""
    # The analysis names known fields only (an unknown one is a problem, and no HTML is inspected).
    known = {name: f for name in used if (f := field_set.get(name)) is not None}
    personal = sorted(name for name, f in known.items() if f.personal)
    markers = {name: _marker(i) for i, name in enumerate(personal)}
    outputs = []
    # Three passes reach most branches: every field filled; only PHI fields filled (conditions on
    # other fields false); nothing filled.
    for filled in ("all", "phi", "none"):
        values = {}
        for name, merge_field in known.items():
            keep = filled == "all" or (filled == "phi" and merge_field.phi)
            values[name] = (markers.get(name) or merge_field.sample) if keep else ""
        try:
            outputs.append(render_string(parts.html, nest(values), blocks=blocks))
        except RenderError:
            continue
    return outputs, markers


# accessibility.Problem codes -> lint rule codes, where they differ.
_ACCESSIBILITY_CODES = {"link_text": "link_text_vague"}


def _accessibility_code(problem: accessibility.Problem) -> str:
    if problem.code == "link_text" and "has no text" in problem.message:
        return "link_text_missing"
    return _ACCESSIBILITY_CODES.get(problem.code, problem.code)


def _html_findings(parts: Parts, used: set[str], field_set: FieldSet, blocks, where: str) -> list[Finding]:
    outputs, markers = _marked_html(parts, used, field_set, blocks)
    found: dict[tuple[str, str], Finding] = {}

    def add(code: str, message: str) -> None:
        found.setdefault((code, message), Finding(code, message, where))

    phi_markers = {m: n for n, m in markers.items() if (f := field_set.get(n)) is not None and f.phi}
    for output in outputs:
        inspection = mail_html.inspect(output)
        lowered = [(tag, attr, value.lower()) for tag, attr, value in inspection.attribute_values]
        for tag, attr, value in lowered:
            for marker, name in phi_markers.items():
                if marker in value:
                    if attr in ("href", "src"):
                        add("phi_in_link", f"The PHI field “{name}” is used in a URL (<{tag} {attr}>).")
                    elif attr in ("alt", "title"):
                        add("phi_in_alt", f"The PHI field “{name}” is used in an {attr} text.")
            if attr in ("href", "src") and (value.startswith("http://") or value.startswith("//")):
                add("insecure_link", f"Use https:// instead of “{value[:60]}”.")
        for image in inspection.images:
            if image["alt"] is None:
                add("image_missing_alt", f"The image “{image['src'][:60]}” has no alt text.")
        for problem in accessibility.check_html(output, document=False):
            add(_accessibility_code(problem), problem.message)
        if len(set(inspection.cta_links)) > 1:
            add(
                "multiple_primary_cta",
                f"{len(set(inspection.cta_links))} different buttons: keep one primary call to action.",
            )
    return list(found.values())


def lint_template(
    *, contents: Mapping[str, Parts], blocks: Mapping[str, str], field_set: FieldSet
) -> TemplateLint:
    result = TemplateLint()
    multi = len(contents) > 1
    for language, parts in contents.items():
        analyses = {}
        for part in ("subject", "preheader", "html", "text"):
            where = _where(part.capitalize() if part != "html" else "HTML", language, multi)
            analysis = analyze(getattr(parts, part), field_set=field_set, blocks=blocks)
            analyses[part] = analysis
            result.findings.extend(_problems(analysis, where))
            result.fields |= analysis.fields
        if not parts.subject.strip():
            result.findings.append(
                Finding("subject_missing", "Write a subject.", _where("Subject", language, multi))
            )
        if not parts.html.strip():
            result.findings.append(
                Finding("html_missing", "Write the HTML body.", _where("HTML", language, multi))
            )
        for part in ("subject", "preheader"):
            if HEADER_UNSAFE.search(getattr(parts, part)):
                result.findings.append(
                    Finding(
                        "header_injection",
                        f"The {part} contains a line break.",
                        _where(part.capitalize(), language, multi),
                    )
                )
            for name in sorted(analyses[part].fields):
                merge_field = field_set.get(name)
                if merge_field is not None and merge_field.phi:
                    result.findings.append(
                        Finding(
                            f"phi_in_{part}",
                            f"The PHI field “{name}” is used in the {part}.",
                            _where(part.capitalize(), language, multi),
                        )
                    )
                elif part == "subject" and merge_field is not None and merge_field.personal:
                    result.findings.append(
                        Finding(
                            "identifier_in_subject",
                            f"“{name}” is shown in the subject.",
                            _where("Subject", language, multi),
                        )
                    )
        if not parts.text.strip():
            result.findings.append(
                Finding(
                    "missing_text_part",
                    "No text part: one is generated from the HTML.",
                    _where("Text", language, multi),
                )
            )
        if not analyses["html"].problems and parts.html.strip():
            used = analyses["html"].fields
            result.findings.extend(
                _html_findings(parts, used, field_set, blocks, _where("HTML", language, multi))
            )
    result.phi_fields = {n for n in result.fields if (f := field_set.get(n)) is not None and f.phi}
    return result


@dataclass(frozen=True)
class MessageFacts:
    """What the message-level rules need to know about a campaign or an API message."""

    purpose: str
    encryption_policy: str
    uses_phi: bool  # the audience or the content uses PHI
    phi_fields: frozenset[str]
    sender_name: str
    branding: Branding
    footer: Footer
    has_topic: bool = True


def _unsubscribe_works(url: str) -> bool:
    try:
        match = resolve(urlsplit(url).path)
    except Resolver404:
        return False
    return match.view_name == "consent_public:unsubscribe"


def lint_message(facts: MessageFacts) -> list[Finding]:
    findings: list[Finding] = []
    if facts.uses_phi and facts.encryption_policy == "opportunistic":
        findings.append(
            Finding(
                "phi_with_unencrypted_fallback",
                "This message uses PHI, but opportunistic TLS may deliver it unencrypted: choose "
                "“verified TLS, else secure portal”, “portal always” or “verified TLS, else fail”.",
                "Encryption policy",
            )
        )
    if HEADER_UNSAFE.search(facts.sender_name):
        findings.append(Finding("header_injection", "The sender name contains a line break.", "Sender name"))
    for problem in accessibility.brand_problems(
        primary=facts.branding.primary_color, text=facts.branding.text_color
    ):
        findings.append(Finding(problem.code, problem.message, "Branding"))
    needed = NEEDED_BY_PURPOSE.get(facts.purpose, frozenset())
    for name in sorted(facts.phi_fields - needed):
        findings.append(
            Finding(
                "minimum_necessary",
                f"“{name}” is PHI that a {facts.purpose} message does not need.",
                "Merge fields",
            )
        )
    if facts.purpose in COMMERCIAL_PURPOSES:
        if not facts.has_topic and facts.purpose == "marketing":
            findings.append(Finding("topic_required", "Choose the topic people opted in to.", "Topic"))
        if not facts.sender_name.strip():
            findings.append(Finding("canspam_sender_identity", "Give a sender name.", "Sender name"))
        if not facts.footer.postal_address.strip():
            findings.append(
                Finding(
                    "canspam_postal_address", "The organization has no postal address (Settings).", "Footer"
                )
            )
        footer = mail_html.inspect(footer_html(facts.footer, facts.branding))
        if not any(text == "Unsubscribe" and _unsubscribe_works(href) for href, text in footer.links):
            findings.append(Finding("canspam_unsubscribe", "The unsubscribe link does not work.", "Footer"))
    return findings


def errors_in(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == ERROR]


_SPACES = re.compile(r"\s+")


def summary(findings: list[Finding]) -> str:
    errors = len(errors_in(findings))
    warnings = len(findings) - errors
    return _SPACES.sub(
        " ", f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}"
    )
