"""contact_upsert_many: matching, merging, derivations, validation and batch cost."""

from __future__ import annotations

import dataclasses
import datetime

import pytest
from django.db import connection
from django.utils import timezone

from audit.models import AuditEvent
from contacts import reference
from contacts.models import Contact, ContactExternalId, CustomField, SensitiveCategory
from contacts.services import (
    BatchTooLarge,
    ContactInput,
    UpsertStatus,
    contact_delete,
    contact_upsert_many,
    custom_field_create,
)
from contacts.synthetic import synthetic_contacts
from healthmail.crypto import blind
from healthmail.tenants.context import tenant_context
from tests.contacts.conftest import SYSTEM

pytestmark = pytest.mark.django_db


def years_ago(years: int, days: int = 10) -> datetime.date:
    today = timezone.localdate()
    return today.replace(year=today.year - years) - datetime.timedelta(days=days)


def stored(tenant, contact_id) -> Contact:
    with tenant_context(tenant):
        return Contact.objects.get(pk=contact_id)


def test_new_contact_gets_indexes_tokens_and_deidentified_columns(tenant_a, upsert):
    born = years_ago(40)
    (result,) = upsert(
        tenant_a,
        ContactInput(
            email="  Synthetic.One@Example.org ",
            first_name="Synthetic",
            last_name="One",
            phone="(555) 010-0001",
            postal_address={"line1": "1 Test Way", "city": "Testville", "state": "ca", "zip": "90012-1234"},
            birth_date=born,
            external_ids={"EPIC": "MRN-1"},
            demographics={"gender": "Female", "preferred_language": "ES", "religion": "none"},
            clinical={"conditions": ["E11.9", "F32.9"], "medications": ["Metformin"], "provider": "Dr. X"},
            journey_stage="Active",
            tags=["newsletter"],
        ),
    )
    assert result.status == UpsertStatus.CREATED
    contact = stored(tenant_a, result.contact_id)
    assert bytes(contact.email_index) == blind.blind_index(tenant_a, "email", "synthetic.one@example.org")
    assert bytes(contact.phone_index) == blind.blind_index(tenant_a, "phone", "5550100001")
    assert (contact.state, contact.zip3, contact.gender, contact.language) == ("CA", "900", "female", "es")
    assert (contact.birth_year, contact.age_90_or_older, contact.is_minor) == (born.year, False, False)
    assert contact.journey_stage == "active"
    assert blind.token(tenant_a, "condition", "e11.9") in contact.clinical_tokens
    assert blind.token(tenant_a, "medication", "METFORMIN") in contact.clinical_tokens
    assert blind.token(tenant_a, "provider", "dr. x") in contact.clinical_tokens
    assert blind.token(tenant_a, "religion", "None") in contact.demographic_tokens
    assert contact.tag_tokens == [blind.token(tenant_a, "tag", "newsletter")]
    assert contact.sensitive_categories == [SensitiveCategory.BEHAVIORAL_HEALTH]
    with tenant_context(tenant_a):
        link = ContactExternalId.objects.get(contact=contact)
    assert link.system == "epic"
    # Identity is encrypted at rest: the raw column holds no plaintext.
    with tenant_context(tenant_a), connection.cursor() as cursor:
        cursor.execute("SELECT email, last_name FROM contacts_contact WHERE id = %s", [contact.pk])
        raw_email, raw_name = cursor.fetchone()
    assert b"example.org" not in bytes(raw_email)
    assert b"One" not in bytes(raw_name)


def test_age_90_or_older_folds_birth_year_and_minor_is_flagged(tenant_a, upsert):
    old, minor = upsert(
        tenant_a,
        ContactInput(email="old@example.org", birth_date=years_ago(90)),
        ContactInput(email="young@example.org", birth_date=years_ago(17)),
    )
    old_contact, minor_contact = stored(tenant_a, old.contact_id), stored(tenant_a, minor.contact_id)
    assert (old_contact.birth_year, old_contact.age_90_or_older) == (None, True)
    assert (minor_contact.is_minor, minor_contact.birth_year) == (True, years_ago(17).year)


def test_just_under_90_keeps_birth_year_and_18_is_adult(tenant_a, upsert):
    eighty_nine, adult = upsert(
        tenant_a,
        ContactInput(email="89@example.org", birth_date=years_ago(90, days=-10)),
        ContactInput(email="18@example.org", birth_date=years_ago(18)),
    )
    assert stored(tenant_a, eighty_nine.contact_id).age_90_or_older is False
    assert stored(tenant_a, eighty_nine.contact_id).birth_year is not None
    assert stored(tenant_a, adult.contact_id).is_minor is False


