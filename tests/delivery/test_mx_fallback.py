"""Secondary MX hosts (RFC 5321 §5.1): when the most preferred host is unreachable or cannot meet the
TLS policy, the next one is tried under the same policy — its own MTA-STS match, TLSA records or
certificate — and PHI never goes anywhere in the clear because an earlier host failed."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from delivery.engine.worker import drain
from delivery.models import Message, Stream
from delivery.smtp.client import deliver_batch
from delivery.smtp.connection import MxRoute
from delivery.smtp.outcomes import Status
from delivery.tls.mta_sts import HttpsPolicyFetcher
from delivery.tls.policy import Source, tls_policy_resolve
from delivery.tls.probe import starttls_prober
from delivery.tls.resolver import Answer, MxHost, Tlsa

from .conftest import PHI_DIAGNOSIS, PHI_NAME, phi_message, run
from .engine_support import dependencies, enqueue, reload
from .engine_support import verified_sender_domain as make_sender_domain
from .servers import LOOPBACK, free_port

pytestmark = pytest.mark.django_db
State = Message.State
SECRETS = (PHI_NAME.encode(), PHI_DIAGNOSIS.encode())


def closed_mx(name: str, preference: int) -> MxHost:
    """An MX host whose port nobody listens on: connection refused."""
    return MxHost(preference, name, port=free_port(), address=LOOPBACK)


class PortalStub:
    def __init__(self):
        self.held = []

    def __call__(self, message, content):
        from delivery.portal.services import PortalNotice

        self.held.append(message.pk)
        url = "https://portal.healthmail.test/m/opaque"
        return PortalNotice(
            subject="You have a secure message", html=f"<p>{url}</p>", text=url, portal_url=url
        )


@pytest.fixture
def sender_domain(tenant_a):
    return make_sender_domain(tenant_a)[0]


@pytest.fixture
def portal():
    return PortalStub()


@pytest.fixture
def send(tenant_a, sender_domain, kit, transport, portal):
    def send(address: str, mx: list[MxHost], **resolver) -> Message:
        """Queue one PHI message to `address`, whose domain has the MX hosts `mx`, and drain."""
        domain = address.rpartition("@")[2]
        resolver = kit.resolver(mx={domain: Answer(tuple(mx))}, **resolver)
        (message,) = enqueue(tenant_a, [address], sender_domain=sender_domain)
        deps = dependencies(kit, transport, resolver=resolver, portal=portal)
        drain(tenant_id=tenant_a.pk, stream=Stream.TRANSACTIONAL, deps=deps)
        return reload(tenant_a, [message])[0]

    return send


def test_an_unreachable_primary_hands_the_message_to_the_secondary(send, kit, portal):
    good = kit["good"]

    message = send("zebediah@twohosts.test", [closed_mx("mx.down.test", 10), good.mx(20)])

    assert message.state == State.DELIVERED_TLS, message.state_reason
    tls = message.evidence["tls"]
    assert (tls["mx"], tls["verified"], tls["method"]) == ("mx.good.test", True, "pkix")
    assert any(
        w.startswith("MX mx.down.test not used: connect to mx.down.test")
        for w in message.evidence["warnings"]
    )
    # The probe moved on as well: the policy names the host that answered.
    assert message.evidence["policy"]["source"] == "starttls-probe"
    assert "mx.good.test" in message.evidence["policy"]["reason"]
    assert [received.rcpt_tos for received in good.messages] == [["zebediah@twohosts.test"]]
    assert portal.held == []


def test_a_primary_without_starttls_never_sees_the_phi_and_the_secondary_gets_it(send, kit, portal):
    plain, good = kit["plain"], kit["good"]

    message = send("zebediah@split.test", [plain.mx(10), good.mx(20)])

    assert message.state == State.DELIVERED_TLS, message.state_reason
    assert message.evidence["tls"]["mx"] == "mx.good.test"
    assert "MX mx.plain.test not used: STARTTLS not offered" in message.evidence["warnings"]
    for secret in (*SECRETS, b"zebediah", b"MAIL FROM"):
        assert not plain.saw(secret), secret  # not even the envelope: only EHLO before the refusal
    assert plain.messages == []
    assert good.saw(PHI_NAME.encode())  # after decryption, at the host that passed the policy
    assert not any(secret in good.wire for secret in SECRETS)  # encrypted on the wire
    assert portal.held == []


def test_when_every_host_refuses_tls_the_phi_takes_the_portal_never_plaintext(send, kit, portal):
    untrusted, plain = kit["untrusted"], kit["plain"]

    message = send("zebediah@nobody-verified.test", [untrusted.mx(10), plain.mx(20)])

    assert message.state == State.DELIVERED_PORTAL, message.state_reason
    refused = message.evidence["refused"][0]["reason"]
    assert "MX mx.untrusted.test: certificate verification failed" in refused
    assert "MX mx.plain.test: STARTTLS not offered" in refused
    assert portal.held == [message.pk]
    for server in (untrusted, plain):
        for secret in SECRETS:
            assert not server.saw(secret), (server.name, secret)
    # The notice (no PHI) went to the most preferred host, as non-PHI mail may (RFC 7435).
    assert len(untrusted.messages) == 1
    assert plain.messages == []


def test_when_every_mx_is_down_the_message_waits_for_a_retry(send, portal):
    message = send("zebediah@dark.test", [closed_mx("mx1.dark.test", 10), closed_mx("mx2.dark.test", 20)])

    assert message.state == State.DEFERRED
    assert "MX mx1.dark.test: connect to mx1.dark.test" in message.state_reason
    assert "MX mx2.dark.test: connect to mx2.dark.test" in message.state_reason
    assert message.attempts == 1
    assert message.not_before - message.first_attempt_at >= timedelta(minutes=4)  # backoff, with jitter
    assert portal.held == []  # unreachable is not a refusal: the content waits, it is not diverted


def test_mta_sts_enforce_skips_a_host_outside_the_policy_without_connecting(send, kit):
    plain, good = kit["plain"], kit["good"]
    kit.policy_server.publish("enforce.test", mode="enforce", mx=["mx.good.test"])

    message = send(
        "zebediah@enforce.test",
        [plain.mx(10), good.mx(20)],
        txt={"_mta-sts.enforce.test": ["v=STSv1; id=f1"]},
    )

    assert message.state == State.DELIVERED_TLS, message.state_reason
    assert message.evidence["policy"]["source"] == "mta-sts"
    assert message.evidence["tls"]["mx"] == "mx.good.test"
    assert plain.connections == 0


def _spki_sha256(kit, name):
    certificate = x509.load_pem_x509_certificate((kit.ca.directory / f"{name}.crt").read_bytes())
    spki = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()


def test_dane_checks_each_host_against_its_own_tlsa_records(kit, transport):
    good, selfsigned = kit["good"], kit["selfsigned"]
    resolver = kit.resolver(
        mx={"dane-pair.test": Answer((good.mx(10), selfsigned.mx(20)), secure=True)},
        tlsa={
            f"_25._tcp.{good.name}": Answer(
                (Tlsa(3, 1, 1, hashlib.sha256(b"not this key").digest()),), secure=True
            ),
            f"_25._tcp.{selfsigned.name}": Answer(
                (Tlsa(3, 1, 1, _spki_sha256(kit, selfsigned.name)),), secure=True
            ),
        },
    )
    fetcher = HttpsPolicyFetcher(ca_file=kit.ca_file, connect_to=kit.connect_to(), timeout=5)
    policy = run(
        tls_policy_resolve(
            "dane-pair.test", resolver=resolver, fetcher=fetcher, prober=starttls_prober(transport)
        )
    )
    routes = [MxRoute.from_mx(mx) for mx in policy.mx]

    (outcome,) = run(
        deliver_batch(routes, [phi_message("d1", "pat@dane-pair.test")], policy, transport=transport)
    )

    assert policy.source == Source.DANE
    assert outcome.status == Status.DELIVERED
    assert (outcome.evidence.mx, outcome.evidence.method) == ("mx.selfsigned.test", "dane")
    assert "MX mx.good.test not used: DANE: server certificate matches no TLSA record" in outcome.warnings
    assert not good.saw(b"MAIL FROM")  # the primary's certificate matched PKIX but not its TLSA
    assert len(selfsigned.messages) == 1


def test_a_full_primary_defers_instead_of_spilling_onto_the_secondary(kit, transport):
    """Our own concurrency limit is not the host's failure: mail waits rather than loading a backup."""
    from delivery.smtp.throttle import MxConcurrency, redis_client
    from delivery.tls.policy import TlsPolicy

    good, tempfail = kit["good"], kit["tempfail"]

    async def scenario():
        client = redis_client()
        limit = MxConcurrency(client, limit=1, prefix=f"hm-test:full:{free_port()}")
        held = await limit.acquire(good.name)
        outcomes = await deliver_batch(
            [MxRoute.from_mx(good.mx(10)), MxRoute.from_mx(tempfail.mx(20))],
            [phi_message("f1", "pat@full.test")],
            TlsPolicy(domain="full.test", source=Source.STARTTLS_PROBE),
            transport=transport,
            concurrency=limit,
        )
        await limit.release(good.name, held)
        await client.aclose()
        return outcomes

    (outcome,) = run(scenario())
    assert (outcome.status, outcome.reason) == (Status.DEFERRED, "MX concurrency limit reached")
    assert good.connections == tempfail.connections == 0
