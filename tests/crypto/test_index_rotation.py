"""Index-key rotation with a dual index (issue 25, point 5): a new index-key version is looked up
before it is written, written while the rows are re-indexed (lookups query both versions), then the
older version is retired (and, from the second rotation on, destroyed). Every contact stays findable
by phone and by external id at each stage (before, pending, half the rows moved, after), under
concurrent writes; the index confirmation (the row's own value) still decides; another tenant is
untouched; `rotate_keys --status` shows the stage and `rotate_keys --index` runs it all."""

from __future__ import annotations

import io
import threading
import uuid

import pytest
from django.core.management import call_command
from django.db import connection

from contacts.models import Contact, ContactExternalId
from contacts.normalize import ContactInput
from contacts.selectors import contact_find, contact_list
from contacts.services import UpsertStatus, contact_upsert_many
from healthmail.actors import Actor
from healthmail.crypto import blind, index_rotation, keys
from healthmail.crypto.index_rotation import IndexRotation
from healthmail.crypto.key_status import key_status
from healthmail.crypto.models import ObjectKey, TenantKey
from healthmail.errors import ApplicationError
from healthmail.tenants.context import tenant_context
from tests.factories import BaaFactory, TenantFactory

ACTOR = Actor.system("tests")


def _person(n: int) -> ContactInput:
    return ContactInput(
        email=f"rotation.{n}@example.org",
        first_name=f"Synthetic{n}",
        phone=f"+1 555 010 {n:04d}",
        external_ids={"mrn": f"MRN-{n:05d}"},
    )


def _upsert(tenant, *inputs: ContactInput):
    results = contact_upsert_many(tenant=tenant, actor=ACTOR, inputs=list(inputs), source="test")
    assert [r.messages for r in results if r.messages] == []
    return results


def _ids(tenant, search: str) -> list[uuid.UUID]:
    with tenant_context(tenant):
        return list(contact_list(tenant=tenant, search=search).values_list("pk", flat=True))


def _all_findable(tenant, people: dict[int, uuid.UUID]) -> None:
    for n, contact_id in people.items():
        person = _person(n)
        assert _ids(tenant, person.phone) == [contact_id], f"phone of contact {n}"
        assert _ids(tenant, f"mrn:{person.external_ids['mrn']}") == [contact_id], f"mrn of contact {n}"
        with tenant_context(tenant):
            found = contact_find(tenant=tenant, external_system="mrn", external_id=person.external_ids["mrn"])
        assert found.pk == contact_id


def _stored_phone_versions(tenant, numbers) -> dict[int, int]:
    """Index-key version -> contacts whose stored phone index is under it (recomputed here)."""
    with tenant_context(tenant):
        stored = {
            bytes(i) for i in Contact.objects.filter(tenant=tenant).values_list("phone_index", flat=True)
        }
        versions = list(
            TenantKey.objects.filter(tenant=tenant, purpose="index").values_list("version", flat=True)
        )
    counts: dict[int, int] = {}
    for n in numbers:
        for version in versions:
            if blind._mac(tenant.pk, "phone", _person(n).phone, version) in stored:
                counts[version] = counts.get(version, 0) + 1
    return counts


@pytest.fixture
def rotating(tenant_a):
    BaaFactory(tenant=tenant_a)
    results = _upsert(tenant_a, *[_person(n) for n in range(6)])
    return {n: result.contact_id for n, result in enumerate(results)}


@pytest.mark.django_db
def test_every_contact_stays_findable_before_during_and_after_an_index_key_rotation(tenant_a, rotating):
    people = dict(rotating)
    _all_findable(tenant_a, people)
    assert blind.versions(tenant_a).lookup == (1,)

    index_rotation.index_version_add(tenant_a.pk)  # looked up by everyone, written by no one yet
    assert blind.versions(tenant_a) == blind.IndexVersions(write=1, lookup=(2, 1), chain=(2,))
    _all_findable(tenant_a, people)

    index_rotation.index_version_activate(tenant_a.pk)  # written from now on
    (created,) = _upsert(tenant_a, _person(6))
    people[6] = created.contact_id
    _all_findable(tenant_a, people)

    result = IndexRotation()
    index_rotation.reindex(tenant_a.pk, result, batch_size=3, max_batches=1)  # half of the rows
    moved = _stored_phone_versions(tenant_a, people)
    assert sum(moved.values()) == 7
    assert moved[1] >= 3  # the batch of 3 moved at most 3, one of them may have been new already
    assert moved[2] >= 3  # the new contact and at least two moved
    _all_findable(tenant_a, people)
    # An upsert by an external id still under the old index updates its contact (no second one).
    (updated,) = _upsert(tenant_a, ContactInput(external_ids={"mrn": "MRN-00005"}, first_name="Renamed"))
    assert (updated.status, updated.contact_id) == (UpsertStatus.UPDATED, people[5])
    with tenant_context(tenant_a):
        assert ContactExternalId.objects.filter(tenant=tenant_a).count() == 7

    index_rotation.reindex(tenant_a.pk, result)
    assert index_rotation.index_versions_retire(tenant_a.pk) == []  # v1 stays: the chains start there
    assert blind.versions(tenant_a).lookup == (2,)
    assert _stored_phone_versions(tenant_a, people) == {2: 7}
    _all_findable(tenant_a, people)
    with tenant_context(tenant_a):
        states = dict(
            TenantKey.objects.filter(tenant=tenant_a, purpose="index").values_list("version", "lookup_state")
        )
    assert states == {1: "retired", 2: "active"}

    second = index_rotation.index_rotate(tenant_a.pk, settle_seconds=0)  # v2 -> v3: v2 destroyed
    assert (second.version, second.destroyed, second.damaged) == (3, [2], [])
    with tenant_context(tenant_a):
        assert not TenantKey.objects.filter(tenant=tenant_a, purpose="index", version=2).exists()
    _all_findable(tenant_a, people)
    assert _ids(tenant_a, "rotation.3@example.org") == [people[3]]  # email re-keyed through chain keys


