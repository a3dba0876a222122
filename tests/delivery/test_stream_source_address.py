"""Each stream sends from its own source address (issue 8 item 3: marketing reputation never harms
transactional mail). Real loopback: Linux routes all of 127.0.0.0/8 to lo, so the client binds
127.0.0.2 / 127.0.0.3 and the test servers see that peer on every connection and message."""

from __future__ import annotations

from collections import Counter

import pytest

from delivery.engine.config import stream_identity
from delivery.engine.worker import drain
from delivery.models import EncryptionPolicy, Message, Stream
from delivery.outbox import OutboxRecipient, message_enqueue_many
from delivery.smtp.client import deliver_batch
from delivery.smtp.connection import MxRoute
from delivery.smtp.outcomes import Status
from delivery.tls.policy import Source, TlsPolicy

from .conftest import PHI_DIAGNOSIS, PHI_NAME, phi_message, run
from .engine_support import PHI_CONTENT, dependencies, enqueue, new_contact, opted_in, relay_stream, reload
from .engine_support import verified_sender_domain as make_sender_domain

pytestmark = pytest.mark.django_db
State = Message.State
MARKETING_IP, TRANSACTIONAL_IP = "127.0.0.2", "127.0.0.3"


@pytest.fixture
def sender_domain(tenant_a):
    return make_sender_domain(tenant_a)[0]


@pytest.fixture
def streams(settings):
    settings.DELIVERY_STREAMS = {
        "transactional": {"source_address": TRANSACTIONAL_IP},
        "marketing": {"source_address": MARKETING_IP},
    }
    return settings


def _marketing_message(tenant, sender_domain, address: str) -> Message:
    contact = new_contact(tenant, address)
    topic = opted_in(tenant, contact)
    (message,) = message_enqueue_many(
        tenant=tenant, stream=Stream.MARKETING, source_type="campaign", source_id="c-ip", purpose="marketing",
        topic=topic.key, uses_phi=False, encryption_policy=EncryptionPolicy.TLS_ELSE_PORTAL,
        recipients=[OutboxRecipient(contact.pk, address)], sender_domain=sender_domain, content=PHI_CONTENT,
    )  # fmt: skip
    return message


def test_the_setting_reaches_the_stream_identity(streams):
    assert stream_identity(Stream.TRANSACTIONAL).source_address == TRANSACTIONAL_IP
    assert stream_identity(Stream.MARKETING).source_address == MARKETING_IP


def test_each_stream_sends_from_its_own_source_address(tenant_a, sender_domain, kit, transport, streams):
    deps = dependencies(kit, transport)
    (transactional,) = enqueue(tenant_a, ["zebediah@good.test"], sender_domain=sender_domain)
    marketing = _marketing_message(tenant_a, sender_domain, "quinn@good.test")

    drain(tenant_id=tenant_a.pk, stream=Stream.TRANSACTIONAL, deps=deps)
    drain(tenant_id=tenant_a.pk, stream=Stream.MARKETING, deps=deps)

    transactional, marketing = reload(tenant_a, [transactional, marketing])
    assert transactional.state == State.DELIVERED_TLS, transactional.state_reason
    assert marketing.state == State.DELIVERED_TLS, marketing.state_reason
    server = kit["good"]
    peer_of = {received.rcpt_tos[0]: received.peer for received in server.messages}
    assert peer_of == {"zebediah@good.test": TRANSACTIONAL_IP, "quinn@good.test": MARKETING_IP}
    # Every connection, the STARTTLS probe's (made while the transactional stream resolved the
    # domain's policy) included, came from a stream's address; none from the default 127.0.0.1.
    assert Counter(server.peers) == {TRANSACTIONAL_IP: 2, MARKETING_IP: 1}


def test_a_stream_relay_is_reached_from_the_stream_source_address(
    tenant_a, sender_domain, kit, transport, settings
):
    relay = kit["relay"]
    settings.DELIVERY_STREAMS = {"transactional": relay_stream(relay, source_address=TRANSACTIONAL_IP)}
    (message,) = enqueue(tenant_a, ["zebediah@nowhere-in-dns.test"], sender_domain=sender_domain)

    drain(tenant_id=tenant_a.pk, stream=Stream.TRANSACTIONAL, deps=dependencies(kit, transport))

    (message,) = reload(tenant_a, [message])
    assert message.state == State.DELIVERED_TLS, message.state_reason
    assert [received.peer for received in relay.messages] == [TRANSACTIONAL_IP]
    assert relay.peers == [TRANSACTIONAL_IP]


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("203.0.113.77", "cannot bind the source address 203.0.113.77: Cannot assign requested address"),
        ("mail-ip-one", "the source address 'mail-ip-one' is not an IP address"),
    ],
)
def test_a_source_address_the_host_lacks_defers_with_the_reason_and_sends_nothing(
    tenant_a, sender_domain, kit, transport, settings, address, reason
):
    settings.DELIVERY_STREAMS = {"transactional": {"source_address": address}}
    held = []
    (message,) = enqueue(tenant_a, ["zebediah@good.test"], sender_domain=sender_domain)

    report = drain(
        tenant_id=tenant_a.pk,
        stream=Stream.TRANSACTIONAL,
        deps=dependencies(kit, transport, portal=lambda m, c: held.append(m)),
    )

    (message,) = reload(tenant_a, [message])
    assert report.states == {State.DEFERRED: 1}
    assert message.state == State.DEFERRED
    assert reason in message.state_reason
    assert message.not_before > message.first_attempt_at  # the retry schedule, not a tight loop
    assert held == []  # not a TLS refusal: no portal fallback, the content waits
    server = kit["good"]
    assert server.connections == 0
    assert not server.saw(PHI_NAME.encode())
    assert not server.saw(PHI_DIAGNOSIS.encode())


def test_the_transport_binds_every_connection_including_the_opportunistic_retry(kit, transport):
    """A non-PHI message refused verified TLS goes on a second, opportunistic connection: also bound."""
    bound = type(transport)(
        ca_file=transport.ca_file,
        local_hostname=transport.local_hostname,
        timeouts=transport.timeouts,
        source_address=MARKETING_IP,
    )
    server = kit["untrusted"]
    messages = [phi_message("p", "a@untrusted.test"), phi_message("n", "b@untrusted.test", phi=False)]
    policy = TlsPolicy(domain="untrusted.test", source=Source.STARTTLS_PROBE)

    phi, plain = run(deliver_batch(MxRoute.from_mx(server.mx()), messages, policy, transport=bound))

    assert (phi.status, plain.status) == (Status.REFUSED, Status.DELIVERED)
    assert server.peers == [MARKETING_IP, MARKETING_IP]
    assert [received.peer for received in server.messages] == [MARKETING_IP]
