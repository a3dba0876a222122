"""Text documents (destruction certificates) as PDF, written with fpdf2 and embedded Unicode fonts.

Fonts come from Python packages the project installs (pyproject.toml), all under the SIL Open Font
License 1.1: Noto Sans (Latin, Greek, Cyrillic), Noto Sans Arabic, and Noto Sans CJK SC (Chinese,
Japanese kana, Korean), the last two as fallbacks for characters Noto Sans lacks. Text shaping
(uharfbuzz) joins Arabic letters and lays right-to-left runs out in order, so a name in any of these
scripts prints as written. Only the glyphs used are embedded (subsets); the text stays extractable.
The CJK collection is loaded only when the document holds a character from its ranges (it takes
about a second to read). Noto Sans is a variable font: its default instance (regular) is embedded,
and "bold" lines are drawn with a stroke around the glyphs, because instancing the bold weight takes
seconds per document.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import fontpkg_noto_sans
import fontpkg_noto_sans_arabic
import noto_cjk_sans_otc
from fpdf import FPDF
from fpdf.enums import Align, TextMode, XPos, YPos

# fontTools logs every subset it makes at INFO: noise in the application's logs.
logging.getLogger("fontTools").setLevel(logging.WARNING)
MARGIN_MM = 20
LINE_HEIGHT = 1.45  # times the font size
CJK_COLLECTION_INDEX = 2  # Noto Sans CJK SC in NotoSansCJK-Regular.ttc
FONTS = {
    "NotoSans": fontpkg_noto_sans.ROOT / "files" / "NotoSans[wdth,wght].ttf",
    "NotoSansArabic": fontpkg_noto_sans_arabic.ROOT / "files" / "NotoSansArabic[wdth,wght].ttf",
}


@dataclass(frozen=True)
class Line:
    text: str
    size: float = 9.5
    bold: bool = False
    gap_before: float = 0  # points


def _needs_cjk(texts: Sequence[str]) -> bool:
    """Han, kana, hangul, CJK punctuation and full-width forms: what Noto Sans CJK adds."""
    return any(
        0x2E80 <= ord(c) <= 0x9FFF or 0xAC00 <= ord(c) <= 0xD7AF or 0xF900 <= ord(c) <= 0xFFEF
        for text in texts
        for c in text
    )


class _Document(FPDF):
    footer_text = ""

    def footer(self) -> None:
        with self.local_context(text_mode=TextMode.FILL):
            self.set_y(-MARGIN_MM / 2 - 4)
            self.set_font("NotoSans", size=8)
            self.cell(0, 4, f"{self.footer_text}  -  page {self.page_no()} of {{nb}}")


def render(lines: Sequence[Line], *, title: str, footer: str = "") -> bytes:
    document = _Document(unit="mm", format="Letter")
    document.set_margins(MARGIN_MM, MARGIN_MM, MARGIN_MM)
    document.set_auto_page_break(auto=True, margin=MARGIN_MM)
    document.footer_text = footer or title
    document.set_title(title)
    document.set_producer("HealthMail")
    document.set_creator("HealthMail")
    for family, path in FONTS.items():
        document.add_font(family, "", str(path))
    fallbacks = ["NotoSansArabic"]
    if _needs_cjk([title, footer, *(line.text for line in lines)]):
        document.add_font(
            "NotoSansCJK", "", str(noto_cjk_sans_otc.FONT_PATH), collection_font_number=CJK_COLLECTION_INDEX
        )
        fallbacks.append("NotoSansCJK")
    document.set_fallback_fonts(fallbacks, exact_match=False)
    document.set_text_shaping(True)
    document.add_page()
    for line in lines:
        document.set_font("NotoSans", size=line.size)
        if line.gap_before:
            document.ln(line.gap_before * 25.4 / 72)
        height = line.size * LINE_HEIGHT * 25.4 / 72
        # A bold line strokes its glyphs, inside its own graphics state (q ... Q): nothing after it
        # (the next line, the footer) inherits the stroke.
        style = {"text_mode": TextMode.FILL_STROKE, "line_width": line.size * 0.012} if line.bold else {}
        with document.local_context(**style):
            document.multi_cell(
                0, height, line.text or " ", align=Align.L, new_x=XPos.LMARGIN, new_y=YPos.NEXT
            )
    return bytes(document.output())
