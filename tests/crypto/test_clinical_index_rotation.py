"""Index-key rotation of the clinical and demographic tokens (issue 25): conditions (with their
ICD-10-CM categories and subcategories), medications, procedures, labs, vaccinations, the provider,
demographic values and segmentable custom fields are keyed tokens that segments and segment-join
journeys compare in SQL (`&&`, `@>`) with tokens computed at query time. A rotation recomputes them
under the new version from each contact's sealed values (contacts/index_keys.py), so the first
index key no longer opens them.

At every stage (before, pending, active, part of the rows moved, retired, a second rotation) and
with contacts written and changed between the stages, every segment below finds exactly the
contacts whose values match: through the SQL ids, the SQL count, the evaluator and the queries a
segment-join journey runs. Afterwards no stored token equals its value under an earlier version;
another tenant is untouched; a contact whose clinical data does not decrypt is reported and keeps
being found (its older version stays looked up)."""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from contacts import reindex
from contacts.models import Contact, CustomField
from contacts.normalize import ContactInput, segmentation_columns
from contacts.services import contact_upsert_many, custom_field_create
from healthmail.actors import Actor
from healthmail.crypto import blind, index_rotation, keys
from healthmail.crypto.index_rotation import IndexRotation
from healthmail.crypto.key_status import key_status
from healthmail.crypto.models import TenantKey
from healthmail.tenants.context import tenant_context
from segmentation import evaluator, services
from tests.crypto.concurrent_rotation import rotate_under_load
from tests.factories import BaaFactory, TenantFactory

ACTOR = Actor.system("tests")


@dataclass
class Person:
    conditions: list[str] = field(default_factory=list)
    medications: list[str] = field(default_factory=list)
    procedures: list[str] = field(default_factory=list)
    vaccinations: list[str] = field(default_factory=list)
    lab_results: list[str] = field(default_factory=list)
    provider: str = ""
    ethnicity: str = ""
    insurance_type: str = ""
    religion: str = ""
    plan: str = ""

    @classmethod
    def numbered(cls, n: int) -> Person:
        return cls(
            conditions=[["E11.9"], ["E11.65", "I10"], ["I10"], [], ["e119", "J45.909"]][n % 5],
            medications=[["Metformin"], ["metformin", "Lisinopril"], []][n % 3],
            procedures=["99213"] if n % 2 == 0 else [],
            vaccinations=["Influenza"] if n % 5 == 0 else [],
            lab_results=["HBA1C-HIGH"] if n % 3 == 1 else [],
            provider="Dr. Synthetic" if n % 2 else "",
            ethnicity=["Hispanic", "Not Hispanic"][n % 2],
            insurance_type=["medicare", "commercial", "medicaid"][n % 3],
            religion="none" if n % 4 == 0 else "",
            plan=["gold", "silver", ""][n % 3],
        )

    def codes(self) -> set[str]:
        """The conditions as ICD-10-CM codes with their dot (what a category is matched against)."""
        return {c.upper() if "." in c else f"{c[:3].upper()}.{c[3:].upper()}" for c in self.conditions}

    def has_condition(self, asked: str) -> bool:
        return any(code.replace(".", "").startswith(asked.replace(".", "")) for code in self.codes())

    def medicated(self) -> set[str]:
        return {m.upper() for m in self.medications}

    def contact_input(self, email: str) -> ContactInput:
        clinical = {
            "conditions": self.conditions,
            "medications": self.medications,
            "procedures": self.procedures,
            "vaccinations": self.vaccinations,
            "lab_results": self.lab_results,
            "provider": self.provider,
        }
        demographics = {
            "ethnicity": self.ethnicity,
            "insurance_type": self.insurance_type,
            "religion": self.religion,
        }
        # Every key given (None removes what an earlier upsert stored: these fields merge by key).
        return ContactInput(
            email=email,
            first_name="Synthetic",
            clinical={k: v or None for k, v in clinical.items()},
            demographics={k: v or None for k, v in demographics.items()},
            custom={"plan": self.plan or None},
        )