@pytest.mark.parametrize(("zip_code", "zip3"), [("03601", "000"), ("89301", "000"), ("10001", "100")])
def test_restricted_zip3_is_replaced(tenant_a, upsert, zip_code, zip3):
    (result,) = upsert(tenant_a, ContactInput(email="zip@example.org", postal_address={"zip": zip_code}))
    assert stored(tenant_a, result.contact_id).zip3 == zip3


@pytest.mark.parametrize(
    ("code", "category"),
    [
        ("F10.20", SensitiveCategory.SUBSTANCE_USE),
        ("F19", SensitiveCategory.SUBSTANCE_USE),
        ("F20.9", SensitiveCategory.BEHAVIORAL_HEALTH),
        ("F99", SensitiveCategory.BEHAVIORAL_HEALTH),
        ("B20", SensitiveCategory.HIV),
        ("Z21", SensitiveCategory.HIV),
        ("O09.90", SensitiveCategory.REPRODUCTIVE),
        ("Z34.00", SensitiveCategory.REPRODUCTIVE),
        ("Z15.01", SensitiveCategory.GENETIC),
        ("E11.9", None),
        ("Z00.00", None),
    ],
)
def test_condition_codes_map_to_sensitive_categories(code, category):
    assert reference.category_of_condition(code) == category


def test_substance_use_medication_flags_the_contact(tenant_a, upsert):
    (result,) = upsert(
        tenant_a, ContactInput(email="m@example.org", clinical={"medications": ["Buprenorphine"]})
    )
    assert stored(tenant_a, result.contact_id).sensitive_categories == [SensitiveCategory.SUBSTANCE_USE]


def test_same_email_updates_then_reports_unchanged(tenant_a, upsert):
    (first,) = upsert(tenant_a, ContactInput(email="same@example.org", first_name="Synthetic"))
    (second,) = upsert(tenant_a, ContactInput(email="SAME@example.org", last_name="Person"))
    (third,) = upsert(tenant_a, ContactInput(email="SAME@example.org", last_name="Person"))
    assert (second.status, third.status) == (UpsertStatus.UPDATED, UpsertStatus.UNCHANGED)
    assert first.contact_id == second.contact_id == third.contact_id
    contact = stored(tenant_a, first.contact_id)
    with_grant = _read(contact, "first_name", "last_name")
    assert with_grant == ("Synthetic", "Person")  # fields not given are kept


def _read(contact, *fields):
    return tuple(getattr(contact, field) for field in fields)


def test_external_id_wins_over_email_and_can_change_the_email(tenant_a, upsert):
    (first,) = upsert(tenant_a, ContactInput(email="old@example.org", external_ids={"ehr": "A1"}))
    (second,) = upsert(tenant_a, ContactInput(email="new@example.org", external_ids={"ehr": "a1"}))
    assert second.status == UpsertStatus.UPDATED
    assert second.contact_id == first.contact_id
    contact = stored(tenant_a, first.contact_id)
    assert bytes(contact.email_index) == blind.blind_index(tenant_a, "email", "new@example.org")
    (third,) = upsert(tenant_a, ContactInput(email="old@example.org"))
    assert third.status == UpsertStatus.CREATED  # the old address is free again


def test_demographics_and_clinical_merge_key_by_key_and_none_removes(tenant_a, upsert):
    (result,) = upsert(
        tenant_a,
        ContactInput(
            email="merge@example.org",
            demographics={"gender": "male", "religion": "synthetic"},
            clinical={"conditions": ["F11.20"]},
            tags=["vip"],
        ),
    )
    upsert(
        tenant_a,
        ContactInput(
            email="merge@example.org", demographics={"religion": None}, clinical={"medications": ["X"]}
        ),
    )
    contact = stored(tenant_a, result.contact_id)
    assert contact.demographic_tokens == [blind.token(tenant_a, "gender", "male")]
    assert contact.gender == "male"
    assert contact.sensitive_categories == [SensitiveCategory.SUBSTANCE_USE]  # conditions were kept
    assert contact.tag_tokens == [blind.token(tenant_a, "tag", "vip")]  # tags were not given: kept


