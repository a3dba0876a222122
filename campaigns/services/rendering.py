"""Campaign messages are rendered when the delivery worker sends them (`register_renderer`), from
the approved, frozen template version and the contact's data at that moment — so a correction to a
contact or a revoked consent reaches queued mail, and no message body sits in the outbox for days.

The worker serves no person: contact fields are decrypted as the system, and only the fields the
version uses (minimum necessary).
"""

from __future__ import annotations

from consent.links import preferences_url, unsubscribe_url
from contacts.models import Contact
from delivery.models import Message
from delivery.outbox import RenderedContent
from delivery.tracking.services import tracking_allowed, tracking_rewrite
from healthmail.errors import ApplicationError
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from ..models import Campaign, CampaignVariant, TemplateVersion
from ..templating import fields as merge_fields
from ..templating import render
from ..templating.sandbox import RenderError
from . import templates as template_services


class CampaignRenderError(ApplicationError):
    title = "Campaign message not renderable"


def _version_and_subject(campaign: Campaign, variant_key: str) -> tuple[TemplateVersion, str]:
    if campaign.ab_enabled and variant_key:
        variant = (
            CampaignVariant.objects.for_tenant(campaign.tenant_id)
            .select_related("template_version")
            .filter(campaign=campaign, key=variant_key)
            .first()
        )
        if variant is None:
            raise CampaignRenderError(f"The campaign has no variant {variant_key}.")
        if variant.template_version is not None:
            return variant.template_version, ""
        if campaign.template_version is None:
            raise CampaignRenderError("The campaign has no approved template version.")
        return campaign.template_version, variant.subject
    if campaign.template_version is None:
        raise CampaignRenderError("The campaign has no approved template version.")
    return campaign.template_version, ""


def render_campaign_message(message: Message) -> RenderedContent:
    with tenant_context(message.tenant_id):
        campaign = (
            Campaign.objects.select_related("topic", "template_version")
            .filter(pk=message.source_id, tenant_id=message.tenant_id)
            .first()
        )
        if campaign is None:
            raise CampaignRenderError("The campaign of this message no longer exists.")
        contact = (
            Contact.objects.filter(pk=message.contact_id, tenant_id=message.tenant_id).first()
            if message.contact_id is not None
            else None
        )
        if contact is None or contact.deleted_at is not None:
            raise CampaignRenderError("The contact of this message was deleted.")
        version, subject_override = _version_and_subject(campaign, message.variant)
        return render_version_message(
            message=message,
            contact=contact,
            version=version,
            purpose=campaign.purpose,
            topic=campaign.topic,
            sender_name=campaign.sender_name,
            from_local_part=campaign.from_local_part,
            track_engagement=campaign.track_engagement,
            subject_override=subject_override,
        )


def render_version_message(
    *,
    message: Message,
    contact: Contact,
    version: TemplateVersion,
    purpose: str,
    topic,
    sender_name: str,
    from_local_part: str,
    track_engagement: bool,
    subject_override: str = "",
) -> RenderedContent:
    """One message from a frozen template version and the contact's data now: the render path every
    source of marketing-style mail (campaigns, journeys) shares, footer and tracking included."""
    with tenant_context(message.tenant_id):
        tenant = Tenant.objects.get(pk=message.tenant_id)
        contents = template_services.version_contents(version)
        language = render.choose_language(list(contents), contact.language, version.default_language)
        used = set(version.fields) | _subject_fields(subject_override, tenant)
        values = merge_fields.contact_values(contact, used)
        values["organization.name"] = tenant.name
        values["links.unsubscribe"] = unsubscribe_url(contact=contact, topic=topic)
        values["links.preferences"] = preferences_url(contact=contact)
        branding = template_services.branding_get(tenant=tenant)
        footer = template_services.footer_for(
            tenant=tenant, contact=contact, purpose=purpose, topic=topic, sender_name=sender_name
        )
        try:
            rendered = render.render_parts(
                contents[language],
                context=merge_fields.nest(values),
                blocks=version.blocks,
                branding=template_services.render_branding(branding),
                footer=footer,
                subject_override=subject_override,
                language=language,
            )
        except RenderError as error:
            raise CampaignRenderError(str(error)) from None
        html = tracking_rewrite(
            rendered.html,
            message,
            enabled=tracking_allowed(contact=contact, campaign_tracking=track_engagement),
        )
    return RenderedContent(
        subject=rendered.subject,
        html=html,
        text=rendered.text,
        preheader=rendered.preheader,
        from_name=sender_name,
        from_local_part=from_local_part,
    )


def _subject_fields(subject: str, tenant: Tenant) -> set[str]:
    if not subject:
        return set()
    from ..templating.sandbox import analyze

    return analyze(subject, field_set=merge_fields.field_set(tenant=tenant)).fields
