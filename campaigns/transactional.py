"""Transactional messages from EHR/CRM systems: one message, or a batch, accepted at once.

    transactional_send(tenant=t, actor=Actor.for_api_key(k), requests=[MessageRequest(...)])

Each request names a recipient (a contact id, an external id or a bare address), a transactional
purpose (treatment, payment, operations), and either a template with data or inline content. The
content is rendered now, through the same sandbox, lint and footer as campaigns, sealed in the
outbox under the message's own key, and handed to the `transactional` stream, whose workers never
wait behind marketing. Contact fields are read inside an audited phi_access (the caller is an API
client); the answer carries ids only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, cast

from django.db import transaction

from audit import services as audit
from audit.phi import phi_access
from consent.gate import may_send_batch, may_send_to_addresses
from consent.models import TRANSACTIONAL_PURPOSES
from contacts.models import Contact, ContactExternalId
from contacts.services import external_id_indexes
from delivery.models import EncryptionPolicy, Message, SenderDomain, Stream
from delivery.outbox import OutboxRecipient, RenderedContent, message_enqueue_many
from delivery.sender_domains.selectors import sender_domain_verified
from healthmail.actors import Actor
from healthmail.crypto import blind
from healthmail.errors import ApplicationError
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from .models import Template
from .services import templates as template_services
from .templating import fields as merge_fields
from .templating import lint as linting
from .templating import render
from .templating.sandbox import RenderError

SOURCE_TYPE = "api"
MAX_BATCH = 500
MAX_DATA_KEYS = 50
MAX_DATA_VALUE = 2_000
ALLOWED_POLICIES = (
    EncryptionPolicy.TLS_ELSE_PORTAL,
    EncryptionPolicy.PORTAL_ALWAYS,
    EncryptionPolicy.TLS_ELSE_FAIL,
)
# The same, as choices: the schema names this enum apart from campaigns' (which adds opportunistic).
ALLOWED_POLICY_CHOICES = [(policy.value, policy.label) for policy in ALLOWED_POLICIES]
PURPOSE_CHOICES = ["treatment", "payment", "operations"]


class MessageRefused(ApplicationError):
    status_code = 422
    title = "Message refused"


@dataclass(frozen=True)
class RecipientRef:
    contact_id: uuid.UUID | None = None
    external_system: str = ""
    external_id: str = ""
    address: str = ""


@dataclass(frozen=True)
class MessageRequest:
    recipient: RecipientRef
    purpose: str
    template_id: uuid.UUID | None = None
    data: dict[str, Any] = field(default_factory=dict)
    content: dict[str, str] | None = None  # subject, preheader, html, text
    encryption_policy: str = EncryptionPolicy.TLS_ELSE_PORTAL
    language: str = ""
    sender_domain: str = ""


@dataclass(frozen=True)
class Accepted:
    index: int
    message: Message | None = None
    error: MessageRefused | None = None


@dataclass
class _Prepared:
    index: int
    request: MessageRequest
    contact: Contact | None
    address: str
    parts: dict[str, render.Parts]
    blocks: dict[str, str]
    default_language: str
    fields: set[str]


def _check_request(request: MessageRequest) -> None:
    if request.purpose not in TRANSACTIONAL_PURPOSES:
        raise MessageRefused(
            "Only transactional purposes (treatment, payment, operations) may be sent through this API; "
            "marketing goes through campaigns.",
            code="purpose_not_transactional",
        )
    if request.encryption_policy not in ALLOWED_POLICIES:
        raise MessageRefused(
            "Choose tls_else_portal, portal_always or tls_else_fail.", code="encryption_policy_invalid"
        )
    if (request.template_id is None) == (request.content is None):
        raise MessageRefused("Give either a template (with data) or inline content.", code="content_required")
    if len(request.data) > MAX_DATA_KEYS:
        raise MessageRefused(f"At most {MAX_DATA_KEYS} data values.", code="data_too_large")
    for key, value in request.data.items():
        if not isinstance(key, str) or not key.isidentifier() or key.startswith("_"):
            raise MessageRefused("Data keys are names like appointment_time.", code="data_invalid")
        if not isinstance(value, str | int | float | bool) or len(str(value)) > MAX_DATA_VALUE:
            raise MessageRefused(f"The data value “{key}” must be text or a number.", code="data_invalid")


def _contact(tenant: Tenant, ref: RecipientRef) -> Contact | None:
    """The recipient contact, or None for a bare address with no contact behind it."""
    if ref.contact_id is not None:
        found = Contact.objects.for_tenant(tenant).filter(pk=ref.contact_id, deleted_at__isnull=True).first()
    elif ref.external_system:
        link = (
            ContactExternalId.objects.for_tenant(tenant)
            .filter(
                system=ref.external_system,
                value_index__in=external_id_indexes(tenant, ref.external_system, ref.external_id),
            )
            .select_related("contact")
            .first()
        )
        found = link.contact if link and link.contact.deleted_at is None else None
    elif ref.address:
        indexes = blind.lookup(tenant, "email", ref.address)  # two while an index-key rotation runs
        return (
            Contact.objects.for_tenant(tenant)
            .filter(email_index__in=indexes, deleted_at__isnull=True)
            .first()
        )
    else:
        raise MessageRefused(
            "Name the recipient: contact_id, external_id or address.", code="recipient_required"
        )
    if found is None:
        raise MessageRefused("No such contact.", code="contact_not_found")
    return found


def _content(tenant: Tenant, actor: Actor, request: MessageRequest):
    """(languages, blocks, default language, template kind) of the request's content."""
    if request.content is not None:
        parts = render.Parts(
            subject=str(request.content.get("subject", "")),
            preheader=str(request.content.get("preheader", "")),
            html=str(request.content.get("html", "")),
            text=str(request.content.get("text", "")),
        )
        return (
            {"xx": parts},
            template_services.tenant_blocks(tenant=tenant),
            "xx",
            Template.Kind.TRANSACTIONAL,
        )
    template_id = cast(uuid.UUID, request.template_id)  # a template whenever no content (checked first)
    template = Template.objects.for_tenant(tenant).filter(pk=template_id, archived_at__isnull=True).first()
    if template is None:
        raise MessageRefused("No such template.", code="template_not_found")
    try:
        version = template_services.template_freeze(tenant=tenant, actor=actor, template=template)
    except ApplicationError as error:
        raise MessageRefused(error.message, code=error.code) from None
    return template_services.version_contents(version), version.blocks, version.default_language, version.kind


