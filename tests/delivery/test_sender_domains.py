"""Sender domains: DNS records to publish, the check of what is published, key rotation, and the
refusal to sign for an unverified domain."""

import dkim as dkimpy
import pytest
from django.db import connection
from django.urls import reverse

from delivery import dkim
from delivery.models import DkimKey, SenderDomain
from delivery.sender_domains import records, services
from delivery.tls.resolver import StaticResolver
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context

pytestmark = pytest.mark.django_db
ADMIN = Actor.system("test")


def _published(sender_domain, *, spf=True, dmarc=True, keys=None):
    """A DNS map publishing what the page asks for (optionally leaving parts out)."""
    txt = {}
    if spf:
        txt[sender_domain.domain] = [
            f"v=spf1 include:{records.spf_include()} ~all",
            "google-site-verification=x",
        ]
    if dmarc:
        txt[f"_dmarc.{sender_domain.domain}"] = ["v=DMARC1; p=none"]
    for key in keys if keys is not None else DkimKey.objects.filter(sender_domain=sender_domain):
        record = dkim.dns_record(key.public_key, key.algorithm)
        txt[f"{key.selector}._domainkey.{sender_domain.domain}"] = [*[record[:200], record[200:]][:1], record]
    return StaticResolver(txt_map=txt)


def _add(tenant, domain="mail.clinic-a.test"):
    with tenant_context(tenant):
        return services.sender_domain_add(tenant=tenant, actor=ADMIN, domain=domain)


def test_signing_is_refused_until_the_domain_verifies(tenant_a):
    sender_domain = _add(tenant_a)
    with tenant_context(tenant_a):
        with pytest.raises(services.SenderDomainUnverified):
            services.sender_domain_signing_key(tenant=tenant_a, domain="mail.clinic-a.test")
        with pytest.raises(services.SenderDomainUnverified):
            services.sender_domain_signing_key(tenant=tenant_a, domain="never-added.test")
        checks = services.sender_domain_check(
            tenant=tenant_a,
            actor=ADMIN,
            sender_domain=sender_domain,
            resolver=_published(sender_domain, dmarc=False),
        )
        assert {c.record.purpose: c.ok for c in checks if c.record.required} == {
            "SPF": True,
            "DMARC": False,
            f"DKIM {sender_domain.keys.get().selector} (Active (signing))": True,
        }
        with pytest.raises(services.SenderDomainUnverified):
            services.sender_domain_signing_key(tenant=tenant_a, domain="mail.clinic-a.test")

        services.sender_domain_check(
            tenant=tenant_a, actor=ADMIN, sender_domain=sender_domain, resolver=_published(sender_domain)
        )
        key = services.sender_domain_signing_key(tenant=tenant_a, domain="MAIL.clinic-a.test")
        sender_domain.refresh_from_db()
        public = sender_domain.keys.get().public_key

    assert sender_domain.status == SenderDomain.Status.VERIFIED
    message = b"From: care@mail.clinic-a.test\r\nTo: p@x.test\r\nSubject: hi\r\n\r\nhello\r\n"
    signed = dkim.sign_message(message, key)
    assert dkimpy.verify(signed, dnsfunc=lambda name, timeout=5: dkim.dns_record(public).encode())


def test_a_domain_that_fails_a_later_check_stops_signing(tenant_a):
    sender_domain = _add(tenant_a)
    with tenant_context(tenant_a):
        services.sender_domain_check(
            tenant=tenant_a, actor=ADMIN, sender_domain=sender_domain, resolver=_published(sender_domain)
        )
        services.sender_domain_check(
            tenant=tenant_a,
            actor=ADMIN,
            sender_domain=sender_domain,
            resolver=_published(sender_domain, spf=False),
        )
        with pytest.raises(services.SenderDomainUnverified):
            services.sender_domain_signing_key(tenant=tenant_a, domain=sender_domain.domain)


def test_rotation_keeps_the_old_key_published_until_retired(tenant_a):
    sender_domain = _add(tenant_a)
    with tenant_context(tenant_a):
        old = sender_domain.keys.get()
        services.sender_domain_check(
            tenant=tenant_a, actor=ADMIN, sender_domain=sender_domain, resolver=_published(sender_domain)
        )
        new = services.dkim_key_rotate(tenant=tenant_a, actor=ADMIN, sender_domain=sender_domain)
        # Not yet published: the old key keeps signing.
        services.sender_domain_check(
            tenant=tenant_a,
            actor=ADMIN,
            sender_domain=sender_domain,
            resolver=_published(sender_domain, keys=[old]),
        )
        assert (
            services.sender_domain_signing_key(tenant=tenant_a, domain=sender_domain.domain).selector
            == old.selector
        )
        # Published: it takes over; the old one is retiring and still listed for DNS.
        services.sender_domain_check(
            tenant=tenant_a, actor=ADMIN, sender_domain=sender_domain, resolver=_published(sender_domain)
        )
        assert (
            services.sender_domain_signing_key(tenant=tenant_a, domain=sender_domain.domain).selector
            == new.selector
        )
        old.refresh_from_db()
        assert old.state == DkimKey.State.RETIRING
        listed = records.expected_records(sender_domain, list(sender_domain.keys.all()))
        assert any(r.name.startswith(old.selector) for r in listed)
        services.dkim_key_retire(tenant=tenant_a, actor=ADMIN, key=old)
        assert not any(
            r.name.startswith(old.selector)
            for r in records.expected_records(sender_domain, list(sender_domain.keys.all()))
        )


