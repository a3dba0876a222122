"""Previews and test sends: a template or a frozen version rendered for a synthetic contact, never a
real person, and that preview sent to a staff member of the tenant."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from django.db import transaction

from audit import services as audit
from consent.links import preferences_url, unsubscribe_url
from contacts.models import Contact
from contacts.synthetic import synthetic_contact
from delivery.models import EncryptionPolicy, Message, SenderDomain, Stream
from delivery.outbox import OutboxRecipient, RenderedContent, message_enqueue_many
from healthmail.accounts.models import Membership
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from ..models import Template, TemplateVersion
from ..templating import fields as merge_fields
from ..templating import render
from ..templating.sandbox import RenderError, analyze
from .common import CampaignError
from .templates import (
    branding_get,
    field_set_for,
    footer_for,
    render_branding,
    template_contents,
    template_relint,
    tenant_blocks,
    version_contents,
)

TEST_SUBJECT_PREFIX = "[Test] "


def synthetic_recipient(tenant: Tenant) -> Contact:
    """An unsaved contact that only lends its id to links: previews never touch a real person."""
    return Contact(id=uuid.uuid5(uuid.NAMESPACE_URL, f"healthmail-preview:{tenant.pk}"), tenant=tenant)


def synthetic_values(field_set: merge_fields.FieldSet, names, tenant: Tenant) -> dict[str, str]:
    person = synthetic_contact(1, seed=0)
    known = {
        "contact.first_name": person.first_name,
        "contact.last_name": person.last_name,
        "contact.city": (person.postal_address or {}).get("city", ""),
        "contact.birth_date": str(person.birth_date or ""),
        "contact.provider": (person.clinical or {}).get("provider", ""),
        "contact.last_visit": (person.clinical or {}).get("last_visit", ""),
        "organization.name": tenant.name,
    }
    values = merge_fields.sample_values(field_set, set(names))
    values.update({name: value for name, value in known.items() if name in values})
    return values


@dataclass(frozen=True)
class Preview:
    language: str
    rendered: render.Rendered | None
    error: str = ""


def preview(
    *,
    tenant: Tenant,
    contents: Mapping[str, render.Parts],
    blocks: Mapping[str, str],
    kind: str,
    language: str,
    purpose: str = "marketing",
    topic=None,
    sender_name: str = "",
    subject_override: str = "",
    person_values: Callable[[set[str]], dict[str, str]] | None = None,
) -> Preview:
    """Render with a synthetic contact: no person's data is read for a preview or a test send.
    `person_values` (contact_preview.py) gives a real contact's values of the fields used instead,
    read under its own audit; links and footer stay the synthetic recipient's."""
    if not contents:
        return Preview(language, None, "The template has no content yet.")
    default = language if language in contents else next(iter(contents))
    chosen = render.choose_language(list(contents), language, default)
    field_set = field_set_for(tenant=tenant, kind=kind)
    branding = branding_get(tenant=tenant)
    recipient = synthetic_recipient(tenant)
    parts = contents[chosen]
    names: set[str] = set()
    for source in (*parts.as_dict().values(), subject_override):
        names |= analyze(source, field_set=field_set, blocks=blocks).fields
    values = synthetic_values(field_set, names, tenant)
    if person_values is not None:
        values.update(person_values(names))
    values.update({k: v for k, v in _link_values(recipient, topic).items() if k in names})
    footer = footer_for(
        tenant=tenant,
        contact=recipient,
        purpose=purpose,
        topic=topic,
        sender_name=sender_name or branding.sender_name,
    )
    try:
        rendered = render.render_parts(
            parts,
            context=merge_fields.nest(values),
            blocks=blocks,
            branding=render_branding(branding),
            footer=footer,
            subject_override=subject_override,
            language=chosen,
        )
    except RenderError as error:
        return Preview(chosen, None, str(error))
    return Preview(chosen, rendered)


def _link_values(contact: Contact, topic) -> dict[str, str]:

    return {
        "links.unsubscribe": unsubscribe_url(contact=contact, topic=topic),
        "links.preferences": preferences_url(contact=contact),
    }


def template_preview(*, tenant: Tenant, template: Template, language: str = "") -> Preview:
    return preview(
        tenant=tenant,
        contents=template_contents(template=template),
        blocks=tenant_blocks(tenant=tenant),
        kind=template.kind,
        language=language or template.default_language,
    )


def version_preview(*, tenant: Tenant, version: TemplateVersion, language: str = "") -> Preview:
    """A frozen version rendered for the synthetic contact, exactly as it would go out."""
    return preview(
        tenant=tenant,
        contents=version_contents(version),
        blocks=version.blocks,
        kind=version.kind,
        language=language or version.default_language,
    )


@transaction.atomic
def template_test_send(
    *, tenant: Tenant, actor: Actor, template: Template, address: str, language: str = ""
) -> Message:
    """Send the synthetic preview to a staff member of this tenant (an address we verified when
    they joined): transactional stream, operations purpose, no PHI merged."""
    address = (address or "").strip()
    with tenant_context(tenant):
        verified = (
            Membership.objects.for_tenant(tenant).filter(is_active=True, user__email__iexact=address).exists()
        )
    if not verified:
        raise CampaignError(
            "Test messages go only to the addresses of this organization's members.",
            code="test_address_not_verified",
        )
    result = template_relint(tenant, template)
    if any(f.code == "syntax_error" for f in result.errors):
        raise CampaignError(
            "Fix the template's syntax errors before sending a test.", code="template_has_errors"
        )
    shown = template_preview(tenant=tenant, template=template, language=language)
    if shown.rendered is None:
        raise CampaignError(shown.error, code="render_failed")
    rendered = shown.rendered
    with tenant_context(tenant):
        sender_domain = (
            SenderDomain.objects.for_tenant(tenant)
            .filter(status=SenderDomain.Status.VERIFIED)
            .order_by("domain")
            .first()
        )
    [message] = message_enqueue_many(
        tenant=tenant,
        stream=Stream.TRANSACTIONAL,
        source_type="campaign_test",
        source_id=str(template.pk),
        purpose="operations",
        recipients=[OutboxRecipient(None, address)],
        uses_phi=False,
        encryption_policy=EncryptionPolicy.TLS_ELSE_PORTAL,
        sender_domain=sender_domain,
        content=RenderedContent(
            subject=TEST_SUBJECT_PREFIX + rendered.subject,
            html=rendered.html,
            text=rendered.text,
            preheader=rendered.preheader,
        ),
    )
    audit.record(
        actor=actor,
        action="campaign.template_test_send",
        target=template,
        tenant=tenant,
        details={"message": str(message.pk), "language": shown.language},
    )
    return message
