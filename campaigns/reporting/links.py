"""Links of a campaign by label, never by URL: a URL can carry a patient's details (an appointment
id, a name in a query string), so reports name a link by what the template says about it.

The label of an anchor comes from the frozen template version, before any person's values are merged:
its `data-link-label` attribute, else its visible text with merge fields removed, else "Link N".
A clicked URL (TrackedUrl) is matched to the first anchor whose href, read as a pattern where each
merge field stands for any text, matches it whole. URLs no anchor explains are "Other links".
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Sequence
from dataclasses import dataclass

_ANCHOR = re.compile(r"<a\b([^>]*)>(.*?)</a\s*>", re.IGNORECASE | re.DOTALL)
_HREF = re.compile(r"""\bhref\s*=\s*(["'])(.*?)\1""", re.IGNORECASE | re.DOTALL)
_LABEL_ATTRIBUTE = re.compile(r"""\bdata-link-label\s*=\s*(["'])(.*?)\1""", re.IGNORECASE | re.DOTALL)
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
MAX_LABEL = 80
OTHER_LINKS = "Other links"


@dataclass(frozen=True)
class Anchor:
    label: str
    pattern: re.Pattern


def _readable(text: str) -> str:
    text = html_lib.unescape(_TAG.sub(" ", _JINJA.sub(" ", text)))
    return _SPACE.sub(" ", text).strip()[:MAX_LABEL]


def _pattern(href: str) -> re.Pattern:
    """The href with each merge field (any text) as a wildcard, static text matched literally."""
    href = html_lib.unescape(href).strip()
    parts = _JINJA.split(href)
    return re.compile(".*?".join(re.escape(part) for part in parts), re.DOTALL)


def template_anchors(htmls: list[str]) -> list[Anchor]:
    """The labelled anchors of a template's HTML (every language, then its blocks), in order; a
    label used twice gets its position added so two "Book now" links stay apart."""
    anchors: list[Anchor] = []
    seen: dict[str, int] = {}
    for html in htmls:
        for attributes, inner in _ANCHOR.findall(html or ""):
            href = _HREF.search(attributes)
            if href is None:
                continue
            named = _LABEL_ATTRIBUTE.search(attributes)
            label = _readable(named.group(2)) if named else _readable(inner)
            label = label or f"Link {len(anchors) + 1}"
            pattern = _pattern(href.group(2))
            if any(a.pattern.pattern == pattern.pattern and a.label.startswith(label) for a in anchors):
                continue  # the same link in another language or repeated: one row
            seen[label] = seen.get(label, 0) + 1
            if seen[label] > 1:
                label = f"{label} ({seen[label]})"
            anchors.append(Anchor(label, pattern))
    return anchors


def label_for(url: str, anchors: list[Anchor]) -> str:
    for anchor in anchors:
        if anchor.pattern.fullmatch(url):
            return anchor.label
    return OTHER_LINKS


def clicks_by_label(
    clicks: Sequence[tuple[int, object]], urls: dict[int, str], anchors: list[Anchor]
) -> list[dict]:
    """[{label, clicks, unique}] in the template's order, from the human clicks' (link id, message
    id) pairs and the links' URLs (read here, never returned). Unique: distinct messages per label,
    counted once even when a label gathers several URLs (personal links, "Other links")."""
    label_of = {link_id: label_for(url, anchors) for link_id, url in urls.items()}
    totals: dict[str, dict] = {a.label: {"label": a.label, "clicks": 0, "messages": set()} for a in anchors}
    for link_id, message_id in clicks:
        label = label_of.get(link_id, OTHER_LINKS)
        row = totals.setdefault(label, {"label": label, "clicks": 0, "messages": set()})
        row["clicks"] += 1
        if message_id is not None:
            row["messages"].add(message_id)
    return [
        {"label": r["label"], "clicks": r["clicks"], "unique": len(r["messages"])} for r in totals.values()
    ]
