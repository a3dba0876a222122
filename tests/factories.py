"""Factories for synthetic tenants, staff, patients, consent, templates and campaigns. Tenant-owned
rows are created inside their tenant's context, the way the application creates them (row-level
security checks every insert); contacts, consent changes, templates and campaigns go through the
product's own services (sealed, indexed, linted, audited), never around them."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from typing import Any

import factory
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from campaigns.models import Campaign, Goal, Template
from campaigns.services import campaigns as campaign_services
from campaigns.services import templates as template_services
from consent import services as consent_services
from consent.evidence import Evidence
from consent.models import ConsentEvent, Source, Topic
from contacts.models import Contact
from contacts.services import MAX_BATCH, ContactInput, contact_upsert, contact_upsert_many
from healthmail.accounts.models import Membership, User
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import BusinessAssociateAgreement, Service, Tenant
from segmentation.models import Segment
from segmentation.services import segment_create

PASSWORD = "correct horse battery staple"


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    name = factory.Sequence(lambda n: f"Synthetic Clinic {n}")
    slug = factory.Sequence(lambda n: f"clinic-{n}")
    postal_address = "100 Example Street, Springfield, ST 00000"


class TenantOwnedFactory(factory.django.DjangoModelFactory):
    class Meta:
        abstract = True

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        with tenant_context(kwargs["tenant"]):
            return super()._create(model_class, *args, **kwargs)


class BaaFactory(TenantOwnedFactory):
    class Meta:
        model = BusinessAssociateAgreement

    tenant = factory.SubFactory(TenantFactory)
    counterparty = factory.LazyAttribute(lambda o: o.tenant.name)
    signed_on = factory.LazyFunction(lambda: timezone.localdate() - datetime.timedelta(days=30))
    effective_on = factory.LazyFunction(lambda: timezone.localdate() - datetime.timedelta(days=30))
    expires_on = factory.LazyFunction(lambda: timezone.localdate() + datetime.timedelta(days=335))
    signatory_name = "Synthetic Signatory"
    document_sha256 = "a" * 64
    services = factory.LazyFunction(lambda: list(Service.values))


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"person{n}@staff.example.org")
    username = factory.LazyAttribute(lambda o: o.email)
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def saved(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class MembershipFactory(TenantOwnedFactory):
    class Meta:
        model = Membership

    tenant = factory.SubFactory(TenantFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.MARKETER


class ContactFactory(factory.Factory):
    """`ContactFactory(tenant=t, **fields)`: a patient stored by `contact_upsert`, as the API, the
    import and the pages store one. Fields are those of `ContactInput`; the tenant is required."""

    class Meta:
        model = ContactInput

    email = factory.Sequence(lambda n: f"patient{n}.{uuid.uuid4().hex[:6]}@example.org")
    first_name = "Synthetic"
    last_name = "Patient"

    @classmethod
    def _create(cls, model_class, *args, tenant: Tenant, actor: Actor | None = None, **fields) -> Contact:
        data = model_class(*args, **fields)
        result = contact_upsert(tenant=tenant, actor=actor or Actor.system("tests"), data=data, source="test")
        if result.contact_id is None:
            raise ValueError(f"the contacts service refused the factory's contact: {result.messages}")
        with tenant_context(tenant):
            return Contact.objects.get(pk=result.contact_id)

    @classmethod
    def create_many(
        cls, *, tenant: Tenant, inputs: Sequence[ContactInput], actor: Actor | None = None
    ) -> list[Contact]:
        """Hundreds of patients stored as the importer stores them (`contact_upsert_many`, one batch
        per MAX_BATCH rows), returned in the order of `inputs`."""
        actor = actor or Actor.system("tests")
        ids = []
        for start in range(0, len(inputs), MAX_BATCH):
            batch = inputs[start : start + MAX_BATCH]
            for result in contact_upsert_many(tenant=tenant, actor=actor, inputs=batch, source="test"):
                if result.contact_id is None:
                    raise ValueError(f"the contacts service refused a contact: {result.messages}")
                ids.append(result.contact_id)
        with tenant_context(tenant):
            stored = Contact.objects.in_bulk(ids)
        return [stored[pk] for pk in ids]


class ConsentFactory(factory.Factory):
    """`ConsentFactory(tenant=t, contact=c, topic_key="research", source=Source.IMPORT)`: a consent
    change recorded by `consent_record` with its evidence (a grant unless `kind` says otherwise).
    `topic=` takes a Topic instead of a system topic's key. Returns the ConsentEvent."""

    class Meta:
        model = Evidence

    source = Source.WEB_FORM
    actor = factory.LazyFunction(lambda: Actor.system("tests"))

    @classmethod
    def _create(
        cls,
        model_class,
        *args,
        tenant: Tenant,
        contact: Contact,
        topic: Topic | None = None,
        topic_key: str = "marketing_newsletters",
        kind: str = ConsentEvent.Kind.GRANTED,
        **fields,
    ) -> ConsentEvent:
        topic = topic or consent_services.topic_by_key(tenant=tenant, key=topic_key)
        evidence = model_class(*args, **fields)
        return consent_services.consent_record(
            tenant=tenant, contact=contact, topic=topic, kind=kind, evidence=evidence
        )


