"""CommunicationRequest → a transactional message; a message → Communication (status and evidence).

A CommunicationRequest names its patient (`subject`: Patient/<id> or an identifier), its HIPAA
purpose of use as a category coded in HL7 v3 ActReason (TREAT, HPAYMT, HOPERAT: treatment, payment,
operations; marketing is refused here, it goes through campaigns), a template
(`payload.contentReference`: Template/<id>) and the template's data (an extension of ours). It is
sent through the transactional messages service, so the consent gate, the BAA check, rendering,
lint and the outbox are the same as for POST /api/v1/messages. Its business identifier makes it
idempotent: a second request with the same identifier finds the first one's message.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from django.db import IntegrityError, transaction
from fhir.resources.R4B.communicationrequest import CommunicationRequest

from campaigns.transactional import MessageRefused, MessageRequest, RecipientRef, transactional_send
from delivery.models import EncryptionPolicy, Message
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from .models import CommunicationRequestRecord
from .services import (
    RequestIdentifier,
    communication_request_find,
    identifier_system_name,
    request_identifier_index,
)

ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
PURPOSES = {"TREAT": "treatment", "HPAYMT": "payment", "HOPERAT": "operations"}
PURPOSE_CODES = {purpose: code for code, purpose in PURPOSES.items()}
MARKETING_CODES = {"HMARKT", "MARKT"}
STRUCTURE = "https://healthmail.example/fhir/StructureDefinition/"
DATA_EXTENSION = f"{STRUCTURE}template-data"
EVIDENCE_EXTENSION = f"{STRUCTURE}delivery-evidence"
POLICY_EXTENSION = f"{STRUCTURE}encryption-policy"
MESSAGE_ID_SYSTEM = "urn:ietf:rfc:5322"  # the Message-ID header of the mail
EMAIL_MEDIUM = {
    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode", "code": "EMAILWRIT"}]
}

# Outbox state → Communication.status (http://hl7.org/fhir/event-status).
_STATUS: dict[str, str] = {
    Message.State.QUEUED: "preparation",
    Message.State.SENDING: "in-progress",
    Message.State.DEFERRED: "in-progress",
    Message.State.DELIVERED_TLS: "completed",
    Message.State.DELIVERED_PORTAL: "completed",
    Message.State.DELIVERED_WAIVER: "completed",
    Message.State.DELIVERED_UNVERIFIED: "completed",
    Message.State.BOUNCED: "not-done",
    Message.State.FAILED: "not-done",
    Message.State.SUPPRESSED: "not-done",
    Message.State.CANCELLED: "stopped",
    Message.State.EXPIRED: "not-done",
}


def _refuse(message: str, code: str, field: str) -> MessageRefused:
    return MessageRefused(message, code=code, extra={"errors": {field: [message]}})


def _purpose(request: CommunicationRequest) -> str:
    codes = [
        coding.code
        for category in request.category or []
        for coding in category.coding or []
        if coding.system == ACT_REASON
    ]
    if any(code in MARKETING_CODES for code in codes):
        raise _refuse(
            "Marketing is sent through campaigns, never as a CommunicationRequest.",
            "purpose_not_transactional",
            "category",
        )
    purposes = {PURPOSES[code] for code in codes if code in PURPOSES}
    if len(purposes) != 1:
        raise _refuse(
            f"Give exactly one category coded in {ACT_REASON}: TREAT, HPAYMT or HOPERAT.",
            "purpose_required",
            "category",
        )
    return purposes.pop()


def _recipient(tenant: Tenant, request: CommunicationRequest) -> RecipientRef:
    subject = request.subject
    if subject is not None and subject.reference:
        kind, _, found = subject.reference.partition("/")
        try:
            return RecipientRef(contact_id=uuid.UUID(found)) if kind == "Patient" else RecipientRef()
        except ValueError:
            pass
    elif subject is not None and subject.identifier is not None and subject.identifier.system:
        name = identifier_system_name(tenant=tenant, uri=subject.identifier.system, create=False)
        if name is not None and subject.identifier.value:
            return RecipientRef(external_system=name, external_id=subject.identifier.value)
        raise MessageRefused("No such contact.", code="contact_not_found")
    raise _refuse(
        "Name the patient: subject.reference Patient/<id>, or subject.identifier.",
        "recipient_required",
        "subject",
    )


def _template(request: CommunicationRequest) -> uuid.UUID:
    references = [
        item.contentReference.reference
        for item in request.payload or []
        if item.contentReference is not None and item.contentReference.reference
    ]
    if len(references) == 1 and references[0].startswith("Template/"):
        try:
            return uuid.UUID(references[0].removeprefix("Template/"))
        except ValueError:
            pass
    raise _refuse("Give one payload.contentReference: Template/<id>.", "content_required", "payload")


def _extension_values(request: CommunicationRequest, url: str) -> list[Any]:
    return [extension for extension in request.extension or [] if extension.url == url]


def _data(request: CommunicationRequest) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for extension in _extension_values(request, DATA_EXTENSION):
        for item in extension.extension or []:
            value = next(
                (
                    getattr(item, name)
                    for name in ("valueString", "valueInteger", "valueDecimal", "valueBoolean")
                    if getattr(item, name, None) is not None
                ),
                None,
            )
            if value is None:
                raise _refuse(
                    f"Template data “{item.url}” needs a string, integer, decimal or boolean value.",
                    "data_invalid",
                    "extension",
                )
            data[item.url] = float(value) if not isinstance(value, str | int | bool) else value
    return data


def _policy(request: CommunicationRequest) -> str:
    found = _extension_values(request, POLICY_EXTENSION)
    return found[0].valueCode if found and found[0].valueCode else EncryptionPolicy.TLS_ELSE_PORTAL


def message_request(*, tenant: Tenant, request: CommunicationRequest) -> MessageRequest:
    if request.status != "active":
        raise _refuse("Only an active CommunicationRequest is sent.", "status_not_active", "status")
    return MessageRequest(
        recipient=_recipient(tenant, request),
        purpose=_purpose(request),
        template_id=_template(request),
        data=_data(request),
        encryption_policy=_policy(request),
    )


def _identifier_index(tenant: Tenant, request: CommunicationRequest) -> RequestIdentifier | None:
    identifiers = [(i.system, i.value) for i in request.identifier or [] if i.system and i.value]
    if not identifiers:
        return None
    system, value = identifiers[0]
    return request_identifier_index(tenant, system, value)


def communication_request_accept(
    *, tenant: Tenant, actor: Actor, request: CommunicationRequest
) -> tuple[CommunicationRequestRecord, bool]:
    """(the record, created?): a new message, or the one an earlier request with the same identifier
    made. Refusals (gate, purpose, template, unknown patient) raise MessageRefused."""
    index = _identifier_index(tenant, request)
    if index is not None:
        earlier = communication_request_find(tenant=tenant, identifier=index)
        if earlier is not None:
            return earlier, False
    wanted = message_request(tenant=tenant, request=request)
    try:
        with transaction.atomic():
            [result] = transactional_send(tenant=tenant, actor=actor, requests=[wanted])
            if result.error is None:
                with tenant_context(tenant):
                    record = CommunicationRequestRecord.objects.create(
                        tenant=tenant,
                        identifier_index=index.index if index else None,
                        identifier_index_next=index.next_index if index else None,
                        message=cast(Message, result.message),  # no error: a message
                    )
    except IntegrityError:
        # A concurrent request with the same identifier won: its message stands, ours is undone.
        winner = communication_request_find(tenant=tenant, identifier=index) if index else None
        if winner is None:
            raise
        return winner, False
    if result.error is not None:
        raise result.error  # after the savepoint, so the service's audit of the refusal stays
    return record, True


def communication_request_resource(
    *, record: CommunicationRequestRecord, request: CommunicationRequest
) -> dict:
    """The accepted request as stored: what was sent, with our id."""
    resource = request.model_dump(mode="json", exclude_none=True)
    resource["id"] = str(record.id)
    return resource


def _evidence_extensions(evidence: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for key, value in sorted(evidence.items()):
        if isinstance(value, bool):
            found.append({"url": key, "valueBoolean": value})
        elif isinstance(value, int):
            found.append({"url": key, "valueInteger": value})
        elif isinstance(value, str) and value:
            found.append({"url": key, "valueString": value})
    return found


def communication_resource(*, message: Message, request_id: uuid.UUID | None, attempts: list) -> dict:
    """A Communication saying what happened to a message: status, when, and the delivery evidence
    (TLS version and cipher, MX host, portal) of the message and of each attempt."""
    resource: dict[str, Any] = {
        "resourceType": "Communication",
        "id": str(message.pk),
        "identifier": [{"system": MESSAGE_ID_SYSTEM, "value": message.message_id}],
        "status": _STATUS.get(message.state, "unknown"),
        "medium": [EMAIL_MEDIUM],
    }
    if request_id is not None:
        resource["basedOn"] = [{"reference": f"CommunicationRequest/{request_id}"}]
    if message.purpose in PURPOSE_CODES:
        resource["category"] = [{"coding": [{"system": ACT_REASON, "code": PURPOSE_CODES[message.purpose]}]}]
    if message.contact_id is not None:
        resource["subject"] = {"reference": f"Patient/{message.contact_id}"}
    if resource["status"] in ("not-done", "stopped"):
        resource["statusReason"] = {"text": message.state_reason or message.get_state_display()}
    if resource["status"] == "completed" and message.finished_at is not None:
        resource["sent"] = message.finished_at.isoformat()
    evidence = []
    if message.evidence:
        evidence.append(
            {
                "url": EVIDENCE_EXTENSION,
                "extension": _evidence_extensions(
                    {**message.evidence, "state": message.state, "path": message.path}
                ),
            }
        )
    for attempt in attempts:
        values = {**(attempt.evidence or {}), "outcome": attempt.outcome, "mx_host": attempt.mx_host or ""}
        if attempt.smtp_code:
            values["smtp_code"] = attempt.smtp_code
        evidence.append({"url": f"{EVIDENCE_EXTENSION}-attempt", "extension": _evidence_extensions(values)})
    evidence = [item for item in evidence if item["extension"]]
    if evidence:
        resource["extension"] = evidence
    return resource
