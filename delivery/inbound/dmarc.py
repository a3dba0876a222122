"""DMARC aggregate reports (RFC 7489 appendix C): an XML document, often gzip- or zip-compressed,
attached to a mail sent to the rua address. Read into totals per report; never about a contact.

Hostile input is bounded: compressed attachments are inflated to at most MAX_XML_BYTES, and the XML
parser is expat with entity expansion refused (no DTDs accepted at all).
"""

from __future__ import annotations

import gzip
import io
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from xml.etree import ElementTree

MAX_XML_BYTES = 5 * 1024 * 1024
MAX_RECORDS = 10_000
_XML_TYPES = ("application/xml", "text/xml")
_GZIP_TYPES = ("application/gzip", "application/x-gzip", "application/gzip-compressed")
_ZIP_TYPES = ("application/zip", "application/x-zip-compressed", "application/x-zip")


@dataclass(frozen=True)
class Aggregate:
    reporter: str  # org_name
    report_id: str
    domain: str  # policy_published/domain: the sender domain the report is about
    begin: datetime | None
    end: datetime | None
    messages: int
    passed: int  # DMARC pass: an aligned DKIM or SPF pass
    dkim_failed: int
    spf_failed: int
    sources: dict[str, dict] = field(default_factory=dict)  # source IP -> {count, dkim, spf, disposition}


class _Refused(ValueError):
    pass


def _inflate(name: str, kind: str, payload: bytes) -> bytes | None:
    name = name.lower()
    if kind in _GZIP_TYPES or name.endswith(".gz"):
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        data = decompressor.decompress(payload, MAX_XML_BYTES + 1)
        return data if len(data) <= MAX_XML_BYTES else None
    if kind in _ZIP_TYPES or name.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            members = [m for m in archive.infolist() if m.filename.lower().endswith(".xml")]
            if not members or members[0].file_size > MAX_XML_BYTES:
                return None
            with archive.open(members[0]) as handle:
                data = handle.read(MAX_XML_BYTES + 1)
            return data if len(data) <= MAX_XML_BYTES else None
    if kind in _XML_TYPES or name.endswith(".xml"):
        return payload[: MAX_XML_BYTES + 1] if len(payload) <= MAX_XML_BYTES else None
    return None


def _xml_parts(message: Message):
    for part in message.walk():
        if part.is_multipart():
            continue
        name = part.get_filename() or ""
        kind = part.get_content_type()
        if kind not in (*_XML_TYPES, *_GZIP_TYPES, *_ZIP_TYPES, "application/octet-stream"):
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes) and payload:
            yield name, kind, payload


def _text(node, path: str) -> str:
    found = node.find(path)
    return (found.text or "").strip() if found is not None and found.text else ""


def _time(value: str) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value.isdigit() and len(value) <= 12 else None


def aggregate_parse(xml: bytes) -> Aggregate | None:
    """The totals of one aggregate report, or None when the document is not one."""
    head = xml[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in xml.lower():
        raise _Refused("DTDs are not accepted in DMARC reports")
    root = ElementTree.fromstring(xml)  # noqa: S314 - no DTD (checked above), size bounded
    if root.tag != "feedback":
        return None
    domain = _text(root, "policy_published/domain").lower()
    if not domain:
        return None
    messages = passed = dkim_failed = spf_failed = 0
    sources: dict[str, dict] = {}
    for record in root.findall("record")[:MAX_RECORDS]:
        count_text = _text(record, "row/count")
        count = int(count_text) if count_text.isdigit() and len(count_text) < 10 else 0
        dkim = _text(record, "row/policy_evaluated/dkim").lower()
        spf = _text(record, "row/policy_evaluated/spf").lower()
        messages += count
        passed += count if "pass" in (dkim, spf) else 0
        dkim_failed += count if dkim != "pass" else 0
        spf_failed += count if spf != "pass" else 0
        ip = _text(record, "row/source_ip")[:45]
        entry = sources.setdefault(ip, {"count": 0, "dkim_fail": 0, "spf_fail": 0, "disposition": ""})
        entry["count"] += count
        entry["dkim_fail"] += count if dkim != "pass" else 0
        entry["spf_fail"] += count if spf != "pass" else 0
        entry["disposition"] = _text(record, "row/policy_evaluated/disposition")[:16]
    return Aggregate(
        reporter=_text(root, "report_metadata/org_name")[:200],
        report_id=_text(root, "report_metadata/report_id")[:200],
        domain=domain[:253],
        begin=_time(_text(root, "report_metadata/date_range/begin")),
        end=_time(_text(root, "report_metadata/date_range/end")),
        messages=messages,
        passed=passed,
        dkim_failed=dkim_failed,
        spf_failed=spf_failed,
        sources=dict(list(sources.items())[:100]),
    )


def aggregate_from_message(message: Message) -> Aggregate | None:
    for name, kind, payload in _xml_parts(message):
        try:
            xml = _inflate(name, kind, payload)
            if xml is None:
                continue
            parsed = aggregate_parse(xml)
        except (
            ValueError,
            OSError,
            EOFError,
            zipfile.BadZipFile,
            zlib.error,
            gzip.BadGzipFile,
            ElementTree.ParseError,
        ):
            continue
        if parsed is not None:
            return parsed
    return None
