"""DKIM signatures made with `cryptography` and our relaxed/relaxed canonicalization verify with
dkimpy, an independent implementation; any change to signed content breaks them."""

import base64
import hashlib

import dkim as dkimpy
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from dkim.canonicalization import Relaxed
from hypothesis import given, settings
from hypothesis import strategies as st

from delivery import dkim
from delivery.smtp.client import deliver_batch
from delivery.smtp.connection import MxRoute
from delivery.smtp.message import Prepared, build_message
from delivery.smtp.outcomes import Status
from delivery.tls.policy import Source, TlsPolicy

from .conftest import run


@pytest.fixture(scope="module")
def rsa_key():
    private, public = dkim.generate_key("rsa-sha256")
    return dkim.SigningKey("clinic-a.test", "hm202601a", "rsa-sha256", private), public


def _dnsfunc(public, algorithm="rsa-sha256"):
    record = dkim.dns_record(public, algorithm).encode()

    def lookup(name, timeout=5):
        assert name in (b"hm202601a._domainkey.clinic-a.test.", "hm202601a._domainkey.clinic-a.test.")
        return record

    return lookup


def _message(subject="Your appointment", body="See you Tuesday.\n", html=None):
    headers = [
        ("From", "Synthetic Clinic A <care@clinic-a.test>"),
        ("To", "pat@patients.test"),
        ("Subject", subject),
        ("Date", "Mon, 05 Jan 2026 10:00:00 +0000"),
        ("Message-ID", "<abc@clinic-a.test>"),
    ]
    return build_message(headers, text=body, html=html)


def test_signature_verifies_with_dkimpy(rsa_key):
    key, public = rsa_key
    signed = dkim.sign_message(_message(html="<p>See   you</p>\n"), key)
    assert signed.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=clinic-a.test;")
    assert dkimpy.verify(signed, dnsfunc=_dnsfunc(public))


@settings(max_examples=25, deadline=None)
@given(
    subject=st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc", "Zl", "Zp"]), max_size=150
    ),
    body=st.lists(st.sampled_from(["a", "é", " ", "\t", "\n", "\r\n", ".", "x" * 90]), max_size=60).map(
        "".join
    ),
)
def test_signatures_over_arbitrary_subjects_and_whitespace_verify(rsa_key, subject, body):
    key, public = rsa_key
    assert dkimpy.verify(
        dkim.sign_message(_message(subject=subject, body=body), key), dnsfunc=_dnsfunc(public)
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"a", b" ", b"  ", b"\t", b"\r\n", b".", b"x"]), max_size=40).map(b"".join))
def test_body_canonicalization_matches_dkimpy(body):
    """The fast paths (skipping substitutions a body does not need) give dkimpy's relaxed form."""
    assert dkim.canonical_body(body) == Relaxed.canonicalize_body(body)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([b"a", b" ", b"  ", b"\t", b"\r\n ", b"\r\n\t", b":"]), max_size=30).map(
        b"".join
    )
)
def test_header_canonicalization_matches_dkimpy(value):
    [(name, canonical)] = Relaxed.canonicalize_headers([(b"Subject", value)])
    assert dkim.canonical_header(b"Subject", value) == name + b":" + canonical.removesuffix(b"\r\n")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda m: m.replace(b"See you Tuesday", b"See you Thursday"),
        lambda m: m.replace(b"Subject: Your appointment", b"Subject: Your appointmenT"),
        lambda m: m.replace(b"To: pat@patients.test", b"To: other@patients.test"),
        lambda m: m.replace(b"\r\nFrom:", b"\r\nFrom: attacker@evil.test\r\nFrom:", 1),  # over-signed From
    ],
)
def test_tampering_breaks_the_signature(rsa_key, tamper):
    key, public = rsa_key
    signed = dkim.sign_message(_message(), key)
    assert not dkimpy.verify(tamper(signed), dnsfunc=_dnsfunc(public))


def _add_before_body(message: bytes, header: bytes) -> bytes:
    """What a relay could do: append a header field after the others (where verifiers look first)."""
    head, _, body = message.partition(b"\r\n\r\n")
    return head + b"\r\n" + header + b"\r\n\r\n" + body


