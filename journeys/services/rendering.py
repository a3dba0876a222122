"""Journey messages are rendered by the delivery worker at send time (`register_renderer`), from the
template version frozen into the approved journey version and the contact's data at that moment,
through the campaigns' render path (sandbox, footer, unsubscribe, tracking)."""

from __future__ import annotations

import uuid

from campaigns.models import TemplateVersion
from campaigns.services.rendering import CampaignRenderError, render_version_message
from consent import services as consent
from consent.models import TRANSACTIONAL_PURPOSES
from contacts.models import Contact
from delivery.models import Message
from delivery.outbox import RenderedContent
from healthmail.errors import NotFound
from healthmail.tenants.context import tenant_context

from ..models import JourneyVersion


def render_journey_message(message: Message) -> RenderedContent:
    version_id, _, key = message.source_id.partition(":")
    with tenant_context(message.tenant_id):
        version = JourneyVersion.objects.filter(tenant_id=message.tenant_id, pk=uuid.UUID(version_id)).first()
        step = (version.definition["steps"].get(key) if version else None) or {}
        if version is None or step.get("type") != "send":
            raise CampaignRenderError("The journey step of this message no longer exists.")
        template_version = TemplateVersion.objects.get(
            tenant_id=message.tenant_id, pk=step["template_version_id"]
        )
        contact = (
            Contact.objects.filter(pk=message.contact_id, tenant_id=message.tenant_id).first()
            if message.contact_id is not None
            else None
        )
        if contact is None or contact.deleted_at is not None:
            raise CampaignRenderError("The contact of this message was deleted.")
        topic = None
        if step["purpose"] not in TRANSACTIONAL_PURPOSES:
            try:
                topic = consent.topic_by_key(tenant=version.tenant, key=step.get("topic", ""))
            except NotFound:
                raise CampaignRenderError("The journey's consent topic no longer exists.") from None
        sender_name = version.definition.get("sender_name", "")
        return render_version_message(
            message=message,
            contact=contact,
            version=template_version,
            purpose=step["purpose"],
            topic=topic,
            sender_name=sender_name,
            from_local_part="care" if step["purpose"] in TRANSACTIONAL_PURPOSES else "hello",
            track_engagement=bool(version.definition.get("track_engagement", True)),
        )
