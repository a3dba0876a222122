"""Blind indexes, tokens and crypto-shredding."""

import pytest

from healthmail.actors import Actor
from healthmail.crypto import blind
from healthmail.crypto.errors import DecryptionError
from healthmail.crypto.objects import content_open, content_seal, object_key_create, shred

pytestmark = pytest.mark.django_db


def test_blind_index_matches_normalized_values_only_within_a_tenant(tenant_a, tenant_b):
    assert blind.blind_index(tenant_a, "email", " Zed@Example.org ") == blind.blind_index(
        tenant_a, "email", "zed@example.org"
    )
    assert blind.blind_index(tenant_a, "email", "zed@example.org") != blind.blind_index(
        tenant_b, "email", "zed@example.org"
    )
    assert blind.blind_index(tenant_a, "phone", "+1 (555) 010-0199") == blind.blind_index(
        tenant_a, "phone", "555.010.0199"
    )


def test_kinds_never_collide(tenant_a):
    assert blind.blind_index(tenant_a, "email", "12345") != blind.blind_index(
        tenant_a, "external_id", "12345"
    )
    assert blind.token(tenant_a, "condition", "E11") != blind.token(tenant_a, "medication", "E11")


def test_tokens_are_stable_signed_64_bit_integers(tenant_a):
    value = blind.token(tenant_a, "condition", "e11 ")
    assert value == blind.token(tenant_a, "condition", "E11")
    assert -(2**63) <= value < 2**63


def test_shredded_content_is_unrecoverable(tenant_a):
    key = object_key_create(tenant=tenant_a)
    sealed = content_seal(key, b"Your lab result for Synthetic Patient Zed", aad=b"message-1")
    assert content_open(key.pk, tenant_a.pk, sealed, aad=b"message-1").startswith(b"Your lab")
    shred(key, actor=Actor.system("test"), reason="retention")
    with pytest.raises(DecryptionError, match="shredded"):
        content_open(key.pk, tenant_a.pk, sealed, aad=b"message-1")


def test_object_content_is_bound_to_its_key_and_aad(tenant_a):
    first, second = object_key_create(tenant=tenant_a), object_key_create(tenant=tenant_a)
    sealed = content_seal(first, b"body", aad=b"m1")
    with pytest.raises(DecryptionError):
        content_open(second.pk, tenant_a.pk, sealed, aad=b"m1")
    with pytest.raises(DecryptionError):
        content_open(first.pk, tenant_a.pk, sealed, aad=b"m2")
