"""Reading uploaded CSV and XLSX files: shape detection, then a stream of rows.

Rows are generated one at a time from the sealed upload (never a list of the whole file), each with
the position to resume after it. Whole-file problems (not UTF-8, duplicate headers, not a
spreadsheet) raise `FileRejected` with a reason a person can act on; row problems (a field over the
csv size limit, a row wider than the header) come back as that row's error, and reading goes on.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import io
import itertools
from collections.abc import Generator, Iterator
from dataclasses import dataclass

from healthmail.errors import ApplicationError

# An upload read as bytes: a sealed file (raw, buffered here) or an in-memory one.
ByteSource = io.RawIOBase | io.BufferedIOBase

CSV = "csv"
XLSX = "xlsx"
DELIMITERS = ",;\t|"
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
BOM = codecs.BOM_UTF8
READ_BUFFER = 256 * 1024
NOT_UTF8 = (
    "The file is not UTF-8 text ({detail}). Save it again as “CSV UTF-8” (Excel: File → Save As → "
    "CSV UTF-8) and upload it again. HealthMail does not guess encodings, so no character is changed "
    "silently."
)


class FileRejected(ApplicationError):
    """The file as a whole cannot be imported; the message says why and what to do."""


@dataclass(frozen=True)
class FileShape:
    file_format: str
    headers: list[str]
    encoding: str = ""
    delimiter: str = ""


@dataclass(frozen=True)
class ParsedRow:
    number: int  # spreadsheet row number: the header is row 1
    values: list[str]
    error: str = ""
    column: str = ""
    end_position: int = 0  # CSV: byte offset after this row; XLSX: data rows read so far


def detect_format(file_name: str, head: bytes) -> str:
    name = file_name.lower()
    if head.startswith(b"PK\x03\x04"):
        return XLSX
    if name.endswith(".xls") or head.startswith(b"\xd0\xcf\x11\xe0"):
        raise FileRejected("Old Excel files (.xls) are not supported: save the sheet as .xlsx or CSV UTF-8.")
    if name.endswith(".xlsx"):
        raise FileRejected("This .xlsx file is damaged or not an Excel workbook.")
    return CSV


def _decode_head(head: bytes, *, complete: bool) -> str:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" in head[:4096]:
        raise FileRejected(NOT_UTF8.format(detail="it looks like UTF-16"))
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        return decoder.decode(head, final=complete)
    except UnicodeDecodeError as error:
        line = head[: error.start].count(b"\n") + 1
        raise FileRejected(NOT_UTF8.format(detail=f"byte {error.start + 1}, line {line}")) from None


def check_headers(headers: list[str]) -> list[str]:
    headers = [header.strip() for header in headers]
    while headers and not headers[-1]:
        headers.pop()  # trailing empty columns (a common spreadsheet artefact)
    if not headers:
        raise FileRejected("The first row is empty: it must name the columns (a header row).")
    seen: dict[str, str] = {}
    duplicates: list[str] = []
    for header in headers:
        key = header.casefold()
        if key and key in seen and seen[key] not in duplicates:
            duplicates.append(seen[key])  # named as first spelled
        seen.setdefault(key, header)
    if duplicates:
        names = ", ".join(f"“{name}”" for name in duplicates)
        raise FileRejected(f"The header row repeats column names: {names}. Give every column a unique name.")
    return headers


def csv_shape(head: bytes, *, complete: bool) -> FileShape:
    """Encoding, delimiter and headers from the first bytes of a CSV file."""
    text = _decode_head(head, complete=complete)
    if not complete and "\n" in text:
        text = text[: text.rindex("\n") + 1]  # whole lines only
    if not text.strip():
        raise FileRejected("The file is empty: it has no header row and no data rows.")
    if "\r" in text and "\n" not in text and len(text.splitlines()) > 1:
        raise FileRejected("The file uses old Mac line endings (CR only): save it again as CSV UTF-8.")
    sample = "\n".join(text.splitlines()[:50])
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        delimiter = ","
    headers = next(csv.reader(io.StringIO(text), delimiter=delimiter), [])
    return FileShape(CSV, check_headers(headers), encoding="utf-8-sig", delimiter=delimiter)


def xlsx_shape(raw: ByteSource) -> FileShape:
    rows = _xlsx_values(raw, skip=0)
    try:
        headers = next(rows, [])
    finally:
        rows.close()
    return FileShape(XLSX, check_headers(headers))


def _fit(values: list[str], width: int) -> tuple[list[str], str]:
    """The row's values, or an error when it is wider than the header or cut short."""
    if len(values) > width and not any(v.strip() for v in values[width:]):
        values = values[:width]
    if len(values) != width:
        return values, f"This row has {len(values)} columns; the header has {width}."
    return values, ""


