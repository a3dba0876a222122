"""Operator commands: create_tenant, record_baa, seed_demo. Audited as the system."""

import datetime
import hashlib
import io
import stat

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from audit.models import AuditEvent
from contacts.models import Contact
from healthmail.accounts.models import Membership, User
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Service, Subcontractor, Tenant
from healthmail.tenants.services import active_baa, tenant_can
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()


def _call(*args, **options) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


def test_create_tenant():
    out = _call(
        "create_tenant",
        "--name",
        "Synthetic Hospital",
        "--slug",
        "synthetic-hospital",
        "--postal-address",
        "1 Example Road",
        "--timezone",
        "America/Chicago",
    )
    tenant = Tenant.objects.get(slug="synthetic-hospital")
    assert str(tenant.pk) in out
    assert (tenant.name, tenant.timezone) == ("Synthetic Hospital", "America/Chicago")
    assert not tenant_can(tenant, Service.TRANSACTIONAL_EMAIL)
    with tenant_context(tenant):
        event = AuditEvent.objects.get(action="tenant.create")
    assert (event.actor_type, event.actor_id) == ("system", "manage.py")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--slug", "taken"], "is taken"),
        (["--timezone", "Nowhere/Special"], "Unknown time zone"),
        (["--slug", "Not A Slug"], "valid"),
    ],
)
def test_create_tenant_bad_input(args, message):
    TenantFactory(slug="taken")
    base = ["--name", "X", "--slug", "fresh", "--postal-address", "1 Example Road"]
    with pytest.raises(CommandError, match=message):
        _call("create_tenant", *base, *args)
    assert Tenant.objects.count() == 1


@pytest.fixture
def document(tmp_path):
    path = tmp_path / "signed-baa.pdf"
    path.write_bytes(b"%PDF-1.4 synthetic signed agreement")
    return path


def _baa_args(tenant_slug, document, **overrides):
    options = {
        "--tenant": tenant_slug,
        "--counterparty": "Synthetic Covered Entity",
        "--signed": str(TODAY - datetime.timedelta(days=1)),
        "--effective": str(TODAY),
        "--signatory": "Synthetic Signatory",
        "--title": "CEO",
        "--document": str(document),
        "--services": "transactional_email,marketing_email",
    }
    options.update(overrides)
    return [part for key, value in options.items() if value is not None for part in (key, value)]


def test_record_baa(document):
    tenant = TenantFactory(slug="clinic")
    out = _call(
        "record_baa",
        *_baa_args("clinic", document, **{"--breach-days": "30"}),
        "--subcontractor",
        "Synthetic Hosting | database hosting",
    )
    baa = active_baa(tenant=tenant)
    assert str(baa.pk) in out
    assert baa.document_sha256 == hashlib.sha256(document.read_bytes()).hexdigest()
    assert baa.services == ["marketing_email", "transactional_email"]
    assert (baa.expires_on, baa.breach_notification_days, baa.signatory_title) == (None, 30, "CEO")
    assert tenant_can(tenant, Service.MARKETING_EMAIL)
    assert not tenant_can(tenant, Service.SECURE_PORTAL)
    with tenant_context(tenant):
        assert list(Subcontractor.objects.values_list("name", flat=True)) == ["Synthetic Hosting"]
        event = AuditEvent.objects.get(action="baa.record")
    assert (event.actor_type, event.actor_id) == ("system", "manage.py")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"--tenant": "nobody"}, "no tenant with the short name"),
        ({"--signed": "2026-13-01"}, "--signed: .* is not a date in the form YYYY-MM-DD"),
        ({"--effective": "yesterday"}, "--effective: .* is not a date"),
        ({"--expires": "01/02/2030"}, "--expires: .* is not a date"),
        ({"--services": "transactional_email,carrier_pigeon"}, "unknown service carrier_pigeon"),
        ({"--services": ","}, "name at least one"),
        ({"--expires": str(TODAY)}, "expiry date must come after the effective date"),
        ({"--effective": str(TODAY - datetime.timedelta(days=5))}, "cannot take effect before it is signed"),
        ({"--document": "/nonexistent/baa.pdf"}, "no such file"),
        ({"--breach-days": "61"}, "between 1 and 60"),
    ],
)
def test_record_baa_bad_input(document, overrides, message):
    tenant = TenantFactory(slug="clinic")
    with pytest.raises(CommandError, match=message):
        _call("record_baa", *_baa_args("clinic", document, **overrides))
    assert active_baa(tenant=tenant) is None


