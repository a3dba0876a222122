"""Index-key rotation of the chained kinds (issue 25, point 5): email indexes (contacts, suppressions,
messages), FHIR request identifiers and tags are compared across tables or kept only as an index,
so a rotation re-keys each stored index (blind.py: index_n = HMAC(chain_n, index_(n-1))) instead of
recomputing it, and every comparison between two stored rows matches either's index or next index
while it runs.

At every stage (before, pending, next indexes filled in, active, half the rows swapped, retired, a
second rotation) and with writes between the stages: every contact is found by its address, every
tag and request identifier is found, and every suppression still blocks a send, through each gate
(one contact, a batch, a bare address, a queued message) and the segment's `suppressed` field (SQL
and the evaluator). The safety-critical one runs the rotation under concurrent writers and a gate
that must never answer "allowed" for a suppressed address."""

from __future__ import annotations

import io
import random
import threading
import time
import uuid

import pytest
from django.core.management import call_command
from django.db import connection

from consent import suppressions
from consent.gate import may_send, may_send_batch, may_send_to_addresses
from consent.models import Suppression
from contacts.models import Contact
from contacts.normalize import ContactInput
from contacts.selectors import contact_list, contact_with_email
from contacts.services import contact_upsert_many
from contacts.tagging import contacts_tag
from delivery.engine.gate import gate_messages
from delivery.models import Message
from delivery.outbox import OutboxRecipient, message_enqueue_many
from fhir_api.models import CommunicationRequestRecord
from fhir_api.services import communication_request_find, request_identifier_index
from healthmail.actors import Actor
from healthmail.crypto import blind, index_rotation
from healthmail.crypto.index_rotation import IndexRotation
from healthmail.crypto.key_status import key_status
from healthmail.tenants.context import tenant_context
from journeys.services.steps import tagged
from segmentation.evaluator import contact_facts
from segmentation.services import segment_member_ids
from tests.crypto.concurrent_rotation import rotate_under_load
from tests.factories import BaaFactory, TenantFactory

ACTOR = Actor.system("tests")
SUPPRESSED = {"field": "suppressed", "op": "eq", "value": True}
VIP = {"field": "tag", "op": "in", "value": ["vip"]}


class World:
    """What the tenant holds and what each check expects."""

    def __init__(self, tenant) -> None:
        self.tenant = tenant
        self.contacts: dict[str, uuid.UUID] = {}  # address -> contact
        self.blocked: set[uuid.UUID] = set()  # contacts whose address is suppressed (address only)
        self.bare: list[str] = []  # suppressed addresses of no contact
        self.queued: dict[str, uuid.UUID] = {}  # bare suppressed address -> a message queued to it
        self.vip: set[uuid.UUID] = set()
        self.requests: dict[str, uuid.UUID] = {}  # request identifier -> record
        self.n = 0

    def _next(self) -> int:
        self.n += 1
        return self.n

    def contact(self, *, suppressed: bool, vip: bool = False) -> uuid.UUID:
        n = self._next()
        address = f"Chain.{n}@Example.org"
        if suppressed:  # suppressed before the contact exists: the entry holds the address's index only
            suppressions.suppression_add(tenant=self.tenant, actor=ACTOR, reason="hard_bounce", email=address)
        [result] = contact_upsert_many(
            tenant=self.tenant,
            actor=ACTOR,
            inputs=[
                ContactInput(email=address.lower(), first_name=f"Synthetic{n}", tags=["vip"] if vip else [])
            ],
            source="test",
        )
        assert not result.messages, result.messages
        self.contacts[address] = result.contact_id
        if suppressed:
            self.blocked.add(result.contact_id)
        if vip:
            self.vip.add(result.contact_id)
        return result.contact_id

    def bare_address(self) -> None:
        address = f"bare.{self._next()}@example.org"
        suppressions.suppression_add(tenant=self.tenant, actor=ACTOR, reason="legal_request", email=address)
        self.bare.append(address)
        [message] = message_enqueue_many(
            tenant=self.tenant,
            stream="transactional",
            source_type="api",
            source_id="chained-test",
            purpose="treatment",
            recipients=[OutboxRecipient(None, address)],
        )
        self.queued[address] = message.pk

    def request(self) -> None:
        value = f"ORDER-{self._next()}"
        identifier = request_identifier_index(self.tenant, "urn:example:orders", value)
        [message] = message_enqueue_many(
            tenant=self.tenant,
            stream="transactional",
            source_type="api",
            source_id="chained-request",
            purpose="treatment",
            recipients=[OutboxRecipient(None, f"{value.lower()}@example.org")],
        )
        with tenant_context(self.tenant):
            record = CommunicationRequestRecord.objects.create(
                tenant=self.tenant,
                identifier_index=identifier.index,
                identifier_index_next=identifier.next_index,
                message=message,
            )
        self.requests[value] = record.pk

    def writes(self) -> None:
        """What the platform writes at any stage: each kind once more."""
        self.contact(suppressed=True, vip=True)
        self.contact(suppressed=False)
        self.bare_address()
        self.request()
        # A tag added by automation to an older contact, and a suppression added by address to a
        # contact that exists (it names the contact too).
        plain = sorted(set(self.contacts.values()) - self.blocked - self.vip)[0]
        contacts_tag(tenant=self.tenant, actor=ACTOR, contact_ids=[plain], tag="vip")
        self.vip.add(plain)


