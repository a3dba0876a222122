"""A one-patient evidence package holds that patient's audit events and their chain proof, not the
organization's whole trail; `verify_evidence` checks the proof, offline and against the chain."""

import io
import json
import uuid
import zipfile

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from audit import exports as audit_exports
from audit import services as audit
from healthmail.actors import Actor
from healthmail.crypto import signing
from retention import disposal, exports, packages

from .helpers import YEAR, new_contact, new_messages, officer
from .test_certificates_and_packages import _rewrite

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_broker(monkeypatch, settings, tmp_path):
    monkeypatch.setattr(disposal, "enqueue", lambda task, **kwargs: None)
    settings.AUDIT_CHECKPOINT_DIR = str(tmp_path / "checkpoints")


def _package(tenant, actor, scope) -> bytes:
    export = exports.evidence_export_create(
        tenant=tenant, actor=actor, purpose="Subpoena 24-118", recipient="Outside counsel", scope=scope
    )
    return exports.evidence_export_download(tenant=tenant, actor=actor, export_id=export.pk)[1]


def _slice(content: bytes) -> tuple[list[dict], dict]:
    archive = zipfile.ZipFile(io.BytesIO(content))
    inner = zipfile.ZipFile(io.BytesIO(archive.read("audit/audit-export.zip")))
    return json.loads(inner.read("events.json")), json.loads(archive.read("audit/chain-proof.json"))


def test_one_patient_package_holds_only_that_patients_events(tenant_a, tenant_b):
    actor = officer(tenant_a)
    patient, other = new_contact(tenant_a), new_contact(tenant_a)
    new_messages(tenant_a, 1, age=YEAR, contact=patient)
    system = Actor.system("tests")
    for _ in range(20):  # the rest of the organization's trail
        audit.record(actor=system, action="phi.read", tenant=tenant_a, contacts=[other.pk])
        audit.record(actor=system, action="campaign.approve", tenant=tenant_a)
    audit.record(actor=system, action="phi.read", tenant=tenant_a, contacts=[other.pk, patient.pk])
    audit.record(actor=system, action="phi.read", tenant=tenant_b, contacts=[patient.pk])

    rows, proof = _slice(_package(tenant_a, actor, exports.ExportScope(contact_ids=(patient.pk,))))

    assert rows
    assert all(str(patient.pk) in row.get("contact_ids", []) for row in rows)
    assert {row["tenant_id"] for row in rows} == {str(tenant_a.pk)}
    assert any(str(other.pk) in row["contact_ids"] for row in rows)  # the shared read is there
    assert not any(row["action"] == "campaign.approve" for row in rows)
    assert [e["seq"] for e in proof["events"]] == [row["seq"] for row in rows]
    assert proof["checkpoint"]["seq"] >= max(row["seq"] for row in rows)
    assert proof["chain"] == str(tenant_a.pk)


def test_package_for_a_campaign_holds_the_campaigns_events(tenant_a):
    actor = officer(tenant_a)
    campaign_id = str(uuid.uuid4())
    new_messages(tenant_a, 1, age=YEAR, source_id=campaign_id)
    audit.record(
        actor=Actor.system("t"),
        action="campaign.approve",
        tenant=tenant_a,
        target=("campaigns.campaign", campaign_id),
    )
    audit.record(
        actor=Actor.system("t"),
        action="campaign.approve",
        tenant=tenant_a,
        target=("campaigns.campaign", str(uuid.uuid4())),
    )
    rows, _ = _slice(_package(tenant_a, actor, exports.ExportScope(sources=(f"campaign:{campaign_id}",))))
    assert [row["target_id"] for row in rows if row["action"] == "campaign.approve"] == [campaign_id]


def test_the_slice_and_its_proof_verify_offline_and_against_the_chain(tenant_a, tmp_path):
    actor = officer(tenant_a)
    patient = new_contact(tenant_a)
    new_messages(tenant_a, 1, age=YEAR, contact=patient)
    content = _package(tenant_a, actor, exports.ExportScope(contact_ids=(patient.pk,)))
    public_key = signing.signing_key_current(tenant_a).public_key  # as the audit page publishes it
    assert packages.verify(content)[0] == []
    assert packages.verify(content, public_key=public_key)[0] == []
    assert packages.verify_against_chain(content) == []
    path = tmp_path / "package.zip"
    path.write_bytes(content)
    out = io.StringIO()
    call_command("verify_evidence", str(path), "--against-chain", stdout=out)
    assert "verify" in out.getvalue()


def _with_proof(content: bytes, edit) -> dict:
    proof = json.loads(zipfile.ZipFile(io.BytesIO(content)).read("audit/chain-proof.json"))
    edit(proof)
    return proof


def test_a_forged_checkpoint_or_hash_in_the_proof_is_found(tenant_a):
    actor = officer(tenant_a)
    patient = new_contact(tenant_a)
    content = _package(tenant_a, actor, exports.ExportScope(contact_ids=(patient.pk,)))
    slice_zip = zipfile.ZipFile(io.BytesIO(content)).read("audit/audit-export.zip")
    public_key = signing.signing_key_current(tenant_a).public_key  # as the audit page publishes it

    def forge_head(proof):
        proof["checkpoint"]["hash"] = "0" * 64

    def lower_head(proof):
        proof["checkpoint"]["seq"] = 0

    def change_link(proof):
        proof["events"][0]["hash"] = "f" * 64

    for edit, expected in ((forge_head, "signature"), (lower_head, "signature"), (change_link, "differ")):
        proof = _with_proof(content, edit)
        problems = audit_exports.verify_slice_proof(proof, slice_zip, public_key=public_key)
        assert any(expected in p for p in problems), (edit.__name__, problems)
        assert audit_exports.slice_proof_against_chain(proof), edit.__name__

    # Inside the signed package the same edit is caught by the manifest, with or without the key.
    edited = _rewrite(
        content, "audit/chain-proof.json", json.dumps(_with_proof(content, forge_head)).encode()
    )
    assert packages.verify(edited, public_key=public_key)[0]
    with pytest.raises(CommandError):
        call_command("verify_evidence", "/nonexistent.zip")
