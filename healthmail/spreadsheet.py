"""Cells a spreadsheet would run as formulas (OWASP "CSV Injection"), made plain text.

Excel, LibreOffice and Google Sheets treat a cell starting with = + - @ as a formula, and TAB or CR
before one still leads to it; some skip leading spaces first, so " =1+1" is a formula too. DDE's |
and % are quoted as well. The cure OWASP gives: prefix such a cell with a single quote, which the
spreadsheet shows as text (the csv module then quotes the cell as needed)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.http import StreamingHttpResponse

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "|", "%")


def spreadsheet_safe(value: Any) -> str:
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_STARTS) or text.lstrip(" \t\r\n\f\v\u00a0").startswith(FORMULA_STARTS):
        return "'" + text
    return text


def csv_download(lines: Iterator[str], filename: str) -> StreamingHttpResponse:
    """A streamed CSV attachment that no cache keeps (it may carry PHI)."""
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
