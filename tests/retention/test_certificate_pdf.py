"""Certificates are rendered with fpdf2 and embedded Unicode fonts (issue 14, item 10): names in
Greek, Chinese and Arabic print as written, read back by two independent PDF parsers (pypdf and
PDFium), and page 1 rasterises to a page that is not blank."""

from __future__ import annotations

import io
import unicodedata
from pathlib import Path

import pypdfium2
import pytest
from pypdf import PdfReader

from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from retention import certificates, disposal, pdf
from retention.models import DestructionCertificate
from tests.factories import MembershipFactory

from .helpers import YEAR, new_messages

pytestmark = pytest.mark.django_db
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "retention"
GREEK = ("Γιώργος", "Παπαδόπουλος")
CHINESE = ("小明", "王")
ARABIC = ("محمد", "عبد الله")


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    monkeypatch.setattr(disposal, "enqueue", lambda task, **kwargs: None)


def _officer(tenant, first: str, last: str) -> Actor:
    membership = MembershipFactory(tenant=tenant, role=Role.COMPLIANCE_OFFICER)
    user = membership.user
    user.first_name, user.last_name = first, last
    user.save(update_fields=["first_name", "last_name"])
    return Actor.for_user(user)


def _certificate(tenant, requester, approver, **approval) -> DestructionCertificate:
    new_messages(tenant, 2, age=8 * YEAR)
    (run,) = disposal.disposal_plan(tenant=tenant, actor=requester)
    disposal.disposal_approve(tenant=tenant, actor=approver, run=run, **approval)
    disposal.disposal_run_execute(tenant_id=tenant.pk, run_id=run.pk)
    with tenant_context(tenant):
        return DestructionCertificate.objects.get(run=run)


def _visible(text: str) -> str:
    """The text without control characters: fpdf2's ToUnicode map gives some shaped glyphs (CJK,
    Arabic joining forms) a stray control character next to the letters they stand for."""
    return "".join(c for c in text if c in "\n" or unicodedata.category(c) != "Cc")


def _pypdf_text(document: bytes) -> str:
    return _visible("\n".join(page.extract_text() for page in PdfReader(io.BytesIO(document)).pages))


def _pdfium_text(document: bytes) -> str:
    pages = pypdfium2.PdfDocument(document)
    return _visible("\n".join(pages[i].get_textpage().get_text_range() for i in range(len(pages))))


def _ink(document: bytes, name: str) -> float:
    """Page 1 at 100 dpi: the share of pixels that are not white. Saved for a look."""
    page = pypdfium2.PdfDocument(document)[0]
    image = page.render(scale=100 / 72).to_pil().convert("L")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    image.save(ARTIFACTS / f"{name}.png")
    histogram = image.histogram()
    return 1 - sum(histogram[250:]) / sum(histogram)


def test_greek_and_chinese_names_print_in_the_certificate(tenant_a):
    requester, approver = _officer(tenant_a, *GREEK), _officer(tenant_a, *CHINESE)
    certificate = _certificate(tenant_a, requester, approver)
    document = bytes(certificate.pdf)
    assert document.startswith(b"%PDF-")
    for text in (_pypdf_text(document), _pdfium_text(document)):
        assert "Γιώργος Παπαδόπουλος" in text
        assert "小明 王" in text
        assert certificate.manifest_sha256 in text
        assert "Certificate of Destruction" in text
        assert "?" not in text.split("Requested by:")[1].split("\n")[0]
    assert certificate.document["requested_by"]["name"] == "Γιώργος Παπαδόπουλος"
    assert certificate.document["approved_by"]["name"] == "小明 王"
    assert certificates.certificate_verify(tenant=tenant_a, certificate=certificate) == []
    assert _ink(document, "certificate-greek-chinese") > 0.005


def test_an_arabic_name_and_a_sole_officer_reason_print_shaped_and_flagged(tenant_a):
    only = _officer(tenant_a, *ARABIC)
    certificate = _certificate(tenant_a, only, only, sole_officer_reason="الموظف الوحيد")
    document = bytes(certificate.pdf)
    text = _pypdf_text(document)  # PDFium gives right-to-left runs back letter by letter reversed
    for word in ("محمد", "عبد", "الله", "الموظف", "الوحيد"):
        assert word in text, word
    assert "SOLE OFFICER: the run was approved without a second person" in text
    assert "SOLE OFFICER" in _pdfium_text(document)
    assert _ink(document, "certificate-arabic-sole-officer") > 0.005


def test_a_long_document_breaks_into_numbered_pages():
    document = pdf.render(
        [pdf.Line(f"line {i} (with parentheses) \\ and more") for i in range(120)], title="T"
    )
    reader = PdfReader(io.BytesIO(document))
    assert len(reader.pages) >= 2
    text = _pypdf_text(document)
    assert "line 119 (with parentheses) \\ and more" in text
    assert f"page 1 of {len(reader.pages)}" in text