# name -> (definition, who matches)
SEGMENTS: dict[str, tuple[dict, Callable[[Person], bool]]] = {
    "category E11": (
        {"field": "condition", "op": "in", "value": ["E11"]},
        lambda p: p.has_condition("E11"),
    ),
    "subcategory E11.6": (
        {"field": "condition", "op": "in", "value": ["E11.6"]},
        lambda p: p.has_condition("E11.6"),
    ),
    "code E119 without its dot": (
        {"field": "condition", "op": "in", "value": ["E119"]},
        lambda p: "E11.9" in p.codes(),
    ),
    "E11 and I10": (
        {"field": "condition", "op": "all", "value": ["E11", "I10"]},
        lambda p: p.has_condition("E11") and p.has_condition("I10"),
    ),
    "no E11": (
        {"field": "condition", "op": "not_in", "value": ["E11"]},
        lambda p: not p.has_condition("E11"),
    ),
    "metformin": (
        {"field": "medication", "op": "in", "value": ["METFORMIN"]},
        lambda p: "METFORMIN" in p.medicated(),
    ),
    "metformin and lisinopril": (
        {"field": "medication", "op": "all", "value": ["metformin", "lisinopril"]},
        lambda p: {"METFORMIN", "LISINOPRIL"} <= p.medicated(),
    ),
    "procedure": ({"field": "procedure", "op": "in", "value": ["99213"]}, lambda p: bool(p.procedures)),
    "vaccination": (
        {"field": "vaccination", "op": "in", "value": ["influenza"]},
        lambda p: bool(p.vaccinations),
    ),
    "lab": ({"field": "lab_result", "op": "in", "value": ["hba1c-high"]}, lambda p: bool(p.lab_results)),
    "provider": ({"field": "provider", "op": "in", "value": ["dr. synthetic"]}, lambda p: bool(p.provider)),
    "ethnicity": (
        {"field": "ethnicity", "op": "in", "value": ["hispanic"]},
        lambda p: p.ethnicity == "Hispanic",
    ),
    "not medicaid": (
        {"field": "insurance_type", "op": "not_in", "value": ["medicaid"]},
        lambda p: p.insurance_type != "medicaid",
    ),
    "religion": ({"field": "religion", "op": "all", "value": ["None"]}, lambda p: p.religion == "none"),
    "custom plan": ({"field": "custom.plan", "op": "in", "value": ["gold"]}, lambda p: p.plan == "gold"),
    "E11 on medicare": (
        {
            "all": [
                {"field": "condition", "op": "in", "value": ["E11"]},
                {"field": "insurance_type", "op": "in", "value": ["medicare"]},
            ]
        },
        lambda p: p.has_condition("E11") and p.insurance_type == "medicare",
    ),
}


class World:
    def __init__(self, tenant) -> None:
        self.tenant = tenant
        self.people: dict[uuid.UUID, Person] = {}
        self.emails: dict[uuid.UUID, str] = {}
        self.n = 0

    def add(self, person: Person | None = None) -> uuid.UUID:
        self.n += 1
        person = person or Person.numbered(self.n)
        email = f"clinical.{self.n}@example.org"
        [result] = contact_upsert_many(
            tenant=self.tenant, actor=ACTOR, inputs=[person.contact_input(email)], source="test"
        )
        assert not result.messages, result.messages
        self.people[result.contact_id] = person
        self.emails[result.contact_id] = email
        return result.contact_id

    def change(self, contact_id: uuid.UUID, person: Person) -> None:
        """An older contact's clinical and demographic values replaced by an upsert."""
        [result] = contact_upsert_many(
            tenant=self.tenant,
            actor=ACTOR,
            inputs=[person.contact_input(self.emails[contact_id])],
            source="test",
        )
        assert (result.contact_id, result.messages) == (contact_id, [])
        self.people[contact_id] = person

    def writes(self) -> None:
        """What the platform writes at any stage: new contacts, and an older one changed."""
        self.add()
        self.add()
        oldest = next(iter(self.people))
        self.change(oldest, Person.numbered(self.n + 1))


def expected(world: World, matches: Callable[[Person], bool]) -> set[uuid.UUID]:
    return {contact_id for contact_id, person in world.people.items() if matches(person)}


