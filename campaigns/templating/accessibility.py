"""Accessibility of what we send: WCAG 2.1 AA applied to email, the checks a screen-reader user or a
reader with low vision depends on. The compliance lint (lint.py) reports these as findings.

- the document states its language and direction (`<html lang dir>`, WCAG 3.1.1, 1.3.2);
- images have alt text (1.1.1; the lint's image_missing_alt);
- headings are real `<h1>` to `<h6>`, not big bold paragraphs, and do not skip levels (1.3.1);
- link text makes sense alone: no "click here", no bare URLs (2.4.4);
- text on a colour reaches 4.5:1 (3:1 when large) against its background (1.4.3);
- there is a plain-text part (clients and readers that show no HTML).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

# Link texts that say nothing about where they lead (2.4.4), compared lowercased without punctuation.
VAGUE_LINK_TEXTS = frozenset(
    {
        *("click here", "click", "here", "this", "this link", "link", "more", "read more", "learn more"),
        *("go", "details", "continue", "open", "see more", "find out more", "more info", "info"),
    }
)
RIGHT_TO_LEFT = frozenset({"ar", "arc", "dv", "fa", "ha", "he", "khw", "ks", "ku", "ps", "sd", "ur", "yi"})
LANGUAGE_TAG = re.compile(r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$")
MINIMUM_CONTRAST, LARGE_TEXT_CONTRAST = 4.5, 3.0
_NAMED = {"white": "#ffffff", "black": "#000000", "red": "#ff0000", "gray": "#808080", "grey": "#808080"}
_HEADING = re.compile(r"^h([1-6])$")
_PX = re.compile(r"^([\d.]+)px$")
_PT = re.compile(r"^([\d.]+)pt$")


def text_direction(language: str) -> str:
    """`rtl` for the right-to-left scripts' languages (primary subtag), else `ltr`."""
    return "rtl" if language.split("-")[0].lower() in RIGHT_TO_LEFT else "ltr"


def parse_colour(value: str) -> str | None:
    """#rgb, #rrggbb, rgb(r, g, b) or a few names, as #rrggbb; None for anything else."""
    value = value.strip().lower()
    if value in _NAMED:
        return _NAMED[value]
    if re.fullmatch(r"#[0-9a-f]{3}", value):
        return "#" + "".join(c * 2 for c in value[1:])
    if re.fullmatch(r"#[0-9a-f]{6}", value):
        return value
    match = re.fullmatch(r"rgb\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\)", value)
    if match and all(int(part) <= 255 for part in match.groups()):
        return "#" + "".join(f"{int(part):02x}" for part in match.groups())
    return None


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(foreground: str, background: str) -> float:
    """WCAG 2.1 contrast ratio of two #rrggbb colours, 1.0 to 21.0."""
    lighter, darker = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


@dataclass(frozen=True)
class Problem:
    code: str
    message: str


def _style(value: str) -> dict[str, str]:
    declarations = {}
    for declaration in value.split(";"):
        name, _, content = declaration.partition(":")
        if content:
            declarations[name.strip().lower()] = content.strip().lower()
    return declarations


def _font_px(value: str) -> float | None:
    if match := _PX.match(value):
        return float(match.group(1))
    if match := _PT.match(value):
        return float(match.group(1)) * 4 / 3
    return None


@dataclass
class _Box:
    tag: str
    colour: str | None
    background: str | None
    size: float | None
    bold: bool


