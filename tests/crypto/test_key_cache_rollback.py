"""A key made inside a transaction that rolls back is not kept by the process that made it
(keys.py: served to its own connection until commit, cached on commit, dropped with a rollback):
otherwise that process would seal values, or compute indexes, under a key no other process will
ever find."""

from __future__ import annotations

import pytest
from django.db import transaction

from healthmail.crypto import blind, envelope, keys
from healthmail.crypto.models import TenantKey
from healthmail.tenants.context import tenant_context
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db

AAD = b"synthetic|rollback-test"


class Boom(Exception):
    pass


def _in_rolled_back_atomic(work):
    """Run `work` in a transaction (or a savepoint) that then rolls back; returns what it returned."""
    found = []

    def body():
        with transaction.atomic():
            found.append(work())
            raise Boom

    with pytest.raises(Boom):
        body()
    return found[0]


def test_a_data_key_made_in_a_rolled_back_transaction_seals_nothing_after_it(tenant_a):
    before = keys.current_version(tenant_a.pk, "data")

    def inside() -> int:
        made = keys.create_version(tenant_a.pk, "data")
        sealed = envelope.encrypt(tenant_a.pk, b"inside", AAD)
        assert envelope.key_version_of(sealed) == made == before + 1
        assert envelope.decrypt(tenant_a.pk, sealed, AAD) == b"inside"  # usable where it exists
        return made

    made = _in_rolled_back_atomic(inside)
    assert keys.key_row(tenant_a.pk, "data", made) is None

    sealed = envelope.encrypt(tenant_a.pk, b"after", AAD)
    assert envelope.key_version_of(sealed) == before
    keys.forget_all()  # what another process holds: only what is in the database
    assert envelope.decrypt(tenant_a.pk, sealed, AAD) == b"after"


def test_an_index_key_made_in_a_rolled_back_savepoint_is_not_used_after_it():
    tenant = TenantFactory()
    with tenant_context(tenant):
        assert not TenantKey.objects.filter(tenant=tenant, purpose="index").exists()
    with transaction.atomic():  # the savepoint inside rolls back, and the key row with it
        inside = _in_rolled_back_atomic(lambda: blind.blind_index(tenant, "phone", "+1 555 010 0001"))
        after = blind.blind_index(tenant, "phone", "+1 555 010 0001")
    keys.forget_all()
    assert blind.blind_index(tenant, "phone", "+1 555 010 0001") == after  # as any process computes it
    assert after != inside
