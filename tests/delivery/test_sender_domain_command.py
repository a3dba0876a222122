"""`manage.py sender_domain_check`: the page's check from the command line, static zone files included."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from delivery.models import DkimKey, SenderDomain
from delivery.sender_domains.records import expected_records
from delivery.sender_domains.services import sender_domain_add
from healthmail.tenants.context import tenant_context

pytestmark = pytest.mark.django_db
DOMAIN = "mail.clinic-a.test"


@pytest.fixture
def sender(tenant_a):
    from healthmail.actors import Actor

    with tenant_context(tenant_a):
        return sender_domain_add(tenant=tenant_a, actor=Actor.system("tests"), domain=DOMAIN)


def _zone(tmp_path, tenant, sender, *, skip: str = "") -> str:
    with tenant_context(tenant):
        records = expected_records(sender, list(DkimKey.objects.filter(sender_domain=sender)))
    txt = {r.name: [r.value] for r in records if r.purpose != skip}
    path = tmp_path / "zone.json"
    path.write_text(json.dumps({"txt": txt}))
    return str(path)


def _run(*args) -> tuple[str, int]:
    out = io.StringIO()
    try:
        call_command("sender_domain_check", *args, stdout=out)
    except SystemExit as exit_:
        return out.getvalue(), exit_.code
    return out.getvalue(), 0


def test_verifies_from_a_zone_file_like_the_page(tmp_path, tenant_a, sender):
    zone = _zone(tmp_path, tenant_a, sender)
    out, code = _run("--tenant", tenant_a.slug, "--domain", DOMAIN.upper(), "--zone-file", zone)
    assert code == 0, out
    assert f"{DOMAIN}: verified" in out
    with tenant_context(tenant_a):
        sender.refresh_from_db()
        assert sender.status == SenderDomain.Status.VERIFIED
        event = AuditEvent.objects.filter(action="sender_domain.check").latest("occurred_at")
    assert (event.actor_type, event.actor_id) == ("system", "manage.py")


def test_missing_record_is_named_with_what_to_publish(tmp_path, tenant_a, sender):
    zone = _zone(tmp_path, tenant_a, sender, skip="DMARC")
    out, code = _run("--tenant", tenant_a.slug, "--domain", DOMAIN, "--zone-file", zone)
    assert code == 1
    assert "MISSING  DMARC" in out
    assert "publish: v=DMARC1" in out
    assert f"{DOMAIN}: NOT verified" in out


def test_uses_the_configured_static_resolver(tmp_path, tenant_a, sender, settings):
    settings.DELIVERY_RESOLVER, settings.DELIVERY_DNS_ZONE_FILE = "static", _zone(tmp_path, tenant_a, sender)
    assert _run("--tenant", tenant_a.slug, "--domain", DOMAIN)[1] == 0


def test_unknown_tenant_domain_or_zone_file(tmp_path, tenant_a, tenant_b, sender):
    with pytest.raises(CommandError, match="No tenant"):
        _run("--tenant", "nobody", "--domain", DOMAIN)
    with pytest.raises(CommandError, match="not a sender domain"):  # another tenant's domain
        _run("--tenant", tenant_b.slug, "--domain", DOMAIN)
    with pytest.raises(CommandError, match="Cannot read"):
        _run("--tenant", tenant_a.slug, "--domain", DOMAIN, "--zone-file", str(tmp_path / "none.json"))