def test_an_email_of_another_contact_is_refused(tenant_a, upsert):
    upsert(tenant_a, ContactInput(email="taken@example.org"))
    upsert(tenant_a, ContactInput(email="mine@example.org", external_ids={"ehr": "B"}))
    (result,) = upsert(
        tenant_a, ContactInput(email="taken@example.org", external_ids={"ehr": "B"}), allow_errors=True
    )
    assert result.status == UpsertStatus.ERROR
    assert result.messages == ["email: is already the address of another contact"]


def test_ids_of_two_contacts_in_one_row_are_refused(tenant_a, upsert):
    upsert(tenant_a, ContactInput(email="a@example.org", external_ids={"ehr": "1"}))
    upsert(tenant_a, ContactInput(email="b@example.org", external_ids={"crm": "2"}))
    (result,) = upsert(tenant_a, ContactInput(external_ids={"ehr": "1", "crm": "2"}), allow_errors=True)
    assert result.status == UpsertStatus.ERROR
    assert result.errors[0].field == "external_ids"


def test_duplicates_inside_one_batch_become_one_contact(tenant_a, upsert):
    first, second, third = upsert(
        tenant_a,
        ContactInput(email="dup@example.org", first_name="A"),
        ContactInput(email="Dup@Example.org", last_name="B"),
        ContactInput(email="other@example.org", external_ids={"ehr": "9"}),
    )
    assert first.contact_id == second.contact_id != third.contact_id
    assert (first.status, second.status) == (UpsertStatus.CREATED, UpsertStatus.UPDATED)
    with tenant_context(tenant_a):
        assert Contact.objects.count() == 2


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (ContactInput(email="not-an-email"), "email: is not a valid email address"),
        (
            ContactInput(email="x@example.org", birth_date="2023-02-30"),
            "birth_date: is not a real calendar date",
        ),
        (
            ContactInput(email="x@example.org", birth_date="yesterday"),
            "birth_date: must be YYYY-MM-DD or MM/DD/YYYY",
        ),
        (ContactInput(email="x@example.org", birth_date="2999-01-01"), "birth_date: is in the future"),
        (
            ContactInput(email="x@example.org", postal_address={"state": "ZZ"}),
            "postal_address.state: is not a US state or territory code (e.g. CA)",
        ),
        (
            ContactInput(email="x@example.org", postal_address={"zip": "1234"}),
            "postal_address.zip: must be a 5-digit ZIP code or ZIP+4",
        ),
        (
            ContactInput(email="x@example.org", clinical={"conditions": ["diabetes"]}),
            "clinical.conditions: each condition must be an ICD-10 code such as E11.9",
        ),
        (
            ContactInput(email="x@example.org", phone="call me"),
            "phone: may contain only digits, spaces and + ( ) . -",
        ),
        (ContactInput(email="x@example.org", journey_stage="someday"), "journey_stage: must be one of"),
        (
            ContactInput(email="x@example.org", demographics={"shoe_size": "9"}),
            "demographics: unknown keys shoe_size",
        ),
    ],
)
def test_validation_names_the_field_and_rule_never_the_value(data, expected):
    errors = data.validate()
    assert len(errors) == 1
    assert errors[0].startswith(expected)
    assert "2023-02-30" not in errors[0]
    assert "diabetes" not in errors[0]
    assert "call me" not in errors[0]


def test_invalid_rows_are_reported_and_valid_rows_still_written(tenant_a, upsert):
    good, bad = upsert(
        tenant_a,
        ContactInput(email="good@example.org"),
        ContactInput(email="bad@", birth_date="13/45/2000"),
        allow_errors=True,
    )
    assert good.status == UpsertStatus.CREATED
    assert bad.status == UpsertStatus.ERROR
    assert bad.contact_id is None
    assert {e.field for e in bad.errors} == {"email", "birth_date"}
    with tenant_context(tenant_a):
        assert Contact.objects.count() == 1


def test_dry_run_reports_but_writes_nothing(tenant_a, upsert):
    upsert(tenant_a, ContactInput(email="exists@example.org"))
    new, existing = upsert(
        tenant_a,
        ContactInput(email="new@example.org"),
        ContactInput(email="exists@example.org", first_name="Changed"),
        dry_run=True,
    )
    assert (new.status, new.contact_id) == (UpsertStatus.CREATED, new.contact_id)
    assert existing.status == UpsertStatus.UPDATED
    with tenant_context(tenant_a):
        assert Contact.objects.count() == 1
        assert stored(tenant_a, existing.contact_id).first_name is None


