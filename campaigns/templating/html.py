"""HTML for mail clients: CSS inlined (css-inline), then sanitized (nh3) to a mail-safe subset;
a plain-text part derived from it when the template has none; and the small HTML inspection the
compliance lint needs (links, images, calls to action)."""

from __future__ import annotations

import html as html_lib
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

import css_inline
import nh3

TAGS = frozenset(
    {
        *("a", "abbr", "b", "blockquote", "br", "center", "code", "div", "em", "font", "hr", "i", "img"),
        *("h1", "h2", "h3", "h4", "h5", "h6", "li", "ol", "p", "pre", "s", "small", "span", "strong"),
        *("sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul", "caption"),
    }
)
_COMMON = {"style", "class", "align", "dir", "lang", "role", "title", "width", "height", "bgcolor", "valign"}
ATTRIBUTES = {
    "*": _COMMON,
    "a": {"href", "target", "data-cta"},
    "img": {"src", "alt", "border"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "table": {"cellpadding", "cellspacing", "border"},
    "font": {"color", "face", "size"},
}
# Plain http is refused by the lint; here it is simply dropped (defense in depth).
URL_SCHEMES = frozenset({"https", "mailto", "tel"})
STYLE_PROPERTIES = frozenset(
    {
        *("background", "background-color", "border", "border-bottom", "border-collapse", "border-color"),
        *("border-left", "border-radius", "border-right", "border-spacing", "border-style", "border-top"),
        *("border-width", "color", "display", "font", "font-family", "font-size", "font-style"),
        *("font-weight", "height", "letter-spacing", "line-height", "margin", "margin-bottom"),
        *("margin-left", "margin-right", "margin-top", "max-width", "min-width", "padding"),
        *("padding-bottom", "padding-left", "padding-right", "padding-top", "text-align"),
        *("text-decoration", "text-transform", "vertical-align", "white-space", "width"),
    }
)


# Never fetch a stylesheet a template links to: rendering must not reach out to the network.
_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False, keep_style_tags=False, keep_link_tags=False)


def sanitize(html: str) -> str:
    """Inline the template's own <style> rules, then keep only mail-safe tags, attributes, URL
    schemes and style properties. Scripts, forms, iframes, event handlers and comments go."""
    inlined = _INLINER.inline(html)  # a whole document; the <html>/<body> wrappers are dropped below
    return nh3.clean(
        inlined,
        tags=set(TAGS),
        clean_content_tags={"script", "style", "title", "head"},
        attributes={tag: set(names) for tag, names in ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        filter_style_properties=set(STYLE_PROPERTIES),
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


# MJML columns are mobile-first (full width); the desktop widths come from a media query on class
# names like mj-column-per-50. The template's own <style> never survives sanitizing, so the rules are
# written here from the class names alone — numbers only, nothing of the template's CSS is copied.
_COLUMN_CLASS = re.compile(r"\bmj-column-(per|px)-(\d{1,3}(?:-\d{1,20})?)\b")


def responsive_css(body: str) -> str:
    """The desktop column widths for the MJML column classes used in a sanitized body ("" if none)."""
    rules = []
    for kind, number in sorted(set(_COLUMN_CLASS.findall(body))):
        width = number.replace("-", ".") + ("%" if kind == "per" else "px")
        rules.append(f".mj-column-{kind}-{number} {{ width:{width} !important; max-width:{width}; }}")
    if not rules:
        return ""
    return "@media only screen and (min-width:480px) { " + " ".join(rules) + " }"


# --- The generated text part --------------------------------------------------------------------

_BLOCKS = frozenset(
    {"p", "div", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "blockquote", "hr"}
)


class _TextWriter(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.links: list[str | None] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in ("script", "style", "head", "title"):
            self.skip += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCKS:
            self.parts.append("\n\n")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag == "td":
            self.parts.append(" ")
        elif tag == "a":
            self.links.append(attributes.get("href"))
        elif tag == "img" and attributes.get("alt"):
            self.parts.append(f"[{attributes['alt']}]")

    def handle_endtag(self, tag):
        if tag in ("script", "style", "head", "title"):
            self.skip = max(0, self.skip - 1)
        elif tag == "a" and self.links:
            href = self.links.pop()
            if href and not href.startswith("mailto:"):
                self.parts.append(f" ({href}) ")
        elif tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    writer = _TextWriter()
    writer.feed(html)
    writer.close()
    text = "".join(writer.parts)
    lines = [line.strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# --- Inspection for the lint ----------------------------------------------------------------------


@dataclass
class Inspection:
    links: list[tuple[str, str]] = field(default_factory=list)  # (href, link text)
    cta_links: list[str] = field(default_factory=list)  # hrefs of links styled as buttons
    images: list[dict[str, str]] = field(default_factory=list)  # src, alt (None when missing)
    attribute_values: list[tuple[str, str, str]] = field(default_factory=list)  # (tag, attribute, value)


_CTA_CLASS = re.compile(r"\b(button|btn|cta)\b", re.IGNORECASE)


class _Inspector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.result = Inspection()
        self.open_link: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = {name: value or "" for name, value in attrs}
        for name, value in attributes.items():
            self.result.attribute_values.append((tag, name, value))
        if tag == "a" and "href" in attributes:
            href = attributes["href"].strip()
            self.open_link = [href, ""]
            is_cta = attributes.get("data-cta", "").lower() == "primary" or _CTA_CLASS.search(
                attributes.get("class", "")
            )
            if is_cta or attributes.get("role") == "button":
                self.result.cta_links.append(href)
        elif tag == "img":
            alt = dict(attrs).get("alt")
            self.result.images.append({"src": attributes.get("src", ""), "alt": alt})

    def handle_data(self, data):
        if self.open_link is not None:
            self.open_link[1] += data

    def handle_endtag(self, tag):
        if tag == "a" and self.open_link is not None:
            self.result.links.append((self.open_link[0], self.open_link[1].strip()))
            self.open_link = None


def inspect(html: str) -> Inspection:
    inspector = _Inspector()
    inspector.feed(html)
    inspector.close()
    return inspector.result


def escape(value: str) -> str:
    return html_lib.escape(value, quote=True)
