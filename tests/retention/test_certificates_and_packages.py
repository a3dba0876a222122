"""Certificates verify (and tampering shows); evidence packages verify offline and name a modified file."""

import io
import json
import zipfile

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.models import AuditEvent
from healthmail.crypto import signing
from healthmail.tenants.context import tenant_context
from retention import certificates, disposal, exports, packages
from retention.models import DestructionCertificate

from .helpers import YEAR, new_contact, new_messages, officer

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    monkeypatch.setattr(disposal, "enqueue", lambda task, **kwargs: None)


def _completed_run(tenant, count=4):
    actor = officer(tenant)
    messages = new_messages(tenant, count, age=8 * YEAR)
    (run,) = disposal.disposal_plan(tenant=tenant, actor=actor)
    approver = officer(tenant)
    disposal.disposal_approve(tenant=tenant, actor=approver, run=run)
    disposal.disposal_run_execute(tenant_id=tenant.pk, run_id=run.pk)
    with tenant_context(tenant):
        return approver, messages, DestructionCertificate.objects.get(run=run)


def _rewrite(content: bytes, name: str, data: bytes) -> bytes:
    source, buffer = zipfile.ZipFile(io.BytesIO(content)), io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for item in source.namelist():
            target.writestr(item, data if item == name else source.read(item))
    return buffer.getvalue()


def test_certificate_manifest_verifies_and_covers_exactly_the_destroyed_records(tenant_a):
    actor, messages, certificate = _completed_run(tenant_a)
    assert certificates.certificate_verify(tenant=tenant_a, certificate=certificate) == []
    assert certificate.record_count == 4
    document = certificate.document
    assert document["approved_by"]["id"] == str(actor.user.pk)
    assert document["executed_by"] == disposal.EXECUTOR
    assert document["categories"][0]["category"] == "message_metadata"
    assert document["categories"][0]["policy"]["version"] == 1
    expected = "".join(sorted(f"message_metadata\t{m.pk}\n" for m in messages)).encode()
    assert certificates.manifest_digest(expected.splitlines(keepends=True))[0] == certificate.manifest_sha256
    assert bytes(certificate.pdf).startswith(b"%PDF-")  # its text: tests/retention/test_certificate_pdf.py


def test_an_edited_certificate_does_not_verify(tenant_a):
    _, _, certificate = _completed_run(tenant_a)
    certificate.document["record_count"] = 3
    assert any(
        "signature" in p for p in certificates.certificate_verify(tenant=tenant_a, certificate=certificate)
    )


def test_certificate_package_verifies_offline_with_the_public_key_and_detects_edits(tenant_a):
    actor, _, certificate = _completed_run(tenant_a)
    _, content = certificates.certificate_package(tenant=tenant_a, actor=actor, certificate=certificate)
    public_key = signing.signing_key_current(tenant_a).public_key  # what the audit page publishes
    assert packages.verify(content, public_key=public_key)[0] == []
    assert packages.verify(content)[0] == []
    edited = _rewrite(content, "destroyed-records.txt", b"message_metadata\tsomething-else\n")
    problems, _ = packages.verify(edited, public_key=public_key)
    assert problems == ["destroyed-records.txt: SHA-256 differs from the manifest (file modified)"]
    assert packages.verify(content, public_key="00" * 32)[0]  # a different key: not ours


def test_evidence_package_holds_the_records_and_verifies_offline(tenant_a, tmp_path):
    actor = officer(tenant_a)
    patient = new_contact(tenant_a)
    new_messages(tenant_a, 2, age=YEAR, contact=patient)
    export = exports.evidence_export_create(
        tenant=tenant_a,
        actor=actor,
        purpose="Subpoena 24-113",
        recipient="Outside counsel",
        scope=exports.ExportScope(contact_ids=(patient.pk,)),
    )
    _, content = exports.evidence_export_download(tenant=tenant_a, actor=actor, export_id=export.pk)
    problems, manifest = packages.verify(content)
    assert problems == []
    archive = zipfile.ZipFile(io.BytesIO(content))
    assert {
        "records/contacts.json",
        "records/messages.json",
        "audit/audit-export.zip",
        "consent/evidence.json",
        "delivery/evidence.json",
        "policies/policies.json",
        "chain_of_custody.json",
    } <= set(manifest["files"])
    messages = json.loads(archive.read("records/messages.json"))
    assert len(messages) == 2
    assert messages[0]["content"]["text"] == "A1C 7.1"
    assert json.loads(archive.read("records/contacts.json"))[0]["last_name"] == "Patient"
    assert json.loads(archive.read("chain_of_custody.json"))[0]["recipient"] == "Outside counsel"
    with tenant_context(tenant_a):
        actions = set(AuditEvent.objects.filter(tenant=tenant_a).values_list("action", flat=True))
    assert {"phi.read", "retention.evidence_export", "retention.evidence_download", "audit.export"} <= actions
    assert bytes(export.content)[:2] != b"PK"  # stored sealed, not as a plain ZIP

    good, bad = tmp_path / "package.zip", tmp_path / "modified.zip"
    good.write_bytes(content)
    bad.write_bytes(_rewrite(content, "records/messages.json", b"[]"))
    out = io.StringIO()
    call_command("verify_evidence", str(good), stdout=out)
    assert "verify" in out.getvalue()
    call_command(
        "verify_evidence",
        str(good),
        "--public-key",
        signing.signing_key_current(tenant_a).public_key,
        stdout=io.StringIO(),
    )
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("verify_evidence", str(bad), stdout=out)
    assert "records/messages.json: SHA-256 differs" in out.getvalue()


def test_an_edited_manifest_is_detected(tenant_a):
    content, manifest = packages.build({"a.txt": b"alpha"}, {"kind": "test", "tenant_id": str(tenant_a.pk)})
    manifest["files"]["a.txt"]["sha256"] = "0" * 64
    forged = _rewrite(content, "manifest.json", json.dumps(manifest).encode())
    problems, _ = packages.verify(forged)
    assert any("signature" in p for p in problems)
