"""Per-domain TLS policy: DANE (DNSSEC-validated TLSA), MTA-STS (enforce/testing), STARTTLS probe,
and the TTL-bound cache that keeps an MTA-STS policy in force until its max_age."""

import hashlib
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.utils import timezone

from delivery.models import DomainTlsPolicy
from delivery.smtp.client import deliver_batch
from delivery.smtp.connection import MxRoute
from delivery.smtp.outcomes import Status
from delivery.tls.mta_sts import HttpsPolicyFetcher, PolicyError, mx_matches, parse_policy, txt_policy_id
from delivery.tls.policy import Source, tls_policy_resolve
from delivery.tls.probe import starttls_prober
from delivery.tls.resolver import Answer, Tlsa
from delivery.tls.store import tls_policy_for_domain

from .conftest import PHI_NAME, phi_message, run


def _fetcher(kit):
    return HttpsPolicyFetcher(ca_file=kit.ca_file, connect_to=kit.connect_to(), timeout=5)


def _resolve(kit, transport, domain, resolver):
    return run(
        tls_policy_resolve(
            domain, resolver=resolver, fetcher=_fetcher(kit), prober=starttls_prober(transport)
        )
    )


def _sts_txt(domain, policy_id="20260101"):
    return {f"_mta-sts.{domain}": [f"v=STSv1; id={policy_id};"]}


def _deliver(route_server, policy, transport, key="m1"):
    route = MxRoute.from_mx(route_server.mx())
    return run(deliver_batch(route, [phi_message(key, "pat@x.test")], policy, transport=transport))


# --- MTA-STS ---------------------------------------------------------------------------------------


def test_mx_patterns_match_exact_names_and_one_wildcard_label():
    assert mx_matches("mx.good.test", "MX.good.test.")
    assert mx_matches("*.good.test", "mx1.good.test")
    assert not mx_matches("*.good.test", "a.b.good.test")
    assert not mx_matches("*.good.test", "good.test")
    assert not mx_matches("mx.good.test", "mx.good.test.evil.test")


def test_policy_parsing_rejects_malformed_policies():
    policy = parse_policy(
        "version: STSv1\r\nmode: enforce\r\nmx: *.a.test\r\nmx: b.test\r\nmax_age: 600\r\n", policy_id="x1"
    )
    assert (policy.mode, policy.mx, policy.max_age) == ("enforce", ("*.a.test", "b.test"), 600)
    for bad in (
        "mode: enforce\nmx: a\nmax_age: 1",
        "version: STSv1\nmode: strict\nmx: a\nmax_age: 1",
        "version: STSv1\nmode: enforce\nmax_age: 1",
        "version: STSv1\nmode: enforce\nmx: a\nmax_age: -1",
    ):
        with pytest.raises(PolicyError):
            parse_policy(bad, policy_id="x1")
    assert txt_policy_id(("v=STSv1; id=abc123",)) == "abc123"
    assert txt_policy_id(("v=STSv1; id=a", "v=STSv1; id=b")) is None  # two records: no policy
    assert txt_policy_id(("v=spf1 -all",)) is None


def test_enforce_mode_refuses_an_mx_the_policy_does_not_list(kit, transport):
    kit.policy_server.publish("enforce.test", mode="enforce", mx=["mx.enforce-elsewhere.test"])
    resolver = kit.resolver(mx={"enforce.test": [kit["good"].mx()]}, txt=_sts_txt("enforce.test"))

    policy = _resolve(kit, transport, "enforce.test", resolver)
    (outcome,) = _deliver(kit["good"], policy, transport)

    assert (policy.source, policy.mode) == (Source.MTA_STS, "enforce")
    assert outcome.status == Status.REFUSED
    assert "does not match the MTA-STS policy" in outcome.reason
    assert kit["good"].connections == 0
    assert not kit["good"].saw(PHI_NAME.encode())


def test_enforce_mode_delivers_to_a_listed_mx_over_verified_tls(kit, transport):
    kit.policy_server.publish("good.test", mode="enforce", mx=["*.good.test"])
    policy = _resolve(kit, transport, "good.test", kit.resolver(txt=_sts_txt("good.test")))

    (outcome,) = _deliver(kit["good"], policy, transport)

    assert policy.source == Source.MTA_STS
    assert policy.mta_sts_max_age == 86400
    assert outcome.status == Status.DELIVERED
    assert outcome.evidence.policy_source == "mta-sts"
    assert kit.policy_server.requests == ["mta-sts.good.test"]


def test_testing_mode_reports_a_mismatch_but_does_not_block(kit, transport):
    kit.policy_server.publish("testing.test", mode="testing", mx=["mx.other.test"])
    resolver = kit.resolver(mx={"testing.test": [kit["good"].mx()]}, txt=_sts_txt("testing.test"))
    policy = _resolve(kit, transport, "testing.test", resolver)

    (outcome,) = _deliver(kit["good"], policy, transport)

    assert policy.mode == "testing"
    assert not policy.enforced
    assert outcome.status == Status.DELIVERED
    assert outcome.warnings
    assert "testing mode" in outcome.warnings[0]


def test_unfetchable_policy_falls_back_to_the_probe_with_the_reason(kit, transport):
    # TXT announces a policy but the HTTPS server has none for broken.test (404).
    resolver = kit.resolver(mx={"broken.test": [kit["good"].mx()]}, txt=_sts_txt("broken.test"))

    policy = _resolve(kit, transport, "broken.test", resolver)

    assert policy.source == Source.STARTTLS_PROBE
    assert policy.verified
    assert "MTA-STS announced but unusable: policy fetch answered HTTP 404" in policy.reason