TEMPLATE_HTML = (
    "<h1>Flu shots are here</h1>"
    "<p>Hello {{ contact.first_name }}, protect yourself this winter.</p>"
    '<p><a class="button" href="https://clinic.example.org/book">Book a visit</a></p>'
    '<img src="https://clinic.example.org/logo.png" alt="Clinic logo">'
)


def marketer_actor(tenant: Tenant) -> Actor:
    """Templates and campaigns need a person answerable for the content, not a system actor."""
    return Actor.for_user(MembershipFactory(tenant=tenant, role=Role.MARKETER).user)


class TemplateFactory(factory.Factory):
    """`TemplateFactory(tenant=t, actor=a, name=..., subject=..., html=..., text=..., kind=...)`: a
    template stored (and linted) by `template_create`. Without `actor`, a new marketer of the tenant."""

    class Meta:
        model = template_services.ContentInput

    language = "en"
    subject = "Flu shots are here"
    preheader = "Protect yourself this winter"
    html = TEMPLATE_HTML
    text = "Flu shots are here. Book: https://clinic.example.org/book"

    @classmethod
    def _create(
        cls,
        model_class,
        *args,
        tenant: Tenant,
        actor: Actor | None = None,
        name: str = "Flu season",
        kind: str = Template.Kind.MARKETING,
        **fields,
    ) -> Template:
        return template_services.template_create(
            tenant=tenant,
            actor=actor or marketer_actor(tenant),
            name=name,
            kind=kind,
            content=model_class(*args, **fields),
        )


def everyone_segment(tenant: Tenant, *, name: str = "Everyone", definition: dict | None = None) -> Segment:
    """A segment stored by `segment_create` (everyone unless a definition is given)."""
    return segment_create(
        tenant=tenant, actor=Actor.system("tests"), name=name, definition=definition or {"all": []}
    )


class CampaignFactory(factory.Factory):
    """`CampaignFactory(tenant=t, actor=a, template=..., segment=..., sender_domain=..., **fields)`: a
    draft campaign stored by `campaign_create`. Fields are those of `CampaignInput`; without a
    template or segment the factory makes them through their services (`template=None` or
    `segment=None` leaves one out); the topic defaults to the tenant's marketing newsletters."""

    class Meta:
        model = campaign_services.CampaignInput

    name = factory.Sequence(lambda n: f"Flu campaign {n}-{uuid.uuid4().hex[:6]}")
    goal = Goal.AWARENESS
    purpose = "marketing"
    sender_name = "Synthetic Clinic"

    _DEFAULT = object()

    @classmethod
    def _create(
        cls,
        model_class,
        *args,
        tenant: Tenant,
        actor: Actor | None = None,
        template: Any = _DEFAULT,
        segment: Any = _DEFAULT,
        sender_domain=None,
        topic_key: str = "marketing_newsletters",
        **fields,
    ) -> Campaign:
        actor = actor or marketer_actor(tenant)
        if template is cls._DEFAULT:
            template = TemplateFactory(tenant=tenant, actor=actor)
        if segment is cls._DEFAULT:
            segment = everyone_segment(tenant)
        values = {
            "topic_id": consent_services.topic_by_key(tenant=tenant, key=topic_key).pk,
            "sender_domain_id": sender_domain.pk if sender_domain else None,
            "segment_id": segment.pk if segment else None,
            "template_id": template.pk if template else None,
            **fields,
        }
        return campaign_services.campaign_create(
            tenant=tenant, actor=actor, data=model_class(*args, **values)
        )


def confirmed_totp(user: User) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)


def totp_code(device: TOTPDevice, *, step_offset: int = 0) -> str:
    """The code an authenticator app would show now (or `step_offset` 30-second steps later)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = totp.time + step_offset * device.step
    return f"{totp.token():0{device.digits}d}"
