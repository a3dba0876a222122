"""MJML from the block editor, rendered to HTML on the server with mrml (the Rust port of MJML).

The editor sends MJML; we render it here and store the HTML as the template's body, so the Jinja2
sandbox, the sanitizer and the compliance lint stay the single path every message takes. Merge
fields written as `{{ contact.first_name }}` pass through mrml untouched and are resolved later by
the sandbox like in any other template.

Rendering reaches out to nothing: includes (`mj-include`) are refused and no web font is linked
(mrml would otherwise add Google Fonts links for Ubuntu, Roboto and the like).

The compliance footer the editor shows is a locked placeholder section (class FOOTER_CLASS); it is
removed here whatever it holds, because the real footer is appended by render.layout() to every
message, outside anything the template controls.
"""

from __future__ import annotations

import re

import mrml

MAX_MJML_CHARS = 200_000
FOOTER_CLASS = "hm-compliance-footer"

_PLACEHOLDER_FOOTER = re.compile(
    r"<mj-section\b[^>]*\bcss-class\s*=\s*\"[^\"]*\b" + FOOTER_CLASS + r"\b[^\"]*\"[^>]*>.*?</mj-section\s*>",
    re.DOTALL | re.IGNORECASE,
)
_INCLUDE = re.compile(r"<mj-include\b", re.IGNORECASE)


class MjmlError(ValueError):
    """The MJML cannot be rendered; the message says why, for the person editing."""


def without_footer_placeholder(source: str) -> str:
    return _PLACEHOLDER_FOOTER.sub("", source)


def mjml_render(source: str) -> str:
    """MJML -> HTML. Raises MjmlError for empty, oversized or unparsable input and for includes."""
    source = (source or "").strip()
    if not source:
        raise MjmlError("The email is empty: add at least one section.")
    if len(source) > MAX_MJML_CHARS:
        raise MjmlError(f"The email is longer than {MAX_MJML_CHARS:,} characters of MJML, the limit.")
    if _INCLUDE.search(source):
        raise MjmlError("mj-include is not available: build the email from the editor's sections.")
    source = without_footer_placeholder(source)
    try:
        output = mrml.to_html(
            source,
            parser_options=mrml.ParserOptions(include_loader=mrml.noop_loader()),
            render_options=mrml.RenderOptions(disable_comments=True, fonts={}),
        )
    except Exception as error:
        raise MjmlError(f"The email's MJML could not be rendered: {error}") from error
    return output.content
