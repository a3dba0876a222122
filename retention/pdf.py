"""A minimal PDF 1.4 writer for text documents (certificates): Helvetica, one column, A4/Letter-safe
margins, as many pages as the lines need. No dependency; the output opens in every reader.

Text is encoded as WinAnsi (Latin-1 subset); other characters become "?" (certificates hold ids,
counts, dates and names of people on staff).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

PAGE_WIDTH, PAGE_HEIGHT = 612, 792  # US Letter, points
MARGIN = 56
WRAP = 95  # characters per line at 9.5 pt


@dataclass(frozen=True)
class Line:
    text: str
    size: float = 9.5
    bold: bool = False
    gap_before: float = 0


def _escape(text: str) -> bytes:
    encoded = text.encode("latin-1", errors="replace")
    return encoded.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _wrap(line: Line) -> list[Line]:
    width = int(WRAP * 9.5 / line.size)
    text, pieces = line.text, []
    while len(text) > width:
        cut = text.rfind(" ", 0, width)
        cut = cut if cut > width // 2 else width
        pieces.append(text[:cut])
        text = text[cut:].lstrip()
    pieces.append(text)
    return [
        Line(piece, line.size, line.bold, line.gap_before if i == 0 else 0) for i, piece in enumerate(pieces)
    ]


def _pages(lines: Sequence[Line]) -> list[list[tuple[Line, float]]]:
    pages: list[list[tuple[Line, float]]] = [[]]
    y = PAGE_HEIGHT - MARGIN
    for line in (piece for original in lines for piece in _wrap(original)):
        step = line.size * 1.45 + line.gap_before
        if y - step < MARGIN:
            pages.append([])
            y = PAGE_HEIGHT - MARGIN
            step = line.size * 1.45
        y -= step
        pages[-1].append((line, y))
    return pages


def _content(placed: list[tuple[Line, float]], page_number: int, page_count: int, footer: str) -> bytes:
    parts = [b"BT"]
    for line, y in placed:
        font = b"/F2" if line.bold else b"/F1"
        parts.append(
            b"%s %.1f Tf 1 0 0 1 %d %.1f Tm (%s) Tj" % (font, line.size, MARGIN, y, _escape(line.text))
        )
    parts.append(
        b"/F1 8 Tf 1 0 0 1 %d %d Tm (%s) Tj"
        % (MARGIN, MARGIN // 2, _escape(f"{footer}  -  page {page_number} of {page_count}"))
    )
    parts.append(b"ET")
    return b"\n".join(parts)


def render(lines: Sequence[Line], *, title: str, footer: str = "") -> bytes:
    pages = _pages(lines)
    objects: list[bytes] = []  # object n is objects[n - 1]

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled once the page tree exists
    tree = add(b"")
    regular = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    bold = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>")
    info = add(b"<< /Title (%s) /Producer (HealthMail) >>" % _escape(title))
    kids = []
    for number, placed in enumerate(pages, start=1):
        stream = _content(placed, number, len(pages), footer or title)
        content = add(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        kids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %d %d] /Contents %d 0 R "
                b"/Resources << /Font << /F1 %d 0 R /F2 %d 0 R >> >> >>"
                % (tree, PAGE_WIDTH, PAGE_HEIGHT, content, regular, bold)
            )
        )
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % tree
    objects[tree - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids),
        len(kids),
    )
    output = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(output))
        output += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(output)
    output += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    output += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    output += b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        catalog,
        info,
        xref,
    )
    return bytes(output)