def check(world: World, stage: str) -> None:
    tenant = world.tenant
    everyone = sorted(world.people)
    with tenant_context(tenant):
        facts = evaluator.contact_facts(tenant=tenant)
    for name, (definition, matches) in SEGMENTS.items():
        wanted = expected(world, matches)
        assert wanted, f"{name}: the test needs members"
        assert wanted != set(everyone), f"{name}: the test needs non-members"
        ids = set(services.segment_member_ids(tenant=tenant, definition=definition))
        lost, extra = len(wanted - ids), len(ids - wanted)
        assert ids == wanted, f"{stage}: {name}: SQL ids (lost {lost}, extra {extra})"
        with tenant_context(tenant):
            compiled = services.segment_compile(tenant=tenant, definition=definition)
            assert services._count(compiled) == len(wanted), f"{stage}: {name}: SQL count"
            parsed = services.segment_parse(tenant=tenant, definition=definition)
        found = set(evaluator.members(parsed, facts, services._context(tenant)))
        assert found == wanted, f"{stage}: {name}: evaluator"
        # A segment-join journey: its check of changed contacts and its daily reconciliation.
        among = services.segment_members_among(tenant=tenant, definition=definition, contact_ids=everyone)
        assert among == wanted, f"{stage}: {name}: journey check"
        query, params = services.segment_members_query(tenant=tenant, definition=definition)
        with tenant_context(tenant), connection.cursor() as cursor:
            cursor.execute(services._render(query), params)
            assert {row[0] for row in cursor.fetchall()} == wanted, f"{stage}: {name}: journey reconcile"


def _stored(tenant) -> dict[uuid.UUID, tuple[list[int], list[int]]]:
    with tenant_context(tenant):
        rows = Contact.objects.filter(tenant=tenant).values_list(
            "pk", "clinical_tokens", "demographic_tokens"
        )
        return {pk: (clinical, demographic) for pk, clinical, demographic in rows}


def _under(world: World, version: int) -> dict[uuid.UUID, tuple[list[int], list[int]]]:
    """Each contact's tokens as they would be under one index-key version (recomputed here)."""

    def token(tenant, kind: str, value: str) -> int:
        return blind._token(world.tenant.pk, kind, value, version)

    found = {}
    for contact_id, person in world.people.items():
        data = person.contact_input("")
        columns = segmentation_columns(
            world.tenant,
            demographics=data.demographics,
            clinical=data.clinical,
            custom=data.custom,
            segmentable_custom={"plan"},
            token=token,
        )
        found[contact_id] = (columns["clinical_tokens"], columns["demographic_tokens"])
    return found


def _versions_held(world: World, versions: tuple[int, ...]) -> dict[int, int]:
    """Index-key version -> contacts whose stored tokens are exactly those under it."""
    stored = _stored(world.tenant)
    counts: dict[int, int] = {}
    for version in versions:
        computed = _under(world, version)
        counts[version] = sum(stored[c] == computed[c] for c in world.people)
    return counts


def _all_tokens(columns: dict[uuid.UUID, tuple[list[int], list[int]]]) -> set[int]:
    return {t for clinical, demographic in columns.values() for t in (*clinical, *demographic)}


def _build(tenant, count: int = 10) -> World:
    custom_field_create(
        tenant=tenant,
        actor=ACTOR,
        key="plan",
        label="Plan",
        field_type=CustomField.Type.CHOICE,
        phi_class="demographic",
        choices=["gold", "silver"],
        segmentable=True,
    )
    world = World(tenant)
    for _ in range(count):
        world.add()
    # Contacts holding tokens of one column only (the re-indexer writes both columns).
    world.add(Person(ethnicity="Hispanic", insurance_type="medicare"))
    world.add(Person(conditions=["E11.9"], medications=["Metformin"]))
    return world


