"""Factories for synthetic tenants, staff and patients. Tenant-owned rows are created inside their
tenant's context, the way the application creates them (row-level security checks every insert);
contacts go through the contacts service itself (sealed under their own key, indexed, audited)."""

from __future__ import annotations

import datetime
import uuid

import factory
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from contacts.models import Contact
from contacts.services import ContactInput, contact_upsert
from healthmail.accounts.models import Membership, User
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import BusinessAssociateAgreement, Service, Tenant

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


def confirmed_totp(user: User) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)


def totp_code(device: TOTPDevice, *, step_offset: int = 0) -> str:
    """The code an authenticator app would show now (or `step_offset` 30-second steps later)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = totp.time + step_offset * device.step
    return f"{totp.token():0{device.digits}d}"
