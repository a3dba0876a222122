"""Links inside a message read in the portal. The sender's HTML runs in a sandboxed frame (no scripts,
no forms), where a followed link would load inside the frame and most sites (ours included) refuse
to be framed: every web link is rewritten to open in a new tab through our redirect, which checks
that the reader is verified and that the link is one of the message's own (never an open
redirect), and keeps the portal link out of the Referer header."""

from __future__ import annotations

import html as html_lib
import re

from django.urls import reverse

from ..tracking.services import _ANCHOR_HREF

_OPENABLE = ("http://", "https://")
_NEW_TAB = '<a target="_blank" rel="noopener noreferrer"'


def _url(match: re.Match) -> str:
    return html_lib.unescape(match.group(3)).strip()


def portal_link_target(*, html: str, index: int) -> str | None:
    """The web address of the message's link number `index` (in document order), else None."""
    for position, match in enumerate(_ANCHOR_HREF.finditer(html or "")):
        if position == index:
            url = _url(match)
            return url if url.lower().startswith(_OPENABLE) else None
    return None


def portal_frame_html(*, html: str, token: str) -> str:
    """The message's HTML for the frame: web links through our redirect, every link in a new tab.
    Our attributes come first in the tag, so a sender's own `target` cannot override them."""
    counter = iter(range(1_000_000))

    def rewrite(match: re.Match) -> str:
        position = next(counter)
        rest = match.group(1)[2:]  # after "<a"
        url = _url(match)
        if url.lower().startswith(_OPENABLE):
            url = reverse("portal:link", args=[token, position])
        quote = match.group(2)
        return f"{_NEW_TAB}{rest}{quote}{html_lib.escape(url)}{quote}"

    return '<base target="_blank">' + _ANCHOR_HREF.sub(rewrite, html or "")