@pytest.mark.django_db
def test_every_clinical_and_demographic_segment_finds_every_contact_at_every_stage(tenant_a):
    world = _build(tenant_a)
    check(world, "before")
    first = _under(world, 1)
    assert _stored(tenant_a) == first

    version = index_rotation.index_version_add(tenant_a.pk)  # looked up by everyone, written by no one
    assert blind.versions(tenant_a) == blind.IndexVersions(write=1, lookup=(2, 1), chain=(2,))
    check(world, "pending")
    world.writes()  # still under the first version
    check(world, "pending, after writes")
    assert _versions_held(world, (1, 2)) == {1: len(world.people), 2: 0}

    index_rotation.chain_fill(tenant_a.pk, version)
    index_rotation.index_version_activate(tenant_a.pk)
    check(world, "active")
    world.writes()  # the new and the changed contacts under the new version, the rest under the old
    check(world, "active, after writes")
    held = _versions_held(world, (1, 2))
    assert held[2] == 3
    assert held[1] == len(world.people) - 3

    result = IndexRotation()
    index_rotation.reindex(tenant_a.pk, result, batch_size=4, max_batches=1)  # part of the rows moved
    held = _versions_held(world, (1, 2))
    assert held[1] > 0, held
    assert held[2] > 3, held
    assert held[1] + held[2] == len(world.people)
    check(world, "part moved")
    world.writes()
    check(world, "part moved, after writes")

    index_rotation.reindex(tenant_a.pk, result)
    assert result.damaged == []
    assert _versions_held(world, (1, 2)) == {1: 0, 2: len(world.people)}
    index_rotation.index_versions_retire(tenant_a.pk)
    assert blind.versions(tenant_a).lookup == (2,)
    check(world, "retired")
    world.writes()
    check(world, "retired, after writes")

    second = index_rotation.index_rotate(tenant_a.pk, settle_seconds=0)  # v2 -> v3, v2 destroyed
    assert (second.version, second.destroyed, second.damaged) == (3, [2], [])
    with tenant_context(tenant_a):
        assert not TenantKey.objects.filter(tenant=tenant_a, purpose="index", version=2).exists()
    check(world, "second rotation")
    world.writes()
    check(world, "second rotation, after writes")
    stored = _stored(tenant_a)
    assert stored == _under(world, 3)


@pytest.mark.django_db
def test_stored_tokens_no_longer_equal_their_first_key_values(tenant_a):
    """A backup's attacker holding the first index key computes every code's token under it: after
    a rotation none of them is stored any more (the ICD-10 ancestors' tokens included)."""
    world = _build(tenant_a)
    first = _all_tokens(_under(world, 1))
    assert _all_tokens(_stored(tenant_a)) == first
    e11 = blind._token(tenant_a.pk, "condition", "E11", 1)  # a category, stored as an ancestor
    assert e11 in first

    result = index_rotation.index_rotate(tenant_a.pk, settle_seconds=0)
    assert (result.version, result.damaged) == (2, [])
    stored = _all_tokens(_stored(tenant_a))
    assert stored
    assert not stored & first
    assert _stored(tenant_a) == _under(world, 2)
    check(world, "after")


@pytest.mark.django_db
def test_rotating_one_tenant_leaves_another_tenants_tokens_alone(tenant_a, tenant_b):
    world = _build(tenant_a, count=6)
    other = _build(tenant_b, count=6)
    before = _stored(tenant_b)

    index_rotation.index_rotate(tenant_a.pk, settle_seconds=0)

    assert blind.versions(tenant_b).lookup == (1,)
    assert _stored(tenant_b) == before == _under(other, 1)
    assert _stored(tenant_a) == _under(world, 2)
    check(other, "the other tenant")
    check(world, "the rotated tenant")


@pytest.mark.django_db
def test_a_contact_whose_clinical_data_does_not_decrypt_is_reported_and_still_found(tenant_a):
    world = _build(tenant_a)
    damaged = next(iter(world.people))
    with tenant_context(tenant_a), connection.cursor() as cursor:  # one byte flipped in the database
        cursor.execute(
            "UPDATE contacts_contact SET clinical = set_byte(clinical, 29, get_byte(clinical, 29) # 1)"
            " WHERE id = %s",
            [damaged],
        )

    result = index_rotation.index_rotate(tenant_a.pk, settle_seconds=0)

    assert [(d.table, d.object_id) for d in result.damaged] == [("contacts_contact", str(damaged))]
    assert "clinical" in result.damaged[0].problem
    assert result.destroyed == []
    assert blind.versions(tenant_a).lookup == (2, 1)  # the old version stays looked up
    first, second = _under(world, 1), _under(world, 2)
    stored = _stored(tenant_a)
    assert stored[damaged] == first[damaged]  # skipped, as it was
    assert all(stored[c] == second[c] for c in world.people if c != damaged)  # the rest moved
    check(world, "a damaged contact skipped")

    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="1 damaged record"):
        call_command(
            "rotate_keys", index=True, tenant=tenant_a.slug, settle_seconds=0, stdout=out, stderr=err
        )
    assert f"DAMAGED, skipped: contacts_contact {damaged}" in err.getvalue()


