"""Cells a spreadsheet would run as formulas (OWASP "CSV Injection", CWE-1236), made plain text.

The one neutraliser of every CSV the platform writes (contact export, import error report, campaign
report, audit export). Excel, LibreOffice and Google Sheets treat a cell starting with = + - @ as a
formula, and TAB, CR or LF before one still leads to it; some skip leading spaces first, so " =1+1"
is a formula too. DDE's | and % are quoted as well, and the full-width signs (U+FF1D, U+FF0B,
U+FF0D, U+FF20) that some spreadsheets read as their ASCII forms. The cure OWASP gives: prefix such
a cell with a single quote, which the spreadsheet shows as text (the csv module then quotes the cell
as needed).

A cell that already starts with a quote is prefixed too: a spreadsheet would hide that quote, and
`spreadsheet_value` can then undo `spreadsheet_safe` exactly (the audit export is read back to
recompute its hash chain)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.http import StreamingHttpResponse

FORMULA_STARTS = (
    "=",
    "+",
    "-",
    "@",
    "\t",
    "\r",
    "\n",
    "\0",
    "|",
    "%",
    "'",
    "\uff1d",  # full-width =
    "\uff0b",  # full-width +
    "\uff0d",  # full-width -
    "\uff20",  # full-width @
)
_SKIPPED_FIRST = " \t\r\n\f\v\u00a0"


def _runs_as_formula(text: str) -> bool:
    return text.startswith(FORMULA_STARTS) or text.lstrip(_SKIPPED_FIRST).startswith(FORMULA_STARTS)


def spreadsheet_safe(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if _runs_as_formula(text) else text


def spreadsheet_value(cell: str) -> str:
    """The text `spreadsheet_safe` was given: its quote removed (a cell that needed none has none)."""
    return cell[1:] if cell.startswith("'") and _runs_as_formula(cell[1:]) else cell


def csv_download(lines: Iterator[str], filename: str) -> StreamingHttpResponse:
    """A streamed CSV attachment that no cache keeps (it may carry PHI)."""
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