def test_private_keys_are_sealed_in_the_database(tenant_a):
    _add(tenant_a)
    with tenant_context(tenant_a), connection.cursor() as cursor:
        cursor.execute("SELECT private_key FROM delivery_dkimkey")
        (sealed,) = cursor.fetchone()
    assert b"PRIVATE KEY" not in bytes(sealed)


def test_page_shows_records_and_the_check_uses_the_resolver(member_client, tenant_a, monkeypatch):
    client = member_client(Role.TENANT_ADMIN)
    response = client.post(reverse("delivery:sender_domain_list"), {"domain": "Mail.Clinic-A.test."})
    with tenant_context(tenant_a):
        sender_domain = SenderDomain.objects.get()
        key = sender_domain.keys.get()
    assert response.status_code == 302
    assert sender_domain.domain == "mail.clinic-a.test"

    page = client.get(reverse("delivery:sender_domain_detail", args=[sender_domain.pk])).content.decode()
    assert f"include:{records.spf_include()}" in page
    assert "_dmarc.mail.clinic-a.test" in page
    assert f"{key.selector}._domainkey.mail.clinic-a.test" in page
    assert key.public_key in page
    assert "PRIVATE" not in page

    with tenant_context(tenant_a):
        resolver = _published(sender_domain)
    monkeypatch.setattr("delivery.sender_domains.views.get_resolver", lambda: resolver)
    response = client.post(reverse("delivery:sender_domain_check", args=[sender_domain.pk]), follow=True)
    assert "is verified" in response.content.decode()
    with tenant_context(tenant_a):
        sender_domain.refresh_from_db()
    assert sender_domain.status == SenderDomain.Status.VERIFIED


def test_invalid_and_duplicate_domains_are_refused(member_client):
    client = member_client(Role.TENANT_ADMIN)
    assert client.post(reverse("delivery:sender_domain_list"), {"domain": "not a domain"}).status_code == 400
    client.post(reverse("delivery:sender_domain_list"), {"domain": "mail.clinic-a.test"})
    response = client.post(reverse("delivery:sender_domain_list"), {"domain": "mail.clinic-a.test"})
    assert response.status_code == 409
    assert "already set up" in response.content.decode()


@pytest.mark.parametrize("role", [Role.MARKETER, Role.COMPLIANCE_OFFICER, Role.CLINICAL_REVIEWER])
def test_only_tenant_admins_manage_sender_domains(member_client, role):
    client = member_client(role)
    assert client.get(reverse("delivery:sender_domain_list")).status_code == 403


def test_another_tenants_domain_answers_404(member_client, tenant_b):
    foreign = _add(tenant_b, "mail.clinic-b.test")
    client = member_client(Role.TENANT_ADMIN)
    for name in ("delivery:sender_domain_detail",):
        assert client.get(reverse(name, args=[foreign.pk])).status_code == 404
    for name in ("delivery:sender_domain_check", "delivery:dkim_key_rotate"):
        assert client.post(reverse(name, args=[foreign.pk])).status_code == 404
    with tenant_context(tenant_b):
        assert foreign.keys.count() == 1


def test_without_an_spf_include_the_page_says_what_to_configure(member_client, tenant_a, settings):
    """No placeholder include: one for a domain without SPF would break the tenant's SPF (RFC 7208 5.2)."""
    settings.DELIVERY_SPF_INCLUDE = ""
    client = member_client(Role.TENANT_ADMIN)
    client.post(reverse("delivery:sender_domain_list"), {"domain": "mail.clinic-a.test"})
    with tenant_context(tenant_a):
        sender_domain = SenderDomain.objects.get()
    page = client.get(reverse("delivery:sender_domain_detail", args=[sender_domain.pk])).content.decode()
    assert "include:_" not in page
    assert "v=spf1" not in page
    assert "has not set DELIVERY_SPF_INCLUDE" in page
    with tenant_context(tenant_a):
        resolver = _published(sender_domain)
        check = records.check_record(records.expected_records(sender_domain, [])[0], resolver)
    assert not check.ok
    assert "not configured" in check.note