@pytest.mark.django_db
def test_a_contact_damaged_in_several_re_indexed_columns_is_reported_once(tenant_a):
    world = _build(tenant_a, count=3)
    damaged = next(iter(world.people))
    contact_upsert_many(
        tenant=tenant_a,
        actor=ACTOR,
        inputs=[ContactInput(email=world.emails[damaged], phone="+1 555 010 0001")],
        source="test",
    )
    with tenant_context(tenant_a), connection.cursor() as cursor:  # its phone and clinical data
        cursor.execute(
            "UPDATE contacts_contact SET phone = set_byte(phone, 29, get_byte(phone, 29) # 1),"
            " clinical = set_byte(clinical, 29, get_byte(clinical, 29) # 1) WHERE id = %s",
            [damaged],
        )
    result = index_rotation.index_rotate(tenant_a.pk, settle_seconds=0)
    assert [d.record for d in result.damaged] == [f"contacts_contact {damaged}"]


@pytest.mark.django_db
def test_a_reindex_of_conditions_running_across_a_rotation_writes_no_token_of_the_old_version(tenant_a):
    """`reindex_conditions` memoizes tokens across its batches: a memo of the version written when
    it started, used after a rotation's re-index has passed the rows, would put tokens the retired
    version made back into them (and segments would lose those contacts)."""
    world = _build(tenant_a)
    with tenant_context(tenant_a):  # stale tokens, so the run rewrites every row
        Contact.objects.filter(tenant=tenant_a).update(clinical_tokens=[], demographic_tokens=[])
    rotated = []

    def after_a_batch(done: int, total: int) -> None:
        if not rotated:  # the whole rotation lands between the run's first and second batch
            rotated.append(index_rotation.index_rotate(tenant_a.pk, settle_seconds=0))

    result = reindex.contact_tokens_reindex(
        tenant=tenant_a, actor=ACTOR, batch_size=2, progress=after_a_batch
    )
    assert result.scanned == len(world.people)
    assert rotated[0].version == 2
    assert blind.versions(tenant_a).lookup == (2,)
    assert _stored(tenant_a) == _under(world, 2)
    check(world, "after the run")


@pytest.mark.django_db
def test_status_names_the_holders_rotation_recomputes(tenant_a):
    _build(tenant_a, count=3)
    out = io.StringIO()
    call_command("rotate_keys", status=True, tenant=tenant_a.slug, stdout=out)
    assert (
        "re-indexed from values: contact phones, contact external ids, contact segmentation tokens"
        in out.getvalue()
    )
    out = io.StringIO()
    call_command("rotate_keys", index=True, tenant=tenant_a.slug, settle_seconds=0, stdout=out)
    # three numbered contacts, one with demographic tokens only, one with clinical tokens only
    assert "contact segmentation tokens: 5 read, 5 re-indexed" in out.getvalue()


def test_segments_never_lose_a_contact_during_a_rotation_under_concurrent_writes(committed_db):
    """`index_rotate` (settles of 0.3 s, batches of 5) while one thread adds and changes contacts
    and another counts the segments: no segment ever misses a contact whose values match."""
    tenant = TenantFactory(slug=f"clinical-{uuid.uuid4().hex[:8]}")
    BaaFactory(tenant=tenant)
    world = _build(tenant, count=30)
    lock = threading.Lock()
    watched = {name: SEGMENTS[name] for name in ("category E11", "metformin and lisinopril", "custom plan")}

    def write() -> None:
        with lock:
            world.writes()

    def count() -> list[tuple]:
        with lock:  # the world as committed: an older contact's values change too
            found_wrong = []
            for name, (definition, matches) in watched.items():
                wanted = expected(world, matches)
                found = set(services.segment_member_ids(tenant=tenant, definition=definition))
                if found != wanted:
                    found_wrong.append((name, len(wanted - found), len(found - wanted)))
            return found_wrong

    rotate_under_load(tenant.pk, write=write, check=count)
    assert key_status(tenant.pk, scan=False).index_states == {1: "retired", 2: "active"}
    assert _stored(tenant) == _under(world, 2)
    check(world, "after the concurrent rotation")
    keys.forget_all()
