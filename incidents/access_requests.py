"""Right of access (45 CFR 164.524): record a request, keep its clock, assemble the patient's records,
sign the package and deliver it through the secure portal.

164.524(b)(2)(i): act on a request no later than 30 days after receiving it; (ii) if that cannot be
done, the time may be extended once, by no more than 30 days, provided the individual is given, within
the first 30 days, a written statement of the reasons and the date by which the request will be met.

The package holds what the tenant keeps about the patient on this platform: the contact record, consent
events, authorizations, messages sent (with their content while it is kept) and portal messages. It is
signed with the tenant's Ed25519 key (the key of destruction certificates and the accounting of
disclosures), goes to the patient as a portal message (the email is only a notice) and the request
keeps the package's SHA-256, counts and signature, never its content."""

from __future__ import annotations

import datetime
import hashlib
import json
import uuid

from django.db import transaction
from django.utils import timezone
from django.utils.html import escape

from audit import chain
from audit import services as audit
from audit.phi import phi_access
from consent.models import Authorization, ConsentEvent
from contacts.models import Contact
from contacts.selectors import ReadScope, contact_records
from delivery.models import EncryptionPolicy, Message, PortalMessage, Stream
from delivery.outbox import OutboxRecipient, RenderedContent, message_content, message_enqueue_many
from delivery.patient_mail import PatientMailUnavailable
from delivery.sender_domains.selectors import sender_domain_verified
from healthmail.actors import Actor
from healthmail.crypto import signing
from healthmail.errors import ApplicationError, Conflict, NotFound
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from .models import AccessRequest
from .services import require_officer

RESPONSE_DAYS = 30
EXTENSION_DAYS = 30
SOURCE_TYPE = "access_package"
PURPOSE = "right of access package (164.524)"


def due_on(received_on: datetime.date, *, extended: bool) -> datetime.date:
    return received_on + datetime.timedelta(days=RESPONSE_DAYS + (EXTENSION_DAYS if extended else 0))


def extension_allowed(received_on: datetime.date, today: datetime.date, *, extended: bool) -> bool:
    """Once, and only while the first 30 days run (the statement must reach the individual in them)."""
    return not extended and today <= due_on(received_on, extended=False)


def access_request_audit(request: AccessRequest, user, action: str, **details) -> None:
    """An audit event on the request, naming its patient (every step of a request is audited)."""
    audit.record(
        actor=Actor.for_user(user),
        action=action,
        target=request,
        tenant=request.tenant_id,
        details={"access_request": str(request.pk), **details},
        contacts=[request.contact_id],
    )


@transaction.atomic
def access_request_record(
    *, tenant: Tenant, user, role: str, contact_id: uuid.UUID, received_on: datetime.date
) -> AccessRequest:
    require_officer(role)
    if received_on > timezone.localdate():
        raise ApplicationError("The date received cannot be in the future.", code="received_on")
    with tenant_context(tenant):
        if not Contact.objects.filter(tenant=tenant, pk=contact_id).exists():
            raise NotFound("No such patient in this organization.")
        request = AccessRequest.objects.create(
            tenant=tenant, contact_id=contact_id, received_on=received_on, recorded_by=user
        )
        access_request_audit(request, user, "access_request.record", received_on=received_on.isoformat())
    return request


@transaction.atomic
def access_request_extend(
    *, tenant: Tenant, user, role: str, request: AccessRequest, reason: str
) -> AccessRequest:
    require_officer(role)
    if len(reason.strip()) < 20:
        raise ApplicationError("Give the reasons for the delay (at least 20 characters).", code="reason")
    if not extension_allowed(
        request.received_on, timezone.localdate(), extended=request.extension_reason != ""
    ):
        raise Conflict("The 30 days can be extended once, and only before they run out.")
    with tenant_context(tenant):
        updated = AccessRequest.objects.filter(pk=request.pk, status=AccessRequest.Status.OPEN).update(
            status=AccessRequest.Status.EXTENDED,
            extension_reason=reason.strip(),
            extended_by=user,
            extended_at=timezone.now(),
        )
        if updated != 1:
            raise Conflict("This request was already extended or delivered.")
        request.refresh_from_db()
        access_request_audit(
            request,
            user,
            "access_request.extend",
            due_on=due_on(request.received_on, extended=True).isoformat(),
        )
    return request


def _jsonable(value):
    if isinstance(value, datetime.datetime | datetime.date | uuid.UUID):
        return value.isoformat() if not isinstance(value, uuid.UUID) else str(value)
    return str(value)


def _messages(tenant: Tenant, user, contact: Contact) -> list[dict]:
    rows = list(
        Message.objects.filter(tenant=tenant, contact_id=contact.pk)
        .exclude(source_type=SOURCE_TYPE)
        .order_by("created_at")
    )
    portal = {
        p.message_id: p
        for p in PortalMessage.objects.filter(tenant=tenant, message_id__in=[m.pk for m in rows])
    }
    found = []
    with phi_access(
        actor=Actor.for_user(user), tenant=tenant, objects=rows, fields=["content"], purpose=PURPOSE
    ):
        for message in rows:
            try:
                content = message_content(message)
                subject, text = content.subject, content.text
            except (ValueError, LookupError):
                subject, text = "", "(the content is no longer kept)"
            entry: dict[str, object] = {
                "sent_at": message.created_at.isoformat(),
                "kind": message.source_type,
                "state": message.state,
                "subject": subject,
                "text": text,
            }
            if message.pk in portal:
                held = portal[message.pk]
                entry["portal"] = {
                    "expires_at": held.expires_at.isoformat(),
                    "first_read_at": held.first_read_at.isoformat() if held.first_read_at else None,
                }
            found.append(entry)
    return found