def _lint(tenant: Tenant, parts: dict[str, render.Parts], blocks, kind: str) -> set[str]:
    field_set = template_services.field_set_for(tenant=tenant, kind=kind)
    result = linting.lint_template(contents=parts, blocks=blocks, field_set=field_set)
    if result.errors:
        errors = result.errors
        raise MessageRefused(
            "The content fails the compliance check: "
            + "; ".join(f"{e.where}: {e.message}" for e in errors[:5]),
            code="content_invalid",
            extra={"findings": [e.as_dict() for e in errors]},
        )
    return result.fields


def _gate(tenant: Tenant, prepared: list[_Prepared], purpose: str) -> dict[int, str]:
    """{index: refusal code} of the requests the send gate refuses now."""
    refused: dict[int, str] = {}
    contact_of = {p.index: p.contact.pk for p in prepared if p.contact is not None}
    if contact_of:
        decisions = may_send_batch(
            tenant=tenant, contact_ids=list(contact_of.values()), purpose=purpose, uses_phi=True
        )
        refused.update(
            {index: decisions[pk].code for index, pk in contact_of.items() if not decisions[pk].allowed}
        )
    bare = [p for p in prepared if p.contact is None]
    if bare:
        indexes = {p.index: blind.blind_index(tenant, "email", p.address) for p in bare}
        answers = may_send_to_addresses(tenant=tenant, address_indexes=indexes.values(), purpose=purpose)
        refused.update(
            {
                i: answers[bytes(index)].code
                for i, index in indexes.items()
                if not answers[bytes(index)].allowed
            }
        )
    return refused


def _sender_domain(tenant: Tenant, name: str) -> SenderDomain:
    found = sender_domain_verified(tenant=tenant, name=name)
    if found is None:
        raise MessageRefused(
            f"“{name}” is not a verified sender domain of this organization."
            if name
            else "This organization has no verified sender domain yet.",
            code="sender_domain_unverified",
        )
    return found


def _render(
    tenant: Tenant, item: _Prepared, values: dict[str, Any], branding, purpose: str
) -> RenderedContent:
    language = render.choose_language(
        list(item.parts),
        item.request.language or (item.contact.language if item.contact else ""),
        item.default_language,
    )
    footer = render.Footer(
        sender_identity=branding.sender_name or tenant.name,
        postal_address=tenant.postal_address,
        commercial=False,
    )
    try:
        rendered = render.render_parts(
            item.parts[language],
            context=merge_fields.nest(values),
            blocks=item.blocks,
            branding=template_services.render_branding(branding),
            footer=footer,
            language=language,
        )
    except RenderError as error:
        raise MessageRefused(str(error), code="render_failed") from None
    return RenderedContent(
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        preheader=rendered.preheader,
        from_name=branding.sender_name,
    )


def _values(tenant: Tenant, item: _Prepared) -> dict[str, Any]:
    values: dict[str, Any] = {"organization.name": tenant.name}
    for name in item.fields:
        if name.startswith(merge_fields.DATA_PREFIX):
            key = name.removeprefix(merge_fields.DATA_PREFIX)
            if key not in item.request.data:
                raise MessageRefused(f"The template needs the data value “{key}”.", code="data_missing")
            values[name] = str(item.request.data[key])
        elif name.startswith("links."):
            values[name] = ""  # preference links are for commercial mail; transactional has none
    if item.contact is not None:
        values.update(merge_fields.contact_values(item.contact, item.fields))
    elif any(n.startswith(("contact.", "custom.")) for n in item.fields):
        raise MessageRefused(
            "Contact merge fields need a recipient that is a contact.", code="contact_required"
        )
    return values


