"""Consent test helpers: synthetic contacts, a complete authorization text, evidence."""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from consent import authorizations, services
from consent.evidence import recipient_actor
from consent.models import AuthorizationKind, Source
from contacts.models import Contact
from healthmail.actors import Actor
from healthmail.crypto.blind import blind_index
from healthmail.tenants.context import tenant_context
from tests.factories import ContactFactory

COMPLETE_ELEMENTS = {
    "phi_description": "Your name, email address and the services you used in the last two years.",
    "disclosers": "Synthetic Clinic and its marketing staff.",
    "recipients": "Synthetic Clinic's email service provider, under a business associate agreement.",
    "purpose": "To send you news about services that may interest you.",
    "expiration": "One year after you sign.",
    "expiry_days": 365,
    "revocation_rights": "You may revoke this at any time from the preference center or by writing to us.",
    "conditioning_statement": "Your treatment, payment, enrollment or eligibility do not depend on signing.",
    "redisclosure_statement": "Information shared may be shared again by the recipient and lose protection.",
}
MEDIA_ELEMENTS = {
    "media_use": "Your photo and a short quote in our newsletter.",
    "media_distribution": "Our website and printed newsletter.",
    "media_duration": "Two years.",
}


def staff_actor() -> Actor:
    return Actor.system("tests")


def evidence(source: str = Source.WEB_FORM, **kwargs) -> services.Evidence:
    return services.Evidence(source=source, actor=kwargs.pop("actor", staff_actor()), **kwargs)


def new_contact(
    tenant, *, email: str | None = None, state: str = "", is_minor: bool = False, direct: bool = False
) -> Contact:
    email = email or f"patient-{uuid.uuid4().hex[:10]}@example.org"
    if not (state or is_minor or direct):
        return ContactFactory(tenant=tenant, email=email, first_name=None, last_name=None)
    # Written directly: the contacts service derives state and is_minor from the address and birth
    # date (and refuses a state code such as "ZZ"), and refuses any intake in a tenant without a BAA;
    # these tests need exactly such rows.
    with tenant_context(tenant):
        return Contact.objects.create(
            tenant=tenant,
            email=email,
            email_index=blind_index(tenant, "email", email),
            state=state,
            is_minor=is_minor,
        )


def new_text(tenant, kind: str = AuthorizationKind.MARKETING, **overrides):
    elements = {
        **COMPLETE_ELEMENTS,
        **(MEDIA_ELEMENTS if kind == AuthorizationKind.MEDIA else {}),
        **overrides,
    }
    return authorizations.authorization_text_create(
        tenant=tenant, actor=staff_actor(), kind=kind, title="Marketing authorization", elements=elements
    )


def sign(tenant, contact, text, **overrides):
    values = {
        "signer_name": "Pat Example",
        "signed_on": timezone.localdate(),
        "intent_confirmed": True,
        "by_representative": False,
        "representative_authority": "",
        "evidence": evidence(actor=recipient_actor(contact), ip_address="192.0.2.10", user_agent="pytest"),
        "submission_key": uuid.uuid4().hex,
        **overrides,
    }
    return authorizations.authorization_sign(tenant=tenant, contact=contact, text=text, **values)


@pytest.fixture
def contact(tenant_a):
    return new_contact(tenant_a)


@pytest.fixture
def topics(tenant_a):
    return services.topics_ensure_system(tenant=tenant_a)


@pytest.fixture
def text(tenant_a):
    return new_text(tenant_a)