def test_one_audit_event_per_batch_with_counts_only(tenant_a, upsert):
    upsert(
        tenant_a, ContactInput(email="a@example.org"), ContactInput(email="b@example.org", first_name="Zed")
    )
    with tenant_context(tenant_a):
        events = list(AuditEvent.objects.filter(action="contacts.upsert"))
    assert len(events) == 1
    assert events[0].details == {
        "source": "test",
        "dry_run": False,
        "rows": 2,
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "error": 0,
    }
    assert "example.org" not in str(events[0].details)
    assert "Zed" not in str(events[0].details)


def test_batch_cost_does_not_grow_with_rows(tenant_a, django_assert_max_num_queries):
    inputs = list(synthetic_contacts(count=300, seed=3))
    contact_upsert_many(tenant=tenant_a, actor=SYSTEM, inputs=inputs[:10], source="test")  # warm keys
    # Per-contact keys add a constant four per batch: the stored contacts' keys (one query), the
    # epoch lock, the current epoch and the new keys (one insert) — never one per row.
    with django_assert_max_num_queries(24):
        results = contact_upsert_many(tenant=tenant_a, actor=SYSTEM, inputs=inputs, source="test")
    assert [r.status for r in results].count(UpsertStatus.CREATED) == 290
    changed = [dataclasses.replace(data, journey_stage="lapsed", first_name="Renamed") for data in inputs]
    with django_assert_max_num_queries(24):
        results = contact_upsert_many(tenant=tenant_a, actor=SYSTEM, inputs=changed, source="test")
    assert {r.status for r in results} == {UpsertStatus.UPDATED}
    with tenant_context(tenant_a):
        assert Contact.objects.filter(journey_stage="lapsed").count() == 300
    results = contact_upsert_many(tenant=tenant_a, actor=SYSTEM, inputs=changed, source="test")
    assert {r.status for r in results} == {UpsertStatus.UNCHANGED}


def test_more_than_a_thousand_is_refused(tenant_a):
    with pytest.raises(BatchTooLarge):
        contact_upsert_many(tenant=tenant_a, actor=SYSTEM, inputs=[ContactInput()] * 1001, source="test")


def test_deleted_contact_leaves_lists_and_its_address_can_return(tenant_a, upsert):
    (first,) = upsert(tenant_a, ContactInput(email="gone@example.org", external_ids={"ehr": "G1"}))
    contact = stored(tenant_a, first.contact_id)
    contact_delete(tenant=tenant_a, actor=SYSTEM, contact=contact, reason="patient request")
    assert stored(tenant_a, first.contact_id).deleted_at is not None
    (again,) = upsert(tenant_a, ContactInput(email="gone@example.org", external_ids={"ehr": "G1"}))
    assert again.status == UpsertStatus.CREATED
    assert again.contact_id != first.contact_id
    with tenant_context(tenant_a):
        assert ContactExternalId.objects.get(system="ehr").contact_id == again.contact_id
        event = AuditEvent.objects.get(action="contacts.delete")
    assert (event.target_id, event.reason) == (str(first.contact_id), "patient request")


def test_custom_fields_are_checked_and_segmentable_ones_tokenized(tenant_a, upsert):
    custom_field_create(
        tenant=tenant_a,
        actor=SYSTEM,
        key="plan",
        label="Plan",
        field_type=CustomField.Type.CHOICE,
        phi_class="demographic",
        choices=["gold", "silver"],
        segmentable=True,
    )
    ok, bad = upsert(
        tenant_a,
        ContactInput(email="c@example.org", custom={"plan": "gold"}),
        ContactInput(email="d@example.org", custom={"plan": "bronze", "unknown": "1"}),
        allow_errors=True,
    )
    assert ok.status == UpsertStatus.CREATED
    assert blind.token(tenant_a, "custom.plan", "gold") in stored(tenant_a, ok.contact_id).demographic_tokens
    assert [str(e) for e in bad.errors] == [
        "custom.plan: must be one of gold, silver",
        "custom.unknown: is not a custom field of this organization",
    ]


def test_tenants_never_share_indexes_or_matches(tenant_a, tenant_b, upsert):
    (in_a,) = upsert(tenant_a, ContactInput(email="shared@example.org", external_ids={"ehr": "S"}))
    (in_b,) = upsert(tenant_b, ContactInput(email="shared@example.org", external_ids={"ehr": "S"}))
    assert in_b.status == UpsertStatus.CREATED
    assert bytes(stored(tenant_a, in_a.contact_id).email_index) != bytes(
        stored(tenant_b, in_b.contact_id).email_index
    )