def check(world: World, stage: str) -> None:
    tenant = world.tenant
    everyone = sorted(world.contacts.values())
    for address, contact_id in world.contacts.items():
        with tenant_context(tenant):
            found = contact_with_email(tenant=tenant, email=address)
            listed = list(contact_list(tenant=tenant, search=address.lower()).values_list("pk", flat=True))
        assert (found.pk if found else None) == contact_id, f"{stage}: {address} not found"
        assert listed == [contact_id], f"{stage}: {address} not listed"
    # The gate, one contact at a time and in a batch: a suppressed address never gets mail.
    with tenant_context(tenant):
        stored = {c.pk: c for c in Contact.objects.filter(tenant=tenant)}
    for contact_id in everyone:
        decision = may_send(contact=stored[contact_id], purpose="treatment", uses_phi=False)
        assert decision.allowed is (contact_id not in world.blocked), f"{stage}: single gate, {decision.code}"
    batch = may_send_batch(tenant=tenant, contact_ids=everyone, purpose="treatment", uses_phi=False)
    allowed = {contact_id for contact_id, decision in batch.items() if decision.allowed}
    assert allowed == set(everyone) - world.blocked, f"{stage}: batch gate"
    # A bare address: by its index computed now, and through the message queued to it earlier.
    for address in world.bare:
        index = blind.blind_index(tenant, "email", address)
        answer = may_send_to_addresses(tenant=tenant, address_indexes=[index], purpose="treatment")[index]
        assert answer.code == "suppressed_legal_request", f"{stage}: bare address {answer.code}"
    with tenant_context(tenant):
        messages = list(Message.objects.filter(tenant=tenant, pk__in=world.queued.values()))
    results = gate_messages(tenant=tenant, messages=messages)
    assert len(results) == len(world.queued)
    assert not any(result.allowed for result in results.values()), f"{stage}: a queued message passed"
    # Segments: the compiled SQL and the evaluator.
    assert set(segment_member_ids(tenant=tenant, definition=SUPPRESSED)) == world.blocked, f"{stage}: segment"
    with tenant_context(tenant):
        facts = contact_facts(tenant=tenant)
    assert {f.id for f in facts if f.suppressed} == world.blocked, f"{stage}: evaluator"
    # Tags: the segment field and a journey's tag condition.
    assert set(segment_member_ids(tenant=tenant, definition=VIP)) == world.vip, f"{stage}: tag segment"
    with tenant_context(tenant):
        journey = tagged(tenant=tenant, tag="vip", contact_ids=everyone)
    assert journey == world.vip, f"{stage}: journey tag"
    # FHIR request identifiers: a retried request finds its first record.
    for value, record_id in world.requests.items():
        identifier = request_identifier_index(tenant, "urn:example:orders", value)
        record = communication_request_find(tenant=tenant, identifier=identifier)
        assert (record.pk if record else None) == record_id, f"{stage}: request {value}"