def _marketing_message() -> bytes:
    headers = [
        ("From", "Synthetic Clinic A <news@clinic-a.test>"),
        ("To", "pat@patients.test"),
        ("Subject", "Seasonal tips"),
        ("Date", "Mon, 05 Jan 2026 10:00:00 +0000"),
        ("Message-ID", "<news@clinic-a.test>"),
        ("List-Unsubscribe", "<https://clinic-a.test/u/opaque>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    ]
    return build_message(headers, text="Tips.\n")


ADDED_IN_TRANSIT = [
    b"Subject: Your results are ready - sign in here",
    b"To: someone-else@patients.test",
    b"Date: Tue, 06 Jan 2026 10:00:00 +0000",
    b"Message-ID: <forged@evil.test>",
    b"From: attacker@evil.test",
    b"Reply-To: attacker@evil.test",
    b"Cc: attacker@evil.test",
    b"MIME-Version: 1.0",
    b"Content-Type: text/html",
    b"Content-Transfer-Encoding: base64",
    b"List-Unsubscribe: <https://evil.test/u>",
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
]


@pytest.mark.parametrize("added", ADDED_IN_TRANSIT)
@pytest.mark.parametrize("make", [_message, _marketing_message])
def test_a_header_added_in_transit_breaks_the_signature(rsa_key, added, make):
    """RFC 6376 §8.15: every signed header is over-signed, present or not."""
    key, public = rsa_key
    signed = dkim.sign_message(make(), key)
    assert dkimpy.verify(signed, dnsfunc=_dnsfunc(public))  # untouched, it verifies
    assert not dkimpy.verify(_add_before_body(signed, added), dnsfunc=_dnsfunc(public))
    # and at the top, where some verifiers and clients read first
    header_line, rest = signed.split(b"\r\n", 1)
    assert not dkimpy.verify(header_line + b"\r\n" + added + b"\r\n" + rest, dnsfunc=_dnsfunc(public))


def test_the_signature_names_each_header_once_more_than_it_occurs(rsa_key):
    key, _ = rsa_key
    signed = dkim.sign_message(_marketing_message(), key)
    tags = dict(part.strip().split("=", 1) for part in signed.split(b"\r\n", 1)[0].decode().split(";"))
    names = tags["h"].split(":")
    for name in ("from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post"):
        assert names.count(name) == 2, name
    for name in ("cc", "reply-to"):  # absent: named once, so adding one breaks the signature
        assert names.count(name) == 1, name


def test_whitespace_changes_in_transit_are_tolerated_by_relaxed_canonicalization(rsa_key):
    key, public = rsa_key
    signed = dkim.sign_message(_message(), key)
    rewrapped = signed.replace(b"Subject: Your appointment", b"Subject:   Your \t appointment  ")
    assert dkimpy.verify(rewrapped, dnsfunc=_dnsfunc(public))


def test_ed25519_signature_verifies_over_the_canonical_form():
    """RFC 8463. dkimpy needs PyNaCl for Ed25519 (not installed), so the check rebuilds the signed
    data with the canonicalization dkimpy just validated for RSA and verifies with the public key."""
    private, public = dkim.generate_key("ed25519-sha256")
    key = dkim.SigningKey("clinic-a.test", "ed1", "ed25519-sha256", private)
    signed = dkim.sign_message(_message(), key, timestamp=1767607200)
    header_line, message = signed.split(b"\r\n", 1)
    tags = dict(part.strip().split("=", 1) for part in header_line.decode().split(":", 1)[1].split(";"))
    fields, body = dkim.split_message(message)
    assert tags["bh"] == base64.b64encode(hashlib.sha256(dkim.canonical_body(body)).digest()).decode()
    _names, lines = dkim._selected_headers(fields)
    unsigned = header_line.decode().rsplit("b=", 1)[0] + "b="
    data = b"".join(lines) + dkim.canonical_header(b"DKIM-Signature", unsigned.split(":", 1)[1].encode())
    Ed25519PublicKey.from_public_bytes(base64.b64decode(public)).verify(
        base64.b64decode(tags["b"]), hashlib.sha256(data).digest()
    )


def test_what_the_server_receives_still_verifies(kit, transport, rsa_key):
    key, public = rsa_key
    content = dkim.sign_message(_message(body=".leading dot\nline  with   spaces \n"), key)
    message = Prepared(key="k", sender="bounce@clinic-a.test", recipient="pat@good.test", content=content)
    policy = TlsPolicy(domain="good.test", source=Source.STARTTLS_PROBE)

    (outcome,) = run(deliver_batch(MxRoute.from_mx(kit["good"].mx()), [message], policy, transport=transport))

    assert outcome.status == Status.DELIVERED
    assert dkimpy.verify(kit["good"].messages[0].content, dnsfunc=_dnsfunc(public))