# --- DANE ------------------------------------------------------------------------------------------


def _spki_sha256(kit, name):
    certificate = x509.load_pem_x509_certificate((kit.ca.directory / f"{name}.crt").read_bytes())
    spki = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()


def _dane_resolver(kit, kind, record, *, secure=True):
    server = kit[kind]
    return kit.resolver(
        mx={f"{kind}.test": Answer((server.mx(),), secure=secure)},
        tlsa={f"_25._tcp.{server.name}": Answer((record,), secure=secure)},
    )


def test_dane_ee_match_authenticates_even_a_self_signed_certificate(kit, transport):
    record = Tlsa(usage=3, selector=1, matching=1, data=_spki_sha256(kit, "mx.selfsigned.test"))
    policy = _resolve(kit, transport, "selfsigned.test", _dane_resolver(kit, "selfsigned", record))

    (outcome,) = _deliver(kit["selfsigned"], policy, transport)

    assert policy.source == Source.DANE
    assert policy.enforced
    assert outcome.status == Status.DELIVERED
    assert outcome.evidence.method == "dane"
    assert outcome.evidence.verified


def test_dane_mismatch_refuses_before_any_transaction(kit, transport):
    record = Tlsa(usage=3, selector=1, matching=1, data=hashlib.sha256(b"some other key").digest())
    policy = _resolve(kit, transport, "good.test", _dane_resolver(kit, "good", record))

    (outcome,) = _deliver(kit["good"], policy, transport)

    assert outcome.status == Status.REFUSED
    assert outcome.reason == "DANE: server certificate matches no TLSA record"
    assert kit["good"].messages == []
    assert not kit["good"].saw(b"MAIL FROM")


def test_dane_ta_matches_the_issuing_authority(kit, transport):
    ca_digest = hashlib.sha256(kit.ca.certificate_der).digest()
    record = Tlsa(usage=2, selector=0, matching=1, data=ca_digest)
    policy = _resolve(kit, transport, "good.test", _dane_resolver(kit, "good", record))

    (outcome,) = _deliver(kit["good"], policy, transport)

    assert outcome.status == Status.DELIVERED
    assert outcome.evidence.method == "dane"


def test_tlsa_without_dnssec_validation_is_ignored(kit, transport):
    record = Tlsa(usage=3, selector=1, matching=1, data=hashlib.sha256(b"attacker key").digest())
    policy = _resolve(kit, transport, "good.test", _dane_resolver(kit, "good", record, secure=False))

    assert policy.source == Source.STARTTLS_PROBE
    assert policy.verified


# --- the probe -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "source", "reason"),
    [
        ("good", Source.STARTTLS_PROBE, "STARTTLS with a verified certificate on mx.good.test"),
        ("plain", Source.NONE, "no verified TLS on mx.plain.test: STARTTLS not offered"),
        ("untrusted", Source.NONE, "no verified TLS on mx.untrusted.test: certificate verification failed"),
    ],
)
def test_probe_reports_what_the_mx_offers(kit, transport, kind, source, reason):
    policy = _resolve(kit, transport, f"{kind}.test", kit.resolver())

    assert policy.source == source
    assert policy.reason.startswith(reason)
    if source == Source.STARTTLS_PROBE:
        assert policy.tls_version in ("TLSv1.2", "TLSv1.3")
        assert policy.cipher


# --- the cache -------------------------------------------------------------------------------------


class CountingResolver:
    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def mx(self, domain):
        self.calls += 1
        return self.inner.mx(domain)

    def txt(self, name):
        return self.inner.txt(name)

    def tlsa(self, name):
        return self.inner.tlsa(name)


@pytest.mark.django_db
def test_policy_is_cached_until_its_ttl_then_resolved_again(kit, transport):
    resolver = CountingResolver(kit.resolver())
    kwargs = dict(
        domain="good.test", resolver=resolver, fetcher=_fetcher(kit), prober=starttls_prober(transport)
    )

    first = tls_policy_for_domain(**kwargs)
    second = tls_policy_for_domain(**kwargs)
    later = tls_policy_for_domain(**kwargs, now=timezone.now() + timedelta(hours=2))

    assert first == second == later
    assert first.source == Source.STARTTLS_PROBE
    assert resolver.calls == 2
    row = DomainTlsPolicy.objects.get(domain="good.test")
    assert row.source == "starttls-probe"
    assert row.verified
    assert "verified certificate" in row.reason


@pytest.mark.django_db
def test_blocking_the_policy_fetch_does_not_downgrade_an_unexpired_mta_sts_policy(kit, transport):
    kit.policy_server.publish("enforce.test", mode="enforce", mx=["mx.enforce.test"], max_age=86400)
    resolver = kit.resolver(mx={"enforce.test": [kit["plain"].mx()]}, txt=_sts_txt("enforce.test"))
    kwargs = dict(
        domain="enforce.test", resolver=resolver, fetcher=_fetcher(kit), prober=starttls_prober(transport)
    )
    tls_policy_for_domain(**kwargs)

    kit.policy_server.policies.clear()  # an attacker blocks or strips the policy host
    stripped = kit.resolver(mx={"enforce.test": [kit["plain"].mx()]})  # and the TXT record
    kwargs["resolver"] = stripped
    policy = tls_policy_for_domain(**kwargs, now=timezone.now() + timedelta(hours=2))

    assert (policy.source, policy.mode) == (Source.MTA_STS, "enforce")
    assert "kept until max_age" in policy.reason
    expired = tls_policy_for_domain(**kwargs, now=timezone.now() + timedelta(days=2))
    assert expired.source == Source.NONE
