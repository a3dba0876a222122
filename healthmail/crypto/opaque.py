"""Opaque tokens for links in email: like healthmail.crypto.sealed, but the body is encrypted
(AES-256-GCM), so nobody holding the link learns what it carries (a contact's id, a tenant's).

    text = opaque_seal("healthmail.consent.unsubscribe", body)
    body = opaque_open("healthmail.consent.unsubscribe", text, max_chars=400)  # None: not genuine

Each purpose has its own key derived from SECRET_KEY; tokens made under a key in
SECRET_KEY_FALLBACKS still open, so rotating SECRET_KEY does not break links already in inboxes.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

_NONCE_BYTES = 12
_TAG_BYTES = 16


@functools.lru_cache(maxsize=64)
def _cipher(purpose: str, secret: str) -> AESGCM:
    return AESGCM(hashlib.sha256(f"opaque|{purpose}|{secret}".encode()).digest())


def opaque_seal(purpose: str, body: bytes) -> str:
    nonce = secrets.token_bytes(_NONCE_BYTES)
    sealed = _cipher(purpose, settings.SECRET_KEY).encrypt(nonce, body, purpose.encode())
    return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def opaque_open(purpose: str, text: str, *, max_chars: int) -> bytes | None:
    """The body of a genuine token of this purpose, else None (forged, truncated, other purpose)."""
    if len(text) > max_chars:
        return None
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) <= _NONCE_BYTES + _TAG_BYTES:
        return None
    nonce, sealed = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
    for secret in [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]:
        try:
            return _cipher(purpose, secret).decrypt(nonce, sealed, purpose.encode())
        except InvalidTag:
            continue
    return None
