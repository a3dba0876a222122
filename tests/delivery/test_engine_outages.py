"""A 250 survives a database outage: the receiver accepted, PostgreSQL was gone when the worker went to
record it, the claim ran out; the answer comes back from the worker's journal and nothing is resent.
Also: a drain that loses the database gives back the claims it never handed to SMTP once it returns."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import psycopg
import pytest
from django.conf import settings
from django.db import OperationalError, connection
from django.utils import timezone

from delivery.engine import send
from delivery.engine.claim import message_claim_batch
from delivery.engine.recovery import drain_recover
from delivery.engine.sweeper import delivery_sweep
from delivery.engine.worker import drain
from delivery.models import Message, MessageAttempt, Stream
from healthmail.tenants.context import tenant_context
from tests.factories import BaaFactory, TenantFactory
from tests.outages.support import PrivateRedis, free_port

from .engine_support import dependencies as make_dependencies
from .engine_support import enqueue, reload, verified_sender_domain

pytestmark = pytest.mark.usefixtures("committed_db")
State = Message.State


@pytest.fixture
def tenant():
    slug = f"journal-{uuid.uuid4().hex[:8]}"
    tenant = TenantFactory(name=f"Journal {slug}", slug=slug)
    BaaFactory(tenant=tenant)
    return tenant


@pytest.fixture
def journal(settings, tmp_path):
    settings.DELIVERY_JOURNAL_DIR = str(tmp_path / "journal")
    return tmp_path / "journal"


@pytest.fixture
def deps(kit, transport, settings):
    settings.DELIVERY_HEARTBEAT_GRACE_SECONDS = GRACE
    return make_dependencies(kit, transport, recovery_seconds=1)


GRACE = 0.5  # a holder silent this long is dead (heartbeat.py)


class DatabaseOutage:
    """Stops this process's database connection the way a server stop does: the open session is
    terminated by the server, and every new connection is refused until `end()`."""

    def __init__(self):
        self.port = connection.settings_dict["PORT"]

    def begin(self, backend_pid: int) -> None:
        connection.settings_dict["PORT"] = free_port()
        owner = settings.DATABASES["owner"]
        with psycopg.connect(
            host=owner["HOST"],
            port=owner["PORT"],
            user=owner["USER"],
            password=owner["PASSWORD"] or None,
            dbname=owner["NAME"],
            autocommit=True,
        ) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [backend_pid])

    def end(self) -> None:
        connection.close()
        connection.settings_dict["PORT"] = self.port


@pytest.fixture
def outage_after_smtp(monkeypatch):
    """The database goes away right after the receiver answered, before the worker records it."""
    outage = DatabaseOutage()
    real = send.deliver_round

    def deliver_then_lose_database(*args, **kwargs):
        backend_pid = connection.connection.info.backend_pid  # the worker's session (sync side)
        outcomes = real(*args, **kwargs)
        outage.begin(backend_pid)
        return outcomes

    monkeypatch.setattr(send, "deliver_round", deliver_then_lose_database)
    yield outage
    outage.end()


def _message_ids(server) -> list[str]:
    return [m.content.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0].decode() for m in server.messages]


def _outage_during_record(tenant, kit, deps, outage, monkeypatch) -> Message:
    sender, _ = verified_sender_domain(tenant)
    (message,) = enqueue(tenant, ["p@good.test"], sender_domain=sender)
    with pytest.raises(OperationalError):
        drain(tenant_id=tenant.pk, stream=Stream.TRANSACTIONAL, deps=deps)
    outage.end()
    monkeypatch.undo()  # the next drain sends normally
    assert _message_ids(kit["good"]) == [message.message_id]  # the receiver accepted it
    (stuck,) = reload(tenant, [message])
    assert (stuck.state, stuck.handoff_at is not None) == (State.SENDING, True)  # the 250 is not recorded
    time.sleep(GRACE + 0.2)  # the drain ended in the outage: its heartbeat stopped, the claim is free
    return message


def test_an_accepted_message_is_recorded_from_the_journal_not_resent(
    tenant, journal, kit, deps, outage_after_smtp, monkeypatch
):
    message = _outage_during_record(tenant, kit, deps, outage_after_smtp, monkeypatch)
    assert len(list(journal.glob("*.json"))) == 1

    after_lease = timezone.now() + deps.engine.lease + timedelta(seconds=1)
    delivery_sweep(now=after_lease, tenant_ids=[tenant.pk], wake=lambda **kw: None)
    drain(tenant_id=tenant.pk, stream=Stream.TRANSACTIONAL, deps=deps)

    (message,) = reload(tenant, [message])
    assert message.state in Message.FINAL_STATES
    assert message.state != State.FAILED
    assert (message.attempts, message.ambiguous_sends) == (1, 0)
    assert _message_ids(kit["good"]) == [message.message_id]  # once: nothing was resent
    assert list(journal.glob("*.json")) == []


def test_a_sweeper_elsewhere_takes_the_claim_back_first_and_the_journal_still_wins(
    tenant, journal, kit, deps, outage_after_smtp, monkeypatch, settings, tmp_path
):
    message = _outage_during_record(tenant, kit, deps, outage_after_smtp, monkeypatch)
    settings.DELIVERY_JOURNAL_DIR = str(tmp_path / "another-host")
    after_lease = timezone.now() + deps.engine.lease + timedelta(seconds=1)
    first = delivery_sweep(now=after_lease, tenant_ids=[tenant.pk], wake=lambda **kw: None)
    time.sleep(GRACE + 0.1)  # the silent holder was suspected by the first sweep, judged by this one
    report = delivery_sweep(now=after_lease, tenant_ids=[tenant.pk], wake=lambda **kw: None)
    assert (first.ambiguous, report.ambiguous) == (0, 1)  # that host cannot know: counted as ambiguous
    settings.DELIVERY_JOURNAL_DIR = str(journal)

    drain(tenant_id=tenant.pk, stream=Stream.TRANSACTIONAL, deps=deps)  # replays before claiming

    (message,) = reload(tenant, [message])
    assert message.state in Message.FINAL_STATES
    assert message.state != State.FAILED
    assert message.ambiguous_sends == 0  # the journal knows the answer: not ambiguous after all
    assert _message_ids(kit["good"]) == [message.message_id]


def test_recovery_gives_back_claims_never_handed_to_smtp(tenant, journal, deps):
    sender, _ = verified_sender_domain(tenant)
    handed, unsent = enqueue(tenant, ["a@good.test", "b@good.test"], sender_domain=sender)
    worker = "worker-that-lost-the-database"
    message_claim_batch(
        tenant_id=tenant.pk, stream=Stream.TRANSACTIONAL, worker=worker, limit=2, lease=timedelta(minutes=5)
    )
    with tenant_context(tenant):
        Message.objects.filter(pk=handed.pk).update(handoff_at=timezone.now())

    assert drain_recover(tenant_id=tenant.pk, worker=worker, wait_seconds=0)

    handed, unsent = reload(tenant, [handed, unsent])
    assert (unsent.state, unsent.claimed_by, unsent.lease_until) == (State.QUEUED, "", None)
    assert (handed.state, handed.claimed_by) == (State.SENDING, worker)  # its answer is unknown


def test_recovery_waits_for_the_database_and_reports_when_it_stays_away(tenant, journal):
    outage = DatabaseOutage()
    connection.close()
    connection.settings_dict["PORT"] = free_port()
    try:
        assert not drain_recover(tenant_id=tenant.pk, worker="w", wait_seconds=1.5)
    finally:
        outage.end()


def test_a_drain_without_redis_sends_nothing_and_holds_nothing(tenant, journal, kit, deps, settings):
    """Redis gone mid-campaign: the shared limits cannot be checked, so the batch waits (deferred, not
    started, not ambiguous) and no claim stays held; when Redis is back it goes out once."""
    sender, _ = verified_sender_domain(tenant)
    messages = enqueue(tenant, ["a@good.test", "b@good.test"], sender_domain=sender)
    server = PrivateRedis()
    server.shutdown()
    working_url = settings.REDIS_URL
    settings.REDIS_URL = server.url
    settings.CACHES = {**settings.CACHES, "default": {**settings.CACHES["default"], "LOCATION": server.url}}
    try:
        drain(tenant_id=tenant.pk, stream=Stream.TRANSACTIONAL, deps=deps)
    finally:
        server.close()
    waiting = reload(tenant, messages)
    assert {(m.state, m.claimed_by, m.ambiguous_sends) for m in waiting} == {(State.DEFERRED, "", 0)}
    assert kit["good"].messages == []

    settings.REDIS_URL = working_url
    settings.CACHES = {**settings.CACHES, "default": {**settings.CACHES["default"], "LOCATION": working_url}}
    with tenant_context(tenant):
        Message.objects.filter(pk__in=[m.pk for m in messages]).update(not_before=timezone.now())
    drain(tenant_id=tenant.pk, stream=Stream.TRANSACTIONAL, deps=deps)
    assert sorted(_message_ids(kit["good"])) == sorted(m.message_id for m in messages)


def test_a_message_another_message_cut_off_is_not_counted_as_an_attempt(tenant, journal, kit, deps):
    """The receiver drops the connection after the first message's "." (RFC 1047: ambiguous); the
    second never got its turn on that connection: deferred soon, no attempt, no backoff."""
    sender, _ = verified_sender_domain(tenant)
    messages = enqueue(tenant, ["p@drop.test", "q@drop.test"], sender_domain=sender)

    drain(tenant_id=tenant.pk, stream=Stream.TRANSACTIONAL, deps=deps)

    tried, cut_off = sorted(reload(tenant, messages), key=lambda m: -m.attempts)
    assert (tried.attempts, tried.ambiguous_sends) == (1, 1)
    assert (cut_off.state, cut_off.attempts, cut_off.ambiguous_sends) == (State.DEFERRED, 0, 0)
    assert cut_off.not_before <= timezone.now() + deps.engine.soon
    with tenant_context(tenant):
        assert not MessageAttempt.objects.filter(message_id=cut_off.pk).exists()
