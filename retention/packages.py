"""Signed ZIP packages (evidence exports, certificate packages) that anyone can check offline.

`manifest.json` lists every other file with its SHA-256 and size, plus who made the package and
why; it is signed with the organization's Ed25519 key, like audit exports and chain checkpoints
(healthmail/crypto/signing.py). The package carries that public key (`signing-key.pem`, and in the
manifest), so a recipient verifies with `verify_evidence --public-key` or the documented openssl
commands: the embedded key alone proves nothing, it must match the key the organization publishes.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

from audit import chain
from audit.exports import slice_proof_against_chain, verify_export, verify_slice_proof
from healthmail.crypto import signing

FORMAT = "healthmail-evidence/1"
MANIFEST = "manifest.json"


def _canonical(manifest: dict) -> bytes:
    body = {k: v for k, v in manifest.items() if k not in ("signature", "key_id", "public_key")}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


PUBLIC_KEY_FILE = "signing-key.pem"


def build(files: dict[str, bytes], meta: dict) -> tuple[bytes, dict]:
    """The ZIP bytes and its manifest, signed with the key of the tenant `meta["tenant_id"]` names.
    File names are package paths (no leading slash, no '..')."""
    for name in files:
        if name in (MANIFEST, PUBLIC_KEY_FILE) or name.startswith("/") or ".." in name.split("/"):
            raise ValueError(f"Bad package path: {name}")
    key = signing.signing_key_current(meta["tenant_id"])
    files = {**files, PUBLIC_KEY_FILE: signing.public_key_pem(key).encode()}
    manifest = {
        "format": FORMAT,
        **meta,
        "files": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            for name, data in sorted(files.items())
        },
    }
    manifest["signature"], manifest["key_id"] = signing.sign_with(key, _canonical(manifest))
    manifest["public_key"] = key.public_key
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(files.items()):
            archive.writestr(name, data)
        archive.writestr(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
    return buffer.getvalue(), manifest


def _signature_ok(manifest: dict, public_key: str | None) -> bool:
    message, signature = _canonical(manifest), manifest.get("signature", "")
    if public_key is not None:
        return signing.public_key_verifies(public_key, message, signature)
    return chain.signature_ok(message, signature, manifest.get("key_id"), tenant_id=manifest.get("tenant_id"))


def verify(content: bytes, *, public_key: str | None = None) -> tuple[list[str], dict]:
    """(problems, manifest). No problems: every file is there, unmodified, and the manifest is ours.

    With `public_key` (the organization's published key, hex or PEM) anyone can check it; without,
    the platform checks it with the tenant's own key."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
        manifest = json.loads(archive.read(MANIFEST))
    except (zipfile.BadZipFile, KeyError, ValueError) as error:
        return [f"not an evidence package: {error}"], {}
    problems = []
    if manifest.get("format") != FORMAT:
        problems.append(f"unknown package format {manifest.get('format')!r}")
    if not _signature_ok(manifest, public_key):
        problems.append(
            "manifest signature does not verify (manifest edited, or not signed by this platform)"
        )
    listed = manifest.get("files", {})
    present = {name for name in archive.namelist() if name != MANIFEST}
    for name in sorted(present - set(listed)):
        problems.append(f"{name}: file not listed in the manifest (added)")
    for name, expected in sorted(listed.items()):
        if name not in present:
            problems.append(f"{name}: listed in the manifest but missing")
            continue
        data = archive.read(name)
        if hashlib.sha256(data).hexdigest() != expected["sha256"] or len(data) != expected["bytes"]:
            problems.append(f"{name}: SHA-256 differs from the manifest (file modified)")
    if not problems:
        problems.extend(_nested(archive, manifest, public_key))
    return problems, manifest


def _nested(archive: zipfile.ZipFile, manifest: dict, public_key: str | None) -> list[str]:
    """Checks that go beyond file hashes: the audit slice's own chain, the certificate's manifest."""
    problems: list[str] = []
    for name in manifest.get("files", {}):
        if name.endswith("audit-export.zip"):
            found = verify_export(archive.read(name), public_key=public_key)
            problems.extend(f"{name}: {p}" for p in found)
    if "audit/chain-proof.json" in manifest.get("files", {}):
        proof = json.loads(archive.read("audit/chain-proof.json"))
        problems.extend(
            f"audit/chain-proof.json: {p}"
            for p in verify_slice_proof(proof, archive.read("audit/audit-export.zip"), public_key=public_key)
        )
    if "certificate.json" in manifest.get("files", {}):
        from .certificates import verify_certificate_files

        problems.extend(
            verify_certificate_files(
                archive.read("certificate.json"),
                archive.read("destroyed-records.txt"),
                public_key=public_key,
                tenant_id=manifest.get("tenant_id"),
            )
        )
    return problems


def verify_against_chain(content: bytes) -> list[str]:
    """On the platform: the package's audit slice is part of the stored chain (see chain-proof.json)."""

    archive = zipfile.ZipFile(io.BytesIO(content))
    if "audit/chain-proof.json" not in archive.namelist():
        return []
    proof = json.loads(archive.read("audit/chain-proof.json"))
    return [f"audit/chain-proof.json: {p}" for p in slice_proof_against_chain(proof)]
