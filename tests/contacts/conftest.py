"""Helpers for contact tests: upsert synthetic or hand-made contacts into a tenant."""

from __future__ import annotations

import itertools

import pytest

from contacts.models import Contact
from contacts.services import ContactInput, contact_upsert_many
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context

SYSTEM = Actor.system("tests")
_numbers = itertools.count(1)


@pytest.fixture
def upsert():
    """`upsert(tenant, *inputs)` → results (asserting none failed unless `allow_errors`)."""

    def run(tenant, *inputs: ContactInput, allow_errors: bool = False, dry_run: bool = False):
        results = contact_upsert_many(
            tenant=tenant, actor=SYSTEM, inputs=list(inputs), source="test", dry_run=dry_run
        )
        if not allow_errors:
            assert [r.messages for r in results if r.messages] == []
        return results

    return run


@pytest.fixture
def make_contact(upsert):
    """`make_contact(tenant, **fields)` → the stored Contact."""

    def make(tenant, **fields) -> Contact:
        fields.setdefault("email", f"synthetic.person.{next(_numbers)}@example.org")
        (result,) = upsert(tenant, ContactInput(**fields))
        with tenant_context(tenant):
            return Contact.objects.get(pk=result.contact_id)

    return make