# Blocks whose whole text, when large, reads as a heading; a large inline <span> (a sender name in a
# banner) does not.
_BLOCK_TAGS = ("p", "div", "td")
_VOID = frozenset({"br", "hr", "img", "meta", "link", "input", "col", "area", "base", "wbr", "source"})


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[_Box] = [_Box("#root", None, "#ffffff", 16.0, False)]
        self.language: str | None = None
        self.direction: str | None = None
        self.headings: list[int] = []
        self.links: list[list[str]] = []  # [href, text]; alt texts of images count as link text
        self.open_links: list[list[str]] = []
        self.low_contrast: list[str] = []
        self.styled_headings: list[str] = []
        self.skip = 0
        self.block_text: list[str] | None = None

    def _inherited(self, attribute: str):
        for box in reversed(self.stack):
            value = getattr(box, attribute)
            if value is not None:
                return value
        return None

    def handle_starttag(self, tag, attrs):
        attributes = {name: value or "" for name, value in attrs}
        if tag == "html":
            self.language = attributes.get("lang")
            self.direction = attributes.get("dir")
        if tag in ("style", "script", "head", "title"):
            self.skip += 1
        if level := _HEADING.match(tag):
            self.headings.append(int(level.group(1)))
        if tag == "a":
            self.open_links.append([attributes.get("href", ""), ""])
        if tag == "img" and self.open_links:
            self.open_links[-1][1] += " " + attributes.get("alt", "")
        if tag in _VOID:
            return
        style = _style(attributes.get("style", ""))
        colour = parse_colour(style.get("color", "") or attributes.get("color", ""))
        background = parse_colour(
            style.get("background-color", "") or style.get("background", "") or attributes.get("bgcolor", "")
        )
        size = _font_px(style.get("font-size", ""))
        bold = style.get("font-weight", "") in ("bold", "bolder", "600", "700", "800", "900") or tag in (
            "b",
            "strong",
        )
        self.stack.append(_Box(tag, colour, background, size, bold or self.stack[-1].bold))
        if tag in _BLOCK_TAGS and (size or 0) >= 20:
            self.block_text = []

    def handle_endtag(self, tag):
        if tag in ("style", "script", "head", "title"):
            self.skip = max(0, self.skip - 1)
        if tag == "a" and self.open_links:
            self.links.append(self.open_links.pop())
        if tag in _VOID:
            return
        for index in range(len(self.stack) - 1, 0, -1):
            if self.stack[index].tag == tag:
                box = self.stack[index]
                if self.block_text is not None and (box.size or 0) >= 20 and box.tag in _BLOCK_TAGS:
                    text = " ".join("".join(self.block_text).split())
                    if 0 < len(text) <= 80:
                        self.styled_headings.append(text)
                    self.block_text = None
                del self.stack[index:]
                break

    def handle_data(self, data):
        if self.skip or not data.strip():
            return
        for link in self.open_links:
            link[1] += data
        if self.block_text is not None:
            self.block_text.append(data)
        colour = self._inherited("colour")
        if colour is None:
            return  # the client's default text colour on its default background
        background = self._inherited("background")
        size = self._inherited("size") or 16.0
        large = size >= 24 or (size >= 18.66 and self.stack[-1].bold)
        needed = LARGE_TEXT_CONTRAST if large else MINIMUM_CONTRAST
        ratio = contrast_ratio(colour, background)
        if ratio < needed:
            self.low_contrast.append(
                f"“{data.strip()[:40]}” ({colour} on {background}: {ratio:.1f}:1, needs {needed}:1)"
            )


def check_html(html: str, *, document: bool) -> list[Problem]:
    """Problems in one HTML body. `document`: a whole message, which must state language and direction;
    a template's body is a fragment (the layout adds `<html lang dir>` from the template's language)."""
    reader = _Reader()
    reader.feed(html)
    reader.close()
    problems: list[Problem] = []
    if document:
        if not reader.language or not LANGUAGE_TAG.match(reader.language):
            problems.append(
                Problem("mail_language", "The message does not state its language (<html lang>).")
            )
        if reader.direction not in ("ltr", "rtl", "auto"):
            problems.append(
                Problem("mail_language", "The message does not state its text direction (<html dir>).")
            )
    for text in reader.styled_headings:
        problems.append(Problem("styled_heading", f"“{text[:40]}” looks like a heading: use <h1> to <h3>."))
    previous = 0
    for level in reader.headings:
        if level > (previous + 1 if previous else 2):  # a message may open with an <h1> or an <h2>
            problems.append(
                Problem(
                    "heading_order",
                    f"An <h{level}> follows "
                    + (f"an <h{previous}>" if previous else "no heading")
                    + ": do not skip levels.",
                )
            )
            break
        previous = level
    for href, text in reader.links:
        words = " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())
        if not words:
            problems.append(Problem("link_text", f"A link to “{href[:50]}” has no text (or image alt text)."))
        elif words in VAGUE_LINK_TEXTS:
            problems.append(
                Problem("link_text", f"The link text “{text.strip()}” does not say where it leads.")
            )
        elif re.match(r"^(https?://|www\.)", text.strip().lower()):
            problems.append(
                Problem("link_text", f"A bare URL as link text (“{text.strip()[:40]}”): describe it.")
            )
    for item in reader.low_contrast:
        problems.append(Problem("low_contrast", f"Text is hard to read: {item}."))
    return problems


def check_message(*, html: str | None, text: str) -> list[Problem]:
    """A whole message as sent: the HTML part (if any) as a document, and its plain-text part."""
    problems = check_html(html, document=True) if html else []
    if not text.strip():
        problems.append(Problem("missing_text_part", "The message has no plain-text part."))
    return problems


def brand_problems(*, primary: str, text: str, background: str = "#ffffff") -> list[Problem]:
    """The layout writes the sender name in white on the primary colour, and body text in the text
    colour on white: both must reach 4.5:1."""
    problems = []
    for foreground, behind, what in (
        ("#ffffff", primary, "White header text on the primary colour"),
        (text, background, "Body text on white"),
    ):
        fg, bg = parse_colour(foreground), parse_colour(behind)
        if fg and bg and (ratio := contrast_ratio(fg, bg)) < MINIMUM_CONTRAST:
            problems.append(
                Problem("brand_contrast", f"{what} reaches {ratio:.1f}:1; it needs {MINIMUM_CONTRAST}:1.")
            )
    return problems