def csv_rows(raw: ByteSource, *, delimiter: str, width: int, start: int = 0, first_number: int = 2):
    """Data rows of a CSV file from byte offset `start` (0: the header is read and skipped)."""
    raw.seek(start)
    stream = io.BufferedReader(raw, READ_BUFFER) if not isinstance(raw, io.BufferedIOBase) else raw
    position = start
    line_number = 0

    def lines() -> Iterator[str]:
        nonlocal position, line_number
        for line in stream:
            at = position
            position += len(line)
            line_number += 1
            if at == 0 and line.startswith(BOM):
                line = line[len(BOM) :]
            try:
                yield line.decode("utf-8")
            except UnicodeDecodeError as error:
                # Reading stops: a file that is partly another encoding is refused as a whole.
                detail = f"byte {at + error.start + 1}, line {line_number} after the resume point"
                if start == 0:
                    detail = f"byte {at + error.start + 1}, line {line_number}"
                raise FileRejected(NOT_UTF8.format(detail=detail)) from None

    reader = csv.reader(lines(), delimiter=delimiter)
    number = first_number - 1
    if start == 0:
        try:
            next(reader)
        except StopIteration:
            return
        except csv.Error:
            raise FileRejected("The header row cannot be read as CSV.") from None
    limit = csv.field_size_limit()
    while True:
        number += 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error:
            # The oversized field's line was consumed; reading resumes with the next line.
            error = f"A field is longer than {limit:,} characters (the most a cell may hold)."
            yield ParsedRow(number, [], error=error, end_position=position)
            continue
        if not values:
            yield ParsedRow(number, [], end_position=position)  # a blank line: nothing to import
            continue
        values, error = _fit(values, width)
        yield ParsedRow(number, values, error=error, end_position=position)


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.datetime):
        return value.date().isoformat() if value.time() == datetime.time() else value.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _xlsx_values(raw: ByteSource, *, skip: int) -> Generator[list[str], None, None]:
    import zipfile

    import openpyxl  # imported on use: only XLSX jobs pay for it
    from openpyxl.utils.exceptions import InvalidFileException

    raw.seek(0)
    stream = io.BufferedReader(raw, READ_BUFFER) if not isinstance(raw, io.BufferedIOBase) else raw
    try:
        # data_only=False: a formula cell arrives as its text ("=cmd|…"), stored as text, never run.
        workbook = openpyxl.load_workbook(stream, read_only=True, data_only=False)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as error:
        raise FileRejected("This .xlsx file is damaged or not an Excel workbook.") from error
    try:
        sheet = workbook.worksheets[0]
        rows = sheet.iter_rows(values_only=True)
        for values in itertools.islice(rows, skip, None):
            yield [_cell_text(value) for value in values]
    finally:
        workbook.close()


def xlsx_rows(raw: ByteSource, *, width: int, start: int = 0):
    """Data rows of the first sheet, after `start` data rows (the header is always skipped)."""
    number = start + 1
    for values in _xlsx_values(raw, skip=start + 1):
        number += 1
        if not any(value.strip() for value in values):
            yield ParsedRow(number, [], end_position=number - 1)
            continue
        values, error = _fit(values, width)
        yield ParsedRow(number, values, error=error, end_position=number - 1)
