"""Signed ZIP packages (evidence exports, certificate packages) that anyone can check offline.

`manifest.json` lists every other file with its SHA-256 and size, plus who made the package and
why; it is signed with Ed25519 exactly like audit exports and chain checkpoints (audit/chain.py: key
derived from the master key). It also names the public key, so a recipient without the master key
verifies with the public key published by the operator (`verify_evidence --public-key`): the
embedded key alone proves nothing, it must match the published one.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit import chain

FORMAT = "healthmail-evidence/1"
MANIFEST = "manifest.json"


def _canonical(manifest: dict) -> bytes:
    body = {k: v for k, v in manifest.items() if k not in ("signature", "key_id", "public_key")}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def public_key_hex(key_id: str | None = None) -> str:
    _, private_key = chain._signing_key(key_id)
    return private_key.public_key().public_bytes_raw().hex()


def build(files: dict[str, bytes], meta: dict) -> tuple[bytes, dict]:
    """The ZIP bytes and its manifest. File names are package paths (no leading slash, no '..')."""
    for name in files:
        if name == MANIFEST or name.startswith("/") or ".." in name.split("/"):
            raise ValueError(f"Bad package path: {name}")
    manifest = {
        "format": FORMAT,
        **meta,
        "files": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            for name, data in sorted(files.items())
        },
    }
    manifest["signature"], manifest["key_id"] = chain.sign(_canonical(manifest))
    manifest["public_key"] = public_key_hex(manifest["key_id"])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(files.items()):
            archive.writestr(name, data)
        archive.writestr(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
    return buffer.getvalue(), manifest


def _signature_ok(manifest: dict, public_key: str | None) -> bool:
    message, signature = _canonical(manifest), manifest.get("signature", "")
    if public_key is None:
        return chain.signature_ok(message, signature, manifest.get("key_id"))
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key)).verify(
            bytes.fromhex(signature), message
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def verify(content: bytes, *, public_key: str | None = None) -> tuple[list[str], dict]:
    """(problems, manifest). No problems: every file is there, unmodified, and the manifest is ours.

    Without `public_key` the signature is checked with the master key (on the platform itself)."""
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
    problems = []
    for name in manifest.get("files", {}):
        if name.endswith("audit-export.zip") and public_key is None:
            from audit.exports import verify_export

            problems.extend(f"{name}: {p}" for p in verify_export(archive.read(name)))
    if "audit/chain-proof.json" in manifest.get("files", {}):
        from audit.exports import verify_slice_proof

        proof = json.loads(archive.read("audit/chain-proof.json"))
        problems.extend(
            f"audit/chain-proof.json: {p}"
            for p in verify_slice_proof(proof, archive.read("audit/audit-export.zip"), public_key=public_key)
        )
    if "certificate.json" in manifest.get("files", {}):
        from .certificates import verify_certificate_files

        problems.extend(
            verify_certificate_files(
                archive.read("certificate.json"), archive.read("destroyed-records.txt"), public_key=public_key
            )
        )
    return problems


def verify_against_chain(content: bytes) -> list[str]:
    """On the platform: the package's audit slice is part of the stored chain (see chain-proof.json)."""
    from audit.exports import slice_proof_against_chain

    archive = zipfile.ZipFile(io.BytesIO(content))
    if "audit/chain-proof.json" not in archive.namelist():
        return []
    proof = json.loads(archive.read("audit/chain-proof.json"))
    return [f"audit/chain-proof.json: {p}" for p in slice_proof_against_chain(proof)]
