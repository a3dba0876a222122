"""Blind indexes bound to their rows: an index swapped in the database finds nobody, and an upsert
through it writes nothing (issue 25). The swap is made with plain SQL, as someone with database
access would; the lookups, the search, the upsert (service and API) and the suppression list then
run as usual."""

from __future__ import annotations

import pytest
from django.db import connection

from consent.models import Suppression
from consent.suppressions import suppression_add
from contacts import binding
from contacts.models import Contact
from contacts.selectors import contact_find, contact_list, contact_lookup
from contacts.services import ContactInput, UpsertStatus
from healthmail.crypto import access
from healthmail.errors import NotFound
from healthmail.tenants.context import tenant_context

from .conftest import SYSTEM

pytestmark = pytest.mark.django_db
ALICE, BOB = "alice.binding@example.org", "bob.binding@example.org"


@pytest.fixture
def pair(tenant_a, make_contact):
    alice = make_contact(tenant_a, email=ALICE, first_name="Alice", external_ids={"mrn": "MRN-A"})
    bob = make_contact(tenant_a, email=BOB, first_name="Bob", external_ids={"mrn": "MRN-B"})
    return alice, bob


def _swap_email_indexes(tenant, alice, bob) -> None:
    """Alice's row gets Bob's address index and Bob's row Alice's (through a placeholder: the
    unique constraint is checked row by row)."""
    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, email_index FROM contacts_contact WHERE id = ANY(%s)", [[alice.pk, bob.pk]]
        )
        stored = {row[0]: bytes(row[1]) for row in cursor.fetchall()}
        cursor.execute("UPDATE contacts_contact SET email_index = %s WHERE id = %s", [b"x", alice.pk])
        cursor.execute(
            "UPDATE contacts_contact SET email_index = %s WHERE id = %s", [stored[alice.pk], bob.pk]
        )
        cursor.execute(
            "UPDATE contacts_contact SET email_index = %s WHERE id = %s", [stored[bob.pk], alice.pk]
        )


def _swap_external_id_links(tenant, alice, bob) -> None:
    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE contacts_contactexternalid SET contact_id = CASE contact_id "
            "WHEN %s THEN %s ELSE %s END WHERE contact_id = ANY(%s)",
            [alice.pk, bob.pk, alice.pk, [alice.pk, bob.pk]],
        )


def _stored(tenant, contact) -> tuple:
    with tenant_context(tenant):
        row = Contact.objects.get(pk=contact.pk)
        return row.email, row.first_name, bytes(row.email_index)


def test_before_any_swap_every_path_finds_the_right_patient(tenant_a, pair):
    alice, _bob = pair
    assert contact_lookup(tenant=tenant_a, actor=SYSTEM, identifier=ALICE, purpose="t").pk == alice.pk
    assert contact_lookup(tenant=tenant_a, actor=SYSTEM, identifier="mrn:MRN-A", purpose="t").pk == alice.pk
    with tenant_context(tenant_a):
        assert contact_find(tenant=tenant_a, email=ALICE).pk == alice.pk
        assert contact_find(tenant=tenant_a, external_system="mrn", external_id="MRN-A").pk == alice.pk


def test_a_swapped_email_index_finds_nobody(tenant_a, pair):
    alice, bob = pair
    _swap_email_indexes(tenant_a, alice, bob)
    for address in (ALICE, BOB):
        with pytest.raises(NotFound):
            contact_lookup(tenant=tenant_a, actor=SYSTEM, identifier=address, purpose="audit search")
        with pytest.raises(NotFound):
            contact_find(tenant=tenant_a, email=address)
        with tenant_context(tenant_a):
            assert list(contact_list(tenant=tenant_a, search=address)) == []


def test_an_upsert_through_a_swapped_index_overwrites_nobody(tenant_a, pair, upsert):
    alice, bob = pair
    _swap_email_indexes(tenant_a, alice, bob)
    before = {c.pk: _stored(tenant_a, c) for c in pair}
    (result,) = upsert(tenant_a, ContactInput(email=ALICE, first_name="Mallory"), allow_errors=True)
    assert result.status == UpsertStatus.ERROR
    assert result.errors[0].field == "email"
    assert "damaged" in result.messages[0]
    assert {c.pk: _stored(tenant_a, c) for c in pair} == before
    with tenant_context(tenant_a):
        assert Contact.objects.count() == 2  # and no third contact took the address either


def test_an_api_upsert_through_a_swapped_index_answers_an_error_and_writes_nothing(
    tenant_a, pair, api, issue_key
):
    alice, bob = pair
    _swap_email_indexes(tenant_a, alice, bob)
    before = {c.pk: _stored(tenant_a, c) for c in pair}
    client = api(issue_key(scopes=["contacts:write"]))
    answer = client.post("/api/v1/contacts", {"email": BOB, "first_name": "Mallory"})
    assert answer.status_code == 422, answer.content
    assert {c.pk: _stored(tenant_a, c) for c in pair} == before


def test_swapped_external_id_links_find_nobody_and_upsert_writes_nothing(tenant_a, pair, upsert):
    alice, bob = pair
    _swap_external_id_links(tenant_a, alice, bob)
    before = {c.pk: _stored(tenant_a, c) for c in pair}
    for identifier in ("mrn:MRN-A", "MRN-B"):
        with pytest.raises(NotFound):
            contact_lookup(tenant=tenant_a, actor=SYSTEM, identifier=identifier, purpose="audit search")
    with tenant_context(tenant_a), pytest.raises(NotFound):
        contact_find(tenant=tenant_a, external_system="mrn", external_id="MRN-A")
    (result,) = upsert(
        tenant_a, ContactInput(external_ids={"mrn": "MRN-A"}, first_name="Mallory"), allow_errors=True
    )
    assert result.status == UpsertStatus.ERROR
    assert {c.pk: _stored(tenant_a, c) for c in pair} == before


def test_a_suppression_by_address_does_not_land_on_the_swapped_row(tenant_a, pair):
    alice, bob = pair
    _swap_email_indexes(tenant_a, alice, bob)
    entry = suppression_add(tenant=tenant_a, actor=SYSTEM, reason=Suppression.Reason.MANUAL, email=ALICE)
    assert entry.contact_id is None  # the address is suppressed; Bob is not named for it


def test_confirmation_reads_no_phi_for_a_person(tenant_a, pair):
    """The comparison runs as the system inside a guarded request without an audited read."""
    alice, _bob = pair
    with tenant_context(tenant_a), access.guarded():
        row = Contact.objects.get(pk=alice.pk)
        assert binding.index_confirmed(row, "email", bytes(row.email_index))
        with pytest.raises(access.PhiAccessNotRecorded):
            _ = row.email  # outside the confirmation, reading stays gated