def _read_fields(item: _Prepared) -> set[str]:
    columns = {f.column for f in merge_fields.CONTACT_FIELDS if f.name in item.fields}
    if any(n.startswith("custom.") for n in item.fields):
        columns.add("custom_fields")
    return columns | {"email"}


@transaction.atomic
def transactional_send(*, tenant: Tenant, actor: Actor, requests: list[MessageRequest]) -> list[Accepted]:
    """Accept what may go, refuse the rest with a reason; one outbox row per accepted request."""
    if not 1 <= len(requests) <= MAX_BATCH:
        raise MessageRefused(f"Send 1 to {MAX_BATCH} messages per request.", code="batch_size")
    results: dict[int, Accepted] = {}
    prepared: list[_Prepared] = []
    with tenant_context(tenant):
        for index, request in enumerate(requests):
            try:
                _check_request(request)
                contact = _contact(tenant, request.recipient)
                parts, blocks, default_language, kind = _content(tenant, actor, request)
                used = _lint(tenant, parts, blocks, kind)
                prepared.append(
                    _Prepared(
                        index,
                        request,
                        contact,
                        request.recipient.address,
                        parts,
                        blocks,
                        default_language,
                        used,
                    )
                )
            except MessageRefused as error:
                results[index] = Accepted(index, error=error)
        contacts = [p.contact for p in prepared if p.contact is not None]
        branding = template_services.branding_get(tenant=tenant)
        fields = sorted(set().union(*(_read_fields(p) for p in prepared))) if prepared else []
        with phi_access(
            actor=actor, tenant=tenant, objects=contacts, fields=fields, purpose="transactional message"
        ):
            _enqueue(tenant, actor, prepared, results, branding)
        accepted = [r.message for r in results.values() if r.message is not None]
        audit.record(
            actor=actor,
            action="message.api_accept",
            target=("delivery.message", str(accepted[0].pk) if len(accepted) == 1 else ""),
            tenant=tenant,
            details={
                "accepted": len(accepted),
                "refused": len(results) - len(accepted),
                "ids": [str(message.pk) for message in accepted][:100],
            },
        )
    return [results[index] for index in range(len(requests))]


def _enqueue(tenant, actor, prepared: list[_Prepared], results: dict[int, Accepted], branding) -> None:
    by_purpose: dict[str, list[_Prepared]] = {}
    for item in prepared:
        by_purpose.setdefault(item.request.purpose, []).append(item)
    for purpose, items in by_purpose.items():
        refused = _gate(tenant, items, purpose)
        for item in items:
            if item.index in refused:
                results[item.index] = Accepted(
                    item.index,
                    error=MessageRefused(
                        f"The send gate refused this message ({refused[item.index]}).",
                        code=refused[item.index],
                    ),
                )
                continue
            try:
                content = _render(tenant, item, _values(tenant, item), branding, purpose)
                address = item.contact.email if item.contact is not None else item.address
                if not address:
                    raise MessageRefused("The contact has no email address.", code="no_email_address")
                [message] = message_enqueue_many(
                    tenant=tenant,
                    stream=Stream.TRANSACTIONAL,
                    source_type=SOURCE_TYPE,
                    source_id=actor.id[:64],
                    purpose=purpose,
                    recipients=[OutboxRecipient(item.contact.pk if item.contact else None, address)],
                    uses_phi=True,
                    encryption_policy=item.request.encryption_policy,
                    sender_domain=_sender_domain(tenant, item.request.sender_domain),
                    content=content,
                )
            except MessageRefused as error:
                results[item.index] = Accepted(item.index, error=error)
            else:
                results[item.index] = Accepted(item.index, message=message)


def message_get(*, tenant: Tenant, message_id) -> Message | None:
    """A message this tenant's API sent (any source), or None: foreign and unknown look the same."""
    try:
        message_id = uuid.UUID(str(message_id))
    except ValueError:
        return None
    with tenant_context(tenant):
        return Message.objects.for_tenant(tenant).filter(pk=message_id).first()


def message_list(
    *,
    tenant: Tenant,
    state: str | None = None,
    stream: str | None = None,
    contact_id: uuid.UUID | None = None,
    created_after=None,
):
    """The tenant's messages (every source), newest first, narrowed by the filters given."""
    messages = Message.objects.for_tenant(tenant)
    if state:
        messages = messages.filter(state=state)
    if stream:
        messages = messages.filter(stream=stream)
    if contact_id is not None:
        messages = messages.filter(contact_id=contact_id)
    if created_after is not None:
        messages = messages.filter(created_at__gt=created_after)
    return messages