def test_record_baa_bad_subcontractor_line(document):
    TenantFactory(slug="clinic")
    with pytest.raises(CommandError, match="--subcontractor: Line 1"):
        _call("record_baa", *_baa_args("clinic", document), "--subcontractor", "no separator")


def test_seed_demo_creates_everything_once(tmp_path, settings):
    zone = tmp_path / "dns-zone.json"
    zone.write_text("{}")
    settings.DELIVERY_RESOLVER, settings.DELIVERY_DNS_ZONE_FILE = "static", str(zone)
    logins = tmp_path / "devstack" / "demo-logins.txt"
    first = _call("seed_demo", "--logins-file", str(logins), "--publish-dns")
    tenant = Tenant.objects.get(slug="demo")
    assert tenant.name == "Demo Health System"
    assert all(tenant_can(tenant, service) for service in Service.values)
    emails = [
        f"{local}@demo.healthmail.test"
        for local in ("admin", "tenant_admin", "marketer", "compliance", "clinical")
    ]
    users = {u.email: u for u in User.objects.filter(email__in=emails)}
    assert sorted(users) == sorted(emails)
    assert users["admin@demo.healthmail.test"].is_platform_admin
    with tenant_context(tenant):
        roles = dict(Membership.objects.values_list("user__email", "role"))
    assert roles == {
        "tenant_admin@demo.healthmail.test": "tenant_admin",
        "marketer@demo.healthmail.test": "marketer",
        "compliance@demo.healthmail.test": "compliance_officer",
        "clinical@demo.healthmail.test": "clinical_reviewer",
    }
    for user in users.values():
        device = user.totpdevice_set.get()
        assert device.confirmed
        assert device.config_url in first
    # DEBUG is off under test: each password is generated, printed once, and works
    text = logins.read_text()
    for email, user in users.items():
        password = text.split(email, 1)[1].split("password:", 1)[1].split()[0]
        assert user.check_password(password), email
        assert password != "demo-only-password-not-for-production"
        assert f"password:    {password}" in first
    assert "otpauth://totp/" in text
    assert stat.S_IMODE(logins.stat().st_mode) == 0o600

    with tenant_context(tenant):
        patients = list(Contact.objects.all())
    assert len(patients) == 200
    assert {p.is_minor for p in patients} == {True, False}
    assert any(p.age_90_or_older for p in patients)
    assert any(p.sensitive_categories for p in patients)
    assert "synthetic patients: 200 created, 0 already there" in first

    text = logins.read_text()
    assert "API key (Demo EHR" in text
    second = _call("seed_demo", "--logins-file", str(logins), "--publish-dns")
    assert second.strip().splitlines() == [
        "synthetic patients: 0 created, 200 already there",
        "demo: sender domain mail.demo-health.test: verified through the dev DNS zone",
        f"demo data exists; logins in {logins}",
    ]
    with tenant_context(tenant):
        assert Contact.objects.count() == 200
    assert "password" not in second
    assert Tenant.objects.filter(slug="demo").count() == 1
    assert User.objects.filter(email__in=emails).count() == 5
    assert logins.read_text() == text


def test_seed_demo_uses_the_fixed_password_only_in_debug(tmp_path, settings):
    settings.DEBUG = True
    logins = tmp_path / "demo-logins.txt"
    logins.write_text("stale")
    logins.chmod(0o644)
    out = _call("seed_demo", "--logins-file", str(logins))
    # without --publish-dns nothing is published: the product's check keeps the domain unverified
    assert "sender domain mail.demo-health.test is not verified: publish its records" in out
    assert User.objects.get(email="marketer@demo.healthmail.test").check_password(
        "demo-only-password-not-for-production"
    )
    assert stat.S_IMODE(logins.stat().st_mode) == 0o600