def _build(tenant) -> World:
    BaaFactory(tenant=tenant)
    world = World(tenant)
    for n in range(6):
        world.contact(suppressed=n % 2 == 0, vip=n % 3 == 0)
    for _ in range(2):
        world.bare_address()
        world.request()
    return world


@pytest.mark.django_db
def test_every_address_tag_and_request_is_found_and_every_suppression_blocks_at_every_stage(tenant_a):
    world = _build(tenant_a)
    check(world, "before")

    version = index_rotation.index_version_add(tenant_a.pk)
    assert blind.versions(tenant_a).pending == version == 2
    check(world, "pending")
    world.writes()  # written with their next index
    check(world, "pending, after writes")

    index_rotation.chain_fill(tenant_a.pk, version, batch_size=3, max_batches=1)  # a few filled
    check(world, "partly filled")
    index_rotation.chain_fill(tenant_a.pk, version, batch_size=3)
    with tenant_context(tenant_a):
        assert not Suppression.objects.filter(tenant=tenant_a, email_index_next__isnull=True).exists()

    index_rotation.index_version_activate(tenant_a.pk)
    assert blind.versions(tenant_a) == blind.IndexVersions(write=2, lookup=(2, 1), chain=(2,))
    check(world, "active")
    world.writes()  # written under the new version only, beside rows holding the old one
    check(world, "active, after writes")

    result = IndexRotation()
    index_rotation.reindex(tenant_a.pk, result, batch_size=3, max_batches=1)  # some rows swapped
    status = key_status(tenant_a.pk, scan=False)
    assert status.chained_unswapped, "rows still hold a next index"
    assert result.rekeyed > 0
    check(world, "half swapped")
    world.writes()
    check(world, "half swapped, after writes")

    index_rotation.reindex(tenant_a.pk, result)
    assert key_status(tenant_a.pk, scan=False).chained_unswapped == {}
    index_rotation.index_versions_retire(tenant_a.pk)
    assert blind.versions(tenant_a).lookup == (2,)
    check(world, "retired")
    world.writes()
    check(world, "retired, after writes")

    second = index_rotation.index_rotate(tenant_a.pk, settle_seconds=0)  # v2 -> v3 (v2 destroyed)
    assert (second.version, second.destroyed, second.damaged) == (3, [2], [])
    assert blind.versions(tenant_a).chain == (2, 3)  # chain keys are kept
    check(world, "second rotation")


@pytest.mark.django_db
def test_stored_indexes_are_rekeyed_not_kept(tenant_a):
    """After a rotation no stored chained index equals its value under the first key alone."""
    world = _build(tenant_a)
    first = {address: blind.blind_index(tenant_a, "email", address) for address in world.contacts}
    index_rotation.index_rotate(tenant_a.pk, settle_seconds=0)
    with tenant_context(tenant_a):
        stored = {
            bytes(i) for i in Contact.objects.filter(tenant=tenant_a).values_list("email_index", flat=True)
        }
        held = {
            bytes(i)
            for i in Suppression.objects.filter(tenant=tenant_a).values_list("email_index", flat=True)
            if i is not None
        }
    assert not stored & set(first.values())
    assert not held & set(first.values())
    assert {blind.blind_index(tenant_a, "email", a) for a in world.contacts} == stored
    check(world, "after")


@pytest.mark.django_db
def test_a_swapped_email_index_still_finds_nobody_during_the_rotation(tenant_a):
    world = _build(tenant_a)
    index_rotation.index_version_add(tenant_a.pk)
    index_rotation.index_version_activate(tenant_a.pk)
    index_rotation.reindex(tenant_a.pk, IndexRotation(), batch_size=2, max_batches=1)
    (first, a), (second, b) = list(world.contacts.items())[:2]
    with tenant_context(tenant_a), connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, email_index, email_index_next FROM contacts_contact WHERE id = ANY(%s)", [[a, b]]
        )
        stored = {row[0]: row[1:] for row in cursor.fetchall()}
        update = "UPDATE contacts_contact SET email_index = %s, email_index_next = %s WHERE id = %s"
        cursor.execute(update, [b"x", None, a])
        cursor.execute(update, [*stored[a], b])
        cursor.execute(update, [*stored[b], a])
    with tenant_context(tenant_a):
        assert contact_with_email(tenant=tenant_a, email=first) is None
        assert contact_with_email(tenant=tenant_a, email=second) is None


