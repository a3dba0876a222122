"""The dev mail world (healthmail/devmail): receivers that keep every message in the dev Maildir,
a persistent dev CA whose files only the owner reads, and the zone file that points at them."""

import mailbox
import smtplib
import ssl
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from delivery.engine.send import Dependencies
from delivery.tls.policy import Source, tls_policy_resolve
from delivery.tls.zone import zone_resolver
from healthmail.devmail import receivers
from healthmail.devmail.ca import CertificateAuthority
from healthmail.devmail.world import (
    DEMO_SENDER_DOMAIN,
    PATIENT_DOMAINS,
    SYSTEM_HOST,
    mail_world,
    zone_publish_txt,
    zone_write,
)
from tests.delivery.conftest import run
from tests.delivery.servers import free_port

RAW = b"From: a@mail.demo-health.test\r\nTo: p@patients.test\r\nSubject: hi\r\n\r\nHello.\r\n"


@pytest.fixture
def world(tmp_path):
    ports = {kind: free_port() for kind in ("tls", "plain", "badcert", "system", "mta-sts")}
    world = mail_world(tmp_path, ports)
    (tmp_path / "mail").mkdir()  # the folder exists without tmp/new/cur: the sink used to refuse all mail
    controllers = receivers.start(list(world.receivers), tmp_path / "mail")
    yield world
    for controller in controllers:
        controller.stop()


def _starttls(port: int, context: ssl.SSLContext, name: str) -> None:
    """STARTTLS to a receiver on 127.0.0.1, verifying the certificate names `name` (as the engine does)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo()
        client._host = name  # smtplib checks the certificate against the host it was given
        client.starttls(context=context)


def _send(port: int, *, tls_context: ssl.SSLContext | None) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        if tls_context is not None:
            client.starttls(context=tls_context)
        client.sendmail("bounce-t+1@mail.demo-health.test", ["p@patients.test"], RAW)


def _stored(world) -> list[bytes]:
    box = mailbox.Maildir(world.maildir, factory=None, create=False)
    return [box.get_bytes(key) for key in box.iterkeys()]


def test_tls_receiver_verifies_against_the_dev_ca_and_keeps_the_raw_message(world):
    context = ssl.create_default_context(cafile=world.ca_file)  # hostname checked as the engine does
    context.check_hostname = False  # the receiver is dialled at 127.0.0.1; its name is checked below
    _send(world.receiver("tls").port, tls_context=context)
    [stored] = _stored(world)
    head, _, rest = stored.partition(b"X-Dev-TLS: ")
    assert rest.split(b"\r\n", 1)[0].startswith(b"TLSv1.")
    assert stored.endswith(RAW)  # the message's own bytes untouched, below the trace headers
    assert b"Return-Path: <bounce-t+1@mail.demo-health.test>" in head
    assert b"Delivered-To: p@patients.test" in head
    assert b"X-Dev-Receiver: tls; host=mx.patients.test" in head
    _starttls(
        world.receiver("tls").port, ssl.create_default_context(cafile=world.ca_file), "mx.patients.test"
    )
    with pytest.raises(ssl.SSLCertVerificationError):  # and only that name
        _starttls(
            world.receiver("tls").port, ssl.create_default_context(cafile=world.ca_file), "mx.other.test"
        )


def test_plain_receiver_has_no_starttls_and_records_that(world):
    with smtplib.SMTP("127.0.0.1", world.receiver("plain").port, timeout=10) as client:
        client.ehlo()
        assert not client.has_extn("starttls")
    _send(world.receiver("plain").port, tls_context=None)
    [stored] = _stored(world)
    assert b"X-Dev-TLS: none" in stored
    assert b"X-Dev-Receiver: plain; host=mx.example.org" in stored


def test_bad_certificate_fails_verification(world):
    verifying = ssl.create_default_context(cafile=world.ca_file)
    with pytest.raises(ssl.SSLCertVerificationError):
        _starttls(world.receiver("badcert").port, verifying, "mx.badcert.test")


def test_the_sink_recreates_its_folders_while_running(world, tmp_path):
    for sub in ("tmp", "new", "cur"):
        (tmp_path / "mail" / sub).rmdir()
    _send(world.receiver("system").port, tls_context=None)
    assert len(_stored(world)) == 1


def test_ca_is_kept_private_and_reused(tmp_path):
    first = CertificateAuthority.persistent(tmp_path / "ca")
    second = CertificateAuthority.persistent(tmp_path / "ca")
    assert first.certificate_der == second.certificate_der
    for path in (tmp_path / "ca").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((tmp_path / "ca").stat().st_mode) == 0o700


def test_zone_points_patient_domains_at_their_receivers_and_keeps_published_txt(world):
    zone_publish_txt(world.zone_file, {"mail.demo-health.test": ["v=spf1 ~all"]})
    zone_write(world.zone_file, world)  # a later run rewrites the MX part only
    resolver = zone_resolver(world.zone_file)
    for kind, domain in PATIENT_DOMAINS.items():
        [mx] = resolver.mx(domain).records
        assert (mx.host, mx.port, mx.address) == (f"mx.{domain}", world.receiver(kind).port, "127.0.0.1")
    assert resolver.txt("mail.demo-health.test").records == ("v=spf1 ~all",)


def test_the_engine_fetches_the_demo_sender_domains_mta_sts_policy_through_the_static_zone(world, settings):
    """The product's own fetch (Dependencies.from_settings, as the worker builds it): the TXT id from
    the zone, the policy over HTTPS from the port the zone's "https" table names, verified against the
    dev CA. Without that table the fetcher dials mta-sts.<domain>:443 and the policy is unusable."""
    settings.DELIVERY_RESOLVER, settings.DELIVERY_DNS_ZONE_FILE = "static", world.zone_file
    settings.DELIVERY_CA_FILE = world.ca_file
    zone_write(world.zone_file, world)
    zone_publish_txt(world.zone_file, {f"_mta-sts.{DEMO_SENDER_DOMAIN}": ["v=STSv1; id=20261207"]})
    deps = Dependencies.from_settings()
    policy = run(
        tls_policy_resolve(
            DEMO_SENDER_DOMAIN, resolver=deps.resolver, fetcher=deps.fetcher, prober=deps.prober
        )
    )
    assert (policy.source, policy.mode, policy.mta_sts_id) == (Source.MTA_STS, "testing", "20261207")
    assert policy.mx_patterns == (SYSTEM_HOST,)
    assert [mx.host for mx in policy.mx] == [SYSTEM_HOST]  # the policy names the domain's own MX


def test_a_ca_key_of_another_kind_is_replaced_by_a_new_ca(tmp_path):
    """The CA signs with the EC key it made; a key file of another kind (not one it wrote) is treated
    like an expiring CA: a new CA and key replace it."""
    first = CertificateAuthority.persistent(tmp_path / "ca")
    foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "ca" / "ca.key").write_bytes(
        foreign.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    second = CertificateAuthority.persistent(tmp_path / "ca")
    assert isinstance(second.key, ec.EllipticCurvePrivateKey)
    assert second.certificate_der != first.certificate_der
    assert isinstance(CertificateAuthority.persistent(tmp_path / "ca").key, ec.EllipticCurvePrivateKey)


def test_the_policy_server_refuses_a_spec_without_a_certificate():
    spec = receivers.ReceiverSpec("mta-sts", "mta-sts.example.org", free_port())
    with pytest.raises(ValueError, match="HTTPS"):
        receivers.PolicyServer(spec, "version: STSv1\n")
