"""Memory stays bounded: rows are generated from the sealed upload, never read into a list."""

from __future__ import annotations

import inspect
import io
import tracemalloc

import pytest

from contacts.imports import parsing
from contacts.imports.storage import SealedFile
from healthmail.tenants.context import tenant_context
from tests.contacts.import_helpers import upload

pytestmark = pytest.mark.django_db

ROWS = 50_000


def test_a_50k_row_file_streams_with_small_peak_memory(tenant_a):
    row = (
        "synthetic.patient.{i:06d}@example.org,Synthetic,Patient{i:06d},1970-01-01,CA,94110,"
        + "x" * 120
        + "\n"
    )
    content = "Email,First name,Last name,DOB,State,ZIP,Notes\n" + "".join(
        row.format(i=i) for i in range(ROWS)
    )
    size = len(content)
    job = upload(tenant_a, content.encode())
    del content

    with tenant_context(tenant_a):
        rows = parsing.csv_rows(SealedFile(job), delimiter=",", width=7)
        assert inspect.isgenerator(rows)
        tracemalloc.start()
        try:
            count = 0
            for parsed in rows:
                count += 1
                assert not parsed.error
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

    assert count == ROWS
    assert size > 10_000_000
    # A few sealed 1 MiB pieces and one read buffer, whatever the file's size.
    assert peak < 6_000_000, f"peak {peak:,} bytes for a {size:,}-byte file"


def test_xlsx_rows_are_generated_too():
    assert inspect.isgeneratorfunction(parsing.xlsx_rows)
    assert inspect.isgeneratorfunction(parsing.csv_rows)


def test_header_sniffing_reads_only_the_head():
    head = b"Email;First name\n" + b"a@example.org;Ada\n" * 10
    shape = parsing.csv_shape(head + b"b@exam", complete=False)  # cut mid-line and mid-file
    assert (shape.delimiter, shape.headers) == (";", ["Email", "First name"])


def test_a_multibyte_character_cut_at_the_end_of_the_head_is_not_an_encoding_error():
    head = "Email,Name\na@example.org,Zoë\n".encode()
    shape = parsing.csv_shape(head[:-2], complete=False)  # ends inside the two bytes of "ë"
    assert shape.headers == ["Email", "Name"]


def test_rows_stream_from_a_resume_offset():
    data = b"Email\na@example.org\nb@example.org\nc@example.org\n"
    rows = list(parsing.csv_rows(io.BytesIO(data), delimiter=",", width=1))
    assert [r.values for r in rows] == [["a@example.org"], ["b@example.org"], ["c@example.org"]]
    resumed = list(
        parsing.csv_rows(io.BytesIO(data), delimiter=",", width=1, start=rows[0].end_position, first_number=3)
    )
    assert [(r.number, r.values) for r in resumed] == [(3, ["b@example.org"]), (4, ["c@example.org"])]