@pytest.mark.django_db
def test_status_shows_the_chained_stage(tenant_a):
    _build(tenant_a)
    index_rotation.index_version_add(tenant_a.pk)
    out = io.StringIO()
    call_command("rotate_keys", status=True, tenant=tenant_a.slug, stdout=out)
    assert "chained indexes: FILLING IN NEXT INDEXES; rows with a next index: none" in out.getvalue()
    index_rotation.chain_fill(tenant_a.pk, 2)
    out = io.StringIO()
    call_command("rotate_keys", status=True, tenant=tenant_a.slug, stdout=out)
    assert "6 in contacts_contact.email_index" in out.getvalue()
    assert "5 in consent_suppression.email_index" in out.getvalue()  # 3 of contacts, 2 bare
    assert "4 in delivery_message.to_address_index" in out.getvalue()
    assert "2 in fhir_api_communicationrequestrecord.identifier_index" in out.getvalue()
    out = io.StringIO()
    call_command("rotate_keys", index=True, tenant=tenant_a.slug, settle_seconds=0, stdout=out)
    assert "chained index(es) filled in" in out.getvalue()
    out = io.StringIO()
    call_command("rotate_keys", status=True, tenant=tenant_a.slug, stdout=out)
    assert "chained indexes: none in flight" in out.getvalue()
    assert "chain keys: v2" in out.getvalue()


def test_a_suppressed_address_is_never_sent_to_during_a_rotation_under_concurrent_writes(
    committed_db, monkeypatch
):
    """The safety-critical one: while `index_rotate` runs (settles of 0.3 s, batches of 5), writers
    keep adding suppressed addresses and contacts, and a gate keeps asking; it never allows one,
    and the segment's SQL never loses one.

    The writer is held up for up to 0.1 s (less than the settle) after each read of the rotation's
    stage, as a loaded machine does to a thread: a write then lands after a step of the rotation it
    did not see, which the rows must survive (a write reading the stage twice did not: its index
    from one view and its next index from another)."""
    read_stage = blind.versions

    def held_up(tenant_ref):
        view = read_stage(tenant_ref)
        if threading.current_thread().name == "write":
            time.sleep(random.uniform(0, 0.1))
        return view

    monkeypatch.setattr(blind, "versions", held_up)
    tenant = TenantFactory(slug=f"chained-{uuid.uuid4().hex[:8]}")
    world = _build(tenant)
    for _ in range(10):
        world.contact(suppressed=True)
        world.contact(suppressed=False)
    lock = threading.Lock()

    def write() -> None:
        with lock:
            world.contact(suppressed=True)
            world.contact(suppressed=False)

    def gate() -> list[tuple]:
        with lock:
            blocked, everyone = set(world.blocked), list(world.contacts.values())
        found_wrong = []
        decisions = may_send_batch(tenant=tenant, contact_ids=everyone, purpose="treatment", uses_phi=False)
        leaked = [c for c in blocked if decisions[c].allowed]
        if leaked:
            found_wrong.append(("sent to a suppressed address", len(leaked), blind.versions(tenant)))
        members = set(segment_member_ids(tenant=tenant, definition=SUPPRESSED))
        if not blocked <= members:
            found_wrong.append(("segment lost a suppression", len(blocked - members), blind.versions(tenant)))
        return found_wrong

    rotate_under_load(tenant.pk, write=write, check=gate)
    assert key_status(tenant.pk, scan=False).chained_unswapped == {}
    check(world, "after the concurrent rotation")


def _activation_lands_after_the_next_read(monkeypatch, tenant) -> None:
    """The pending version is activated right after the next read of the rotation's stage: the
    write that read it goes on with the view it read, as a process does whose view is a moment old."""
    read_stage = blind.versions
    armed = [True]

    def then_activated(tenant_ref):
        view = read_stage(tenant_ref)
        if armed[0]:
            armed[0] = False
            index_rotation.index_version_activate(tenant.pk)
        return view

    monkeypatch.setattr(blind, "versions", then_activated)


