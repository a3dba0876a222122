"""The demo tenant's story (`manage.py seed_demo`): everything a newcomer needs to send a campaign and
a transactional message on a fresh `make run` and watch both delivery paths arrive in the dev mailbox.

A sender domain (verified through the product's own check against the dev DNS zone when
`publish_dns`), branding, topic opt-ins for two thirds of the synthetic patients and HIPAA marketing
authorizations for half of those (the rest show up as exclusions), a segment, a campaign template, a
campaign approved and ready to send, a transactional template and an API key. Each piece is created
only when missing, so a re-run changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from campaigns.models import Campaign, Goal, Template
from campaigns.services import campaigns as campaign_services
from campaigns.services import templates as template_services
from campaigns.services import workflow
from consent import authorizations
from consent import services as consent
from consent.models import Authorization, AuthorizationKind, AuthorizationText, ConsentEvent, Source
from contacts.models import Contact
from delivery.models import DkimKey, SenderDomain
from delivery.sender_domains.records import expected_records
from delivery.sender_domains.services import sender_domain_add, sender_domain_check
from delivery.tls.resolver import get_resolver
from healthmail.accounts.api_keys import api_key_create
from healthmail.accounts.models import ApiKey, User
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.devmail.world import DEMO_SENDER_DOMAIN
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant
from segmentation.models import Segment
from segmentation.services import segment_create

SENDER_DOMAIN = DEMO_SENDER_DOMAIN
SEGMENT_NAME = "Adults due for a flu shot"
CAMPAIGN_NAME = "Flu shots are here (demo)"
CAMPAIGN_TEMPLATE = "Flu season"
TRANSACTIONAL_TEMPLATE = "Appointment reminder"
# The PHI campaign: its segment uses a clinical field, so only patients with a HIPAA authorization may
# get it (45 CFR 164.508(a)(3)); its page shows the others excluded with that reason.
PHI_SEGMENT_NAME = "Patients with hypertension"
PHI_SEGMENT_DEFINITION = {"all": [{"field": "condition", "op": "in", "value": ["I10"]}]}
PHI_CAMPAIGN_NAME = "Blood pressure check-ups (demo, PHI)"
PHI_CAMPAIGN_TEMPLATE = "Blood pressure check-up"
API_KEY_NAME = "Demo EHR"
TOPIC = "marketing_newsletters"

CAMPAIGN_HTML = (
    "<h1>Flu shots are here</h1>"
    "<p>Hello {{ contact.first_name }}, protect yourself and your family this winter.</p>"
    '<p><a class="button" href="https://demo-health.test/book">Book a visit</a></p>'
)
CAMPAIGN_TEXT = "Flu shots are here. Book a visit: https://demo-health.test/book"
PHI_CAMPAIGN_HTML = (
    "<h1>Time for a blood pressure check-up</h1>"
    "<p>Hello {{ contact.first_name }}, our nurses run free check-ups every Tuesday.</p>"
    '<p><a class="button" href="https://demo-health.test/book">Book a check-up</a></p>'
)
PHI_CAMPAIGN_TEXT = "Free blood pressure check-ups every Tuesday: https://demo-health.test/book"
REMINDER_HTML = "<p>Hello {{ contact.first_name }}, your appointment is on {{ data.appointment_time }}.</p>"
AUTHORIZATION_ELEMENTS = {
    "phi_description": "Your name, email address and the vaccinations you are due for.",
    "disclosers": "Demo Health System and its marketing staff.",
    "recipients": "Demo Health System's email service, under a business associate agreement.",
    "purpose": "To tell you about vaccination clinics and services that may interest you.",
    "expiration": "One year after you sign.",
    "expiry_days": 365,
    "revocation_rights": "You may revoke this at any time from the preference center or by writing to us.",
    "conditioning_statement": "Your treatment, payment, enrollment or eligibility do not depend on signing.",
    "redisclosure_statement": "Information shared may be shared again by the recipient and lose protection.",
}


@dataclass
class Story:
    notes: list[str] = field(default_factory=list)
    api_key: str = ""  # the secret, only when this run created the key


def _actor(local: str, domain: str) -> Actor:
    return Actor.for_user(User.objects.get(username=f"{local}@{domain}"))


def story_ensure(*, tenant: Tenant, users_domain: str, publish_dns: bool) -> Story:
    story = Story()
    marketer = _actor("marketer", users_domain)
    with tenant_context(tenant):
        sender = _sender_domain(tenant, publish_dns, story)
        if not template_services.branding_get(tenant=tenant).pk:
            template_services.branding_update(
                tenant=tenant,
                actor=marketer,
                values={
                    "sender_name": "Demo Health System",
                    "primary_color": "#0b6e4f",
                    "footer_text": "Demo Health System · synthetic data for development",
                },
            )
        _consents(tenant, story)
        segment = Segment.objects.filter(tenant=tenant, name=SEGMENT_NAME).first() or segment_create(
            tenant=tenant, actor=marketer, name=SEGMENT_NAME, definition={"all": []}
        )
        campaign_template = _template(tenant, marketer, CAMPAIGN_TEMPLATE, Template.Kind.MARKETING)
        _template(tenant, marketer, TRANSACTIONAL_TEMPLATE, Template.Kind.TRANSACTIONAL)
        if not Campaign.objects.filter(tenant=tenant, name=CAMPAIGN_NAME).exists():
            _campaign(tenant, users_domain, sender, segment, campaign_template, name=CAMPAIGN_NAME)
            story.notes.append(f"campaign “{CAMPAIGN_NAME}” approved and ready to send")
        if not Campaign.objects.filter(tenant=tenant, name=PHI_CAMPAIGN_NAME).exists():
            phi_segment = Segment.objects.filter(tenant=tenant, name=PHI_SEGMENT_NAME).first()
            phi_segment = phi_segment or segment_create(
                tenant=tenant, actor=marketer, name=PHI_SEGMENT_NAME, definition=PHI_SEGMENT_DEFINITION
            )
            phi_template = _template(tenant, marketer, PHI_CAMPAIGN_TEMPLATE, Template.Kind.MARKETING)
            _campaign(tenant, users_domain, sender, phi_segment, phi_template, name=PHI_CAMPAIGN_NAME)
            story.notes.append(f"campaign “{PHI_CAMPAIGN_NAME}” approved: it shows the HIPAA exclusions")
        if not ApiKey.objects.filter(tenant=tenant, name=API_KEY_NAME).exists():
            issued = api_key_create(
                actor=_actor("tenant_admin", users_domain),
                tenant=tenant,
                name=API_KEY_NAME,
                scopes=["messages:send", "messages:read"],
            )
            story.api_key = issued.plaintext
    return story


def _sender_domain(tenant: Tenant, publish_dns: bool, story: Story) -> SenderDomain:
    system = Actor.system("seed_demo")
    sender = SenderDomain.objects.filter(tenant=tenant, domain=SENDER_DOMAIN).first()
    if sender is None:
        sender = sender_domain_add(tenant=tenant, actor=system, domain=SENDER_DOMAIN)
    if not publish_dns:
        if sender.status != SenderDomain.Status.VERIFIED:
            story.notes.append(f"sender domain {SENDER_DOMAIN} is not verified: publish its records")
        return sender
    dns_publish(sender)
    checks = sender_domain_check(tenant=tenant, actor=system, sender_domain=sender, resolver=get_resolver())
    sender.refresh_from_db()
    failed = [f"{c.record.name}: {c.note}" for c in checks if c.record.required and not c.ok]
    story.notes.append(
        f"sender domain {SENDER_DOMAIN}: {sender.get_status_display().lower()}"
        + (f" ({'; '.join(failed)})" if failed else " through the dev DNS zone")
    )
    return sender


def dns_publish(sender: SenderDomain) -> None:
    """Publish what the sender-domain page asks for (SPF, DKIM with the tenant's own public key,
    DMARC) and an MTA-STS/TLS-RPT announcement in the zone file of the static resolver."""
    from delivery.tls.zone import ZoneFileError
    from healthmail.devmail.world import zone_publish_txt

    if settings.DELIVERY_RESOLVER != "static" or not settings.DELIVERY_DNS_ZONE_FILE:
        raise ZoneFileError("--publish-dns needs DELIVERY_RESOLVER=static and DELIVERY_DNS_ZONE_FILE.")
    records: dict[str, list[str]] = defaultdict(list)
    for record in expected_records(sender, list(DkimKey.objects.filter(sender_domain=sender))):
        records[record.name].append(record.value)
    records[f"_mta-sts.{sender.domain}"] = [f"v=STSv1; id={timezone.now():%Y%m%d}"]
    records[f"_smtp._tls.{sender.domain}"] = [f"v=TLSRPTv1; rua=mailto:tls-reports@{sender.domain}"]
    zone_publish_txt(settings.DELIVERY_DNS_ZONE_FILE, dict(records))


def _consents(tenant: Tenant, story: Story) -> None:
    """Opt-ins for two of every three patients, a marketing authorization for every other opted-in one."""
    topic = consent.topic_by_key(tenant=tenant, key=TOPIC)
    if ConsentEvent.objects.filter(tenant=tenant, topic=topic).exists():
        return
    system = Actor.system("seed_demo")
    text = AuthorizationText.objects.filter(tenant=tenant, kind=AuthorizationKind.MARKETING).first()
    if text is None:
        text = authorizations.authorization_text_create(
            tenant=tenant,
            actor=system,
            kind=AuthorizationKind.MARKETING,
            title="Vaccination news authorization",
            elements=AUTHORIZATION_ELEMENTS,
        )
    evidence = consent.Evidence(source=Source.IMPORT, actor=system)
    opted = signed = 0
    for index, contact in enumerate(Contact.objects.filter(tenant=tenant).order_by("created_at", "pk")):
        if index % 3 == 2:
            continue
        consent.consent_grant(tenant=tenant, contact=contact, topic=topic, evidence=evidence)
        opted += 1
        if opted % 2 and not Authorization.objects.filter(contact=contact).exists():
            authorizations.authorization_sign(
                tenant=tenant,
                contact=contact,
                text=text,
                signer_name="Synthetic Patient",
                signed_on=timezone.localdate(),
                intent_confirmed=True,
                by_representative=contact.is_minor,
                representative_authority="Parent (synthetic)" if contact.is_minor else "",
                evidence=consent.Evidence(source=Source.PAPER, actor=system),
                submission_key=f"seed-demo-{contact.pk}",
            )
            signed += 1
    story.notes.append(f"topic opt-ins: {opted}; HIPAA authorizations: {signed}")


def _template(tenant: Tenant, actor: Actor, name: str, kind: str) -> Template:
    found = Template.objects.filter(tenant=tenant, name=name).first()
    if found is not None:
        return found
    if kind == Template.Kind.TRANSACTIONAL:
        content = template_services.ContentInput("en", "Appointment reminder", "", REMINDER_HTML, "")
    elif name == PHI_CAMPAIGN_TEMPLATE:
        content = template_services.ContentInput(
            "en", "Blood pressure check-up", "Free every Tuesday", PHI_CAMPAIGN_HTML, PHI_CAMPAIGN_TEXT
        )
    else:
        content = template_services.ContentInput(
            "en", "Flu shots are here", "Protect yourself this winter", CAMPAIGN_HTML, CAMPAIGN_TEXT
        )
    return template_services.template_create(
        tenant=tenant, actor=actor, name=name, kind=kind, content=content
    )


def _campaign(tenant: Tenant, users_domain: str, sender, segment, template, *, name: str) -> Campaign:
    marketer = _actor("marketer", users_domain)
    topic = consent.topic_by_key(tenant=tenant, key=TOPIC)
    data = campaign_services.CampaignInput(
        name=name,
        goal=Goal.AWARENESS,
        purpose="marketing",
        sender_name="Demo Health System",
        topic_id=topic.pk,
        sender_domain_id=sender.pk,
        segment_id=segment.pk,
        template_id=template.pk,
    )
    campaign = campaign_services.campaign_create(tenant=tenant, actor=marketer, data=data)
    campaign = workflow.campaign_submit(tenant=tenant, actor=marketer, campaign=campaign)
    for local, role, kind in (
        ("compliance", Role.COMPLIANCE_OFFICER, "compliance"),
        ("clinical", Role.CLINICAL_REVIEWER, "clinical"),
    ):
        if kind in workflow.required_reviews(campaign):
            campaign = workflow.campaign_approve(
                tenant=tenant, actor=_actor(local, users_domain), role=role, campaign=campaign, kind=kind
            )
    return campaign