@pytest.mark.django_db
def test_a_swapped_phone_index_finds_nobody_while_both_versions_are_looked_up(tenant_a, rotating):
    index_rotation.index_version_add(tenant_a.pk)
    index_rotation.index_version_activate(tenant_a.pk)
    index_rotation.reindex(tenant_a.pk, IndexRotation(), batch_size=1, max_batches=1)
    first, second = rotating[0], rotating[1]
    with tenant_context(tenant_a), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE contacts_contact SET phone_index = "
            "(SELECT phone_index FROM contacts_contact WHERE id = %s) WHERE id = %s",
            [first, second],
        )
    assert _ids(tenant_a, _person(0).phone) == [first]  # the copy on the other row is refused
    assert _ids(tenant_a, _person(1).phone) == []


@pytest.mark.django_db
def test_rotating_one_tenants_index_key_leaves_another_tenant_alone(tenant_a, tenant_b, rotating):
    BaaFactory(tenant=tenant_b)
    (other,) = _upsert(tenant_b, _person(0))
    with tenant_context(tenant_b):
        before = bytes(Contact.objects.get(pk=other.contact_id).phone_index)

    index_rotation.index_rotate(tenant_a.pk, settle_seconds=0)

    assert blind.versions(tenant_a).lookup == (2,)
    assert blind.versions(tenant_b).lookup == (1,)
    with tenant_context(tenant_b):
        assert bytes(Contact.objects.get(pk=other.contact_id).phone_index) == before
    with tenant_context(tenant_a):
        assert bytes(Contact.objects.get(pk=rotating[0]).phone_index) != before
    assert _ids(tenant_b, _person(0).phone) == [other.contact_id]
    assert _ids(tenant_a, _person(0).phone) == [rotating[0]]


@pytest.mark.django_db
def test_status_shows_the_index_key_stage_and_what_each_epoch_key_wraps(tenant_a, rotating):
    index_rotation.index_version_add(tenant_a.pk)
    out = io.StringIO()
    call_command("rotate_keys", status=True, tenant=tenant_a.slug, stdout=out)
    assert "index key: v1 active, v2 pending; RE-INDEXING (lookups query both)" in out.getvalue()

    out = io.StringIO()
    call_command("rotate_keys", index=True, tenant=tenant_a.slug, settle_seconds=0, stdout=out)
    assert "index key now v2: 12 row(s) re-indexed" in out.getvalue()  # 6 phones, 6 id links
    status = key_status(tenant_a.pk, scan=False)
    assert status.index_states == {1: "retired", 2: "active"}
    assert not status.reindexing
    with tenant_context(tenant_a):
        contact_keys = Contact.objects.filter(tenant=tenant_a, object_key_id__isnull=False).count()
        object_keys = ObjectKey.objects.filter(tenant=tenant_a).count()
    (epoch,) = status.epochs
    assert (epoch.current, epoch.object_keys, epoch.row_keys) == (True, object_keys, {"contacts_contact": 6})
    assert contact_keys == 6
    out = io.StringIO()
    call_command("rotate_keys", status=True, tenant=tenant_a.slug, stdout=out)
    assert f"wraps {object_keys} object key(s) (per-row keys: 6 in contacts_contact)" in out.getvalue()


def test_lookups_and_writes_during_a_rotation_under_concurrent_upserts(committed_db):
    tenant = TenantFactory(slug=f"reindex-{uuid.uuid4().hex[:8]}")
    BaaFactory(tenant=tenant)
    people = {n: r.contact_id for n, r in enumerate(_upsert(tenant, *[_person(n) for n in range(40)]))}
    stop, failures, written = threading.Event(), [], {}

    def writer() -> None:
        n = 100
        try:
            while not stop.is_set():
                try:
                    updated, created = contact_upsert_many(
                        tenant=tenant,
                        actor=ACTOR,
                        inputs=[
                            ContactInput(external_ids={"mrn": f"MRN-{n % 40:05d}"}, first_name=f"Again{n}"),
                            _person(n),
                        ],
                        source="test",
                    )
                except ApplicationError:  # a batch colliding with the re-index's locks: retried
                    continue
                if updated.contact_id != people[n % 40] or created.status != UpsertStatus.CREATED:
                    failures.append((n, updated.status, created.status))
                written[n] = created.contact_id
                for probe in (n % 40, n - 1):
                    if probe in people or probe in written:
                        expected = people.get(probe) or written[probe]
                        if _ids(tenant, _person(probe).phone) != [expected]:
                            failures.append(("lost", probe))
                n += 1
        finally:
            connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = index_rotation.index_rotate(tenant.pk, settle_seconds=0.3, batch_size=5)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert failures == []
    assert result.damaged == []
    assert written, "the writer ran during the rotation"
    _all_findable(tenant, {**people, **written})
    with tenant_context(tenant):
        assert Contact.objects.filter(tenant=tenant).count() == 40 + len(written)
        assert ContactExternalId.objects.filter(tenant=tenant).count() == 40 + len(written)
    keys.forget_all()