@pytest.mark.django_db
@pytest.mark.parametrize("raced", ["suppression", "contact", "message"])
def test_a_write_racing_the_activation_stores_its_index_and_next_index_from_one_view(
    tenant_a, monkeypatch, raced
):
    """A write reads the stage once: a row holding the old index without its next index, written
    after the fill has passed, would be matched by no stored comparison once the other rows hold
    the new one alone (the segment's SQL lost suppressions that way under load)."""
    world = _build(tenant_a)
    version = index_rotation.index_version_add(tenant_a.pk)
    index_rotation.chain_fill(tenant_a.pk, version)
    address = "Raced.1@Example.org"
    if raced == "suppression":
        _activation_lands_after_the_next_read(monkeypatch, tenant_a)
    suppressions.suppression_add(tenant=tenant_a, actor=ACTOR, reason="hard_bounce", email=address)
    if raced == "contact":
        _activation_lands_after_the_next_read(monkeypatch, tenant_a)
    [result] = contact_upsert_many(
        tenant=tenant_a, actor=ACTOR, inputs=[ContactInput(email=address.lower())], source="test"
    )
    world.contacts[address] = result.contact_id
    world.blocked.add(result.contact_id)
    if raced == "message":
        bare = "raced.bare@example.org"
        suppressions.suppression_add(tenant=tenant_a, actor=ACTOR, reason="legal_request", email=bare)
        _activation_lands_after_the_next_read(monkeypatch, tenant_a)
        [message] = message_enqueue_many(
            tenant=tenant_a,
            stream="transactional",
            source_type="api",
            source_id="chained-test",
            purpose="treatment",
            recipients=[OutboxRecipient(None, bare)],
        )
        world.bare.append(bare)
        world.queued[bare] = message.pk
    monkeypatch.undo()
    assert blind.versions(tenant_a).pending is None, "the activation landed during the write"
    holders = {
        "suppression": Suppression.objects.filter(email_index_next__isnull=True),
        "contact": Contact.objects.filter(email_index_next__isnull=True),
        "message": Message.objects.filter(to_address_index_next__isnull=True),
    }
    with tenant_context(tenant_a):
        without_next = holders[raced].filter(tenant=tenant_a).count()
    check(world, "active")
    index_rotation.reindex(tenant_a.pk, IndexRotation())
    check(world, "swapped")
    index_rotation.index_versions_retire(tenant_a.pk)
    check(world, "retired")
    # The raced row held its next index (the old index alone: a row no comparison finds once swapped).
    assert without_next == 0


@pytest.mark.django_db
def test_a_next_index_left_behind_by_a_slow_writer_still_blocks_and_the_next_rotation_swaps_it(
    tenant_a, monkeypatch
):
    """A writer slower than the settle lands after the rotation with the view it read while the
    version was pending: its suppression holds the old index and the new one as its next index.
    Every comparison (SQL both ways, whatever the reader's view) still matches it, and the next
    rotation swaps it in before filling (else the swap would bring a version too old back)."""
    world = _build(tenant_a)
    index_rotation.index_version_add(tenant_a.pk)
    stale = blind.versions(tenant_a)
    index_rotation.index_rotate(tenant_a.pk, settle_seconds=0)  # resumed: filled, active, swapped, retired
    assert blind.versions(tenant_a).lookup == (2,)
    address = "Late.1@Example.org"
    monkeypatch.setattr(blind, "versions", lambda tenant_ref: stale)
    suppressions.suppression_add(tenant=tenant_a, actor=ACTOR, reason="hard_bounce", email=address)
    monkeypatch.undo()
    [result] = contact_upsert_many(
        tenant=tenant_a, actor=ACTOR, inputs=[ContactInput(email=address.lower())], source="test"
    )
    world.contacts[address] = result.contact_id
    world.blocked.add(result.contact_id)
    assert key_status(tenant_a.pk, scan=False).chained_unswapped == {"consent_suppression.email_index": 1}
    check(world, "a next index left behind")
    second = index_rotation.index_rotate(tenant_a.pk, settle_seconds=0)
    assert (second.version, second.damaged) == (3, [])
    assert key_status(tenant_a.pk, scan=False).chained_unswapped == {}
    check(world, "the next rotation")
