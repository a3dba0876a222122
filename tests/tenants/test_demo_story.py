"""The demo story: a newcomer's tenant can send at once (demo/story.py)."""

import json

import pytest

from campaigns.models import Campaign, Template
from campaigns.services.audience import campaign_audience_preview
from consent.gate import may_send_batch
from consent.models import Authorization, ConsentEvent
from contacts.models import Contact
from delivery.models import DkimKey, SenderDomain
from delivery.sender_domains.records import spf_include
from demo.story import CAMPAIGN_NAME, PHI_CAMPAIGN_NAME, SENDER_DOMAIN
from healthmail.accounts.models import ApiKey
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from .test_commands import _call

pytestmark = pytest.mark.django_db


@pytest.fixture
def zone(tmp_path, settings):
    path = tmp_path / "dns-zone.json"
    path.write_text("{}")
    settings.DELIVERY_RESOLVER, settings.DELIVERY_DNS_ZONE_FILE = "static", str(path)
    return path


def test_story_verifies_through_the_product_check_and_is_ready_to_send(tmp_path, zone):
    _call("seed_demo", "--logins-file", str(tmp_path / "logins.txt"), "--publish-dns")
    tenant = Tenant.objects.get(slug="demo")
    with tenant_context(tenant):
        sender = SenderDomain.objects.get(domain=SENDER_DOMAIN)
        key = DkimKey.objects.get(sender_domain=sender, state=DkimKey.State.ACTIVE)
        campaign = Campaign.objects.select_related("topic").get(name=CAMPAIGN_NAME)
        kinds = set(Template.objects.values_list("kind", flat=True))
        contacts = list(Contact.objects.all())
        opted = ConsentEvent.objects.values("contact").distinct().count()
        authorized = Authorization.objects.count()
        assert ApiKey.objects.filter(name="Demo EHR").exists()
    assert sender.status == SenderDomain.Status.VERIFIED
    txt = json.loads(zone.read_text())["txt"]
    # the tenant's own public key, as the sender-domain page asks for it
    assert "".join(key.public_key.split()) in "".join(
        txt[f"{key.selector}._domainkey.{SENDER_DOMAIN}"][0].split()
    )
    assert txt[SENDER_DOMAIN] == [f"v=spf1 include:{spf_include()} ~all"]
    assert txt[f"_dmarc.{SENDER_DOMAIN}"][0].startswith("v=DMARC1")
    assert txt[f"_mta-sts.{SENDER_DOMAIN}"][0].startswith("v=STSv1")
    assert campaign.status == Campaign.Status.APPROVED
    assert kinds == {Template.Kind.MARKETING, Template.Kind.TRANSACTIONAL}
    assert 0 < authorized < opted < len(contacts)
    # both kinds of patient domain are among those the campaign may reach, and some are excluded
    decisions = may_send_batch(
        tenant=tenant,
        contact_ids=[c.pk for c in contacts],
        purpose="marketing",
        uses_phi=campaign.uses_phi,
        topic=campaign.topic,
    )
    allowed = {c.email.split("@")[1] for c in contacts if decisions[c.pk].allowed}
    assert allowed == {"patients.test", "example.org"}
    assert sum(not d.allowed for d in decisions.values()) > 0
    # the second campaign's segment uses a clinical field: opted-in patients without a HIPAA
    # authorization are excluded for that reason, the authorized ones remain
    with tenant_context(tenant):
        phi = Campaign.objects.get(name=PHI_CAMPAIGN_NAME)
    assert phi.status == Campaign.Status.APPROVED
    assert phi.uses_phi
    assert not campaign.uses_phi
    preview = campaign_audience_preview(tenant=tenant, campaign=phi)
    reasons = {e.code: e for e in preview.exclusions}
    assert reasons["no_authorization"].label == "No HIPAA authorization (PHI)"
    assert reasons["no_authorization"].count > 0
    assert preview.sendable > 0


def test_publish_dns_needs_the_static_resolver(tmp_path, settings):
    from django.core.management import CommandError

    settings.DELIVERY_RESOLVER = "system"
    with pytest.raises(CommandError, match="DELIVERY_RESOLVER=static"):
        _call("seed_demo", "--logins-file", str(tmp_path / "logins.txt"), "--publish-dns")