def package_build(*, tenant: Tenant, user, request: AccessRequest) -> dict:
    """The patient's records as one JSON document (call inside the tenant context)."""
    contact = Contact.objects.get(tenant=tenant, pk=request.contact_id)
    (record,) = contact_records(
        actor=Actor.for_user(user),
        tenant=tenant,
        contacts=[contact],
        scope=ReadScope(unmasked=True, clinical=True, purpose=PURPOSE),
        detail=True,
    )
    consents = [
        {"topic": event.topic.key, "event": event.kind, "at": event.occurred_at.isoformat()}
        for event in ConsentEvent.objects.filter(tenant=tenant, contact=contact).select_related("topic")
    ]
    authorizations = [
        {
            "kind": a.kind,
            "signed_on": a.signed_on.isoformat(),
            "status": a.status,
            "expires_on": a.expires_on.isoformat() if a.expires_on else None,
            "revoked_at": a.revoked_at.isoformat() if a.revoked_at else None,
        }
        for a in Authorization.objects.filter(tenant=tenant, contact=contact).order_by("signed_at")
    ]
    return {
        "kind": "access_package",
        "rule": "45 CFR 164.524",
        "organization": tenant.name,
        "tenant_id": str(tenant.pk),
        "request_id": str(request.pk),
        "received_on": request.received_on.isoformat(),
        "contact_record": json.loads(json.dumps(record, default=_jsonable)),
        "consents": consents,
        "authorizations": authorizations,
        "messages": _messages(tenant, user, contact),
        "issued_at": timezone.now().isoformat(),
    }


def _canonical(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def package_verify(signed: dict, *, public_key: str) -> bool:
    try:
        return signing.public_key_verifies(public_key, _canonical(signed["package"]), signed["signature"])
    except (KeyError, TypeError):
        return False


@transaction.atomic
def access_request_deliver(*, tenant: Tenant, user, role: str, request: AccessRequest) -> AccessRequest:
    """Assemble, sign and send the package as a portal message; the request keeps its digest."""
    require_officer(role)
    if request.status == AccessRequest.Status.DELIVERED:
        raise Conflict("This request was already delivered.")
    if request.status == AccessRequest.Status.DENIED:
        raise Conflict("This request was denied; a review that grants access reopens it (164.524(a)(4)).")
    with tenant_context(tenant):
        sender_domain = sender_domain_verified(tenant=tenant)
        if sender_domain is None:
            raise PatientMailUnavailable(
                "The organization has no verified sender domain: the package cannot be sent yet.",
                code="sender_domain_unverified",
            )
        package = package_build(tenant=tenant, user=user, request=request)
        address = package["contact_record"].get("email") or ""
        if "@" not in address:
            raise ApplicationError(
                "The patient has no email address: deliver the package another way.", code="no_address"
            )
        signature, key_id = chain.sign(_canonical(package), tenant_id=tenant.pk)
        signed = {"package": package, "signature": signature, "key_id": key_id}
        text = (
            f"Your records held by {tenant.name}, as you asked (45 CFR 164.524).\n\n"
            "The JSON below is signed by the organization; its public key is published.\n\n"
            + json.dumps(signed, indent=1, sort_keys=True)
        )
        [message] = message_enqueue_many(
            tenant=tenant,
            stream=Stream.TRANSACTIONAL,
            source_type=SOURCE_TYPE,
            source_id=str(request.pk),
            purpose="operations",
            recipients=[OutboxRecipient(request.contact_id, address)],
            uses_phi=True,
            encryption_policy=EncryptionPolicy.PORTAL_ALWAYS,
            sender_domain=sender_domain,
            content=RenderedContent(
                subject=f"Your records from {tenant.name}", html=f"<pre>{escape(text)}</pre>", text=text
            ),
        )
        manifest = {
            "package_sha256": hashlib.sha256(_canonical(package)).hexdigest(),
            "consents": len(package["consents"]),
            "authorizations": len(package["authorizations"]),
            "messages": len(package["messages"]),
        }
        updated = (
            AccessRequest.objects.filter(pk=request.pk)
            .exclude(status=AccessRequest.Status.DELIVERED)
            .update(
                status=AccessRequest.Status.DELIVERED,
                delivered_by=user,
                delivered_at=timezone.now(),
                message_id=message.pk,
                manifest=manifest,
                signature=signature,
                key_id=key_id,
            )
        )
        if updated != 1:
            raise Conflict("This request was already delivered.")
        request.refresh_from_db()
        access_request_audit(request, user, "access_request.deliver", message=str(message.pk), **manifest)
    return request
