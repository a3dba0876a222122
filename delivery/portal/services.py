"""Secure portal: store a message for the recipient, send a PHI-free notice, verify the reader, open.

    notice = portal_deliver(message, content)   # the engine sends `notice` instead of `content`

The notice link carries an unguessable token (only its SHA-256 is stored) and reveals nothing: the
page asks for a one-time code sent to the message's address (or a passphrase the recipient
registered) before anything about the message is shown. Every open is audited under the recipient
actor `Actor("recipient", <portal message id>)`.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape, linebreaks

from audit import services as audit
from audit.phi import phi_access
from healthmail.accounts.models import Membership, User
from healthmail.accounts.roles import PERMISSIONS
from healthmail.actors import Actor
from healthmail.crypto.errors import DecryptionError
from healthmail.crypto.objects import content_open, content_seal, object_key_create
from healthmail.errors import ApplicationError, NotFound
from healthmail.sysmail.services import system_mail_queue
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Service, Tenant
from healthmail.tenants.services import require_phi_flow

from ..models import Message, PortalLink, PortalMessage, PortalReply
from ..outbox import RenderedContent


def _setting(name: str, default):
    return getattr(settings, name, default)


EXPIRY = datetime.timedelta(days=30)
CODE_TTL = datetime.timedelta(minutes=10)
CODE_MAX_ATTEMPTS = 5
VERIFIED_SESSION_SECONDS = 15 * 60
THROTTLE_WINDOW_SECONDS = 3600  # the counters in healthmail.one_time_codes use the same window
MAX_REPLY_CHARS = 10_000
MIN_PASSPHRASE_CHARS = 12


class PortalLinkInvalid(ApplicationError):
    status_code = 404
    title = "Link not valid"


class PortalGone(ApplicationError):
    status_code = 410
    title = "Message no longer available"


class PortalThrottled(ApplicationError):
    status_code = 429
    title = "Too many attempts"


class PortalVerificationFailed(ApplicationError):
    status_code = 400
    title = "Code not accepted"


@dataclass(frozen=True)
class PortalNotice:
    """What the engine sends instead of the content: no PHI, not even in the subject."""

    subject: str
    html: str
    text: str
    portal_url: str


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class PortalContent:
    subject: str
    html: str
    text: str
    attachments: tuple[Attachment, ...] = field(default_factory=tuple)


def recipient(portal_message: PortalMessage) -> Actor:
    return Actor("recipient", str(portal_message.pk))


def _content_aad(portal_message_id: uuid.UUID) -> bytes:
    return f"portal-content|{portal_message_id}".encode()


def _reply_aad(reply_id: uuid.UUID) -> bytes:
    return f"portal-reply|{reply_id}".encode()


def reply_text_read(*, tenant_id: uuid.UUID, reply_id: uuid.UUID, key_id: uuid.UUID, body: bytes) -> str:
    """A reply's text from its sealed body (live, or kept in the archive with its id and key)."""
    return content_open(key_id, tenant_id, body, aad=_reply_aad(reply_id)).decode()


# --- tokens ----------------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _token_new(tenant_id: uuid.UUID) -> str:
    # The tenant id travels inside the token because the lookup must run under row-level security
    # in that tenant; it is no secret (the page is branded anyway). The 32 random bytes are.
    raw = uuid.UUID(str(tenant_id)).bytes + secrets.token_bytes(32)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def portal_token_tenant(token: str) -> uuid.UUID:
    """The tenant named by a portal token, or PortalLinkInvalid for anything malformed."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(token) > 100 or len(raw) != 48:
        raise PortalLinkInvalid(_LINK_INVALID, code="portal_link_invalid")
    return uuid.UUID(bytes=raw[:16])


_LINK_INVALID = "This link is not valid. Please use the link exactly as you received it."


def portal_url(token: str) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("portal:landing", args=[token])


# --- storing a message and its notice ---------------------------------------------------------------


def _seal_content(portal_message: PortalMessage, content: PortalContent) -> None:
    document = {
        "subject": content.subject,
        "html": content.html,
        "text": content.text,
        "attachments": [
            {
                "filename": a.filename,
                "content_type": a.content_type,
                "data": base64.b64encode(a.data).decode(),
            }
            for a in content.attachments
        ],
    }
    key = object_key_create(tenant=portal_message.tenant_id)
    portal_message.content_key = key
    portal_message.content = content_seal(
        key, json.dumps(document).encode(), aad=_content_aad(portal_message.pk)
    )


def _document(subject: str, body: str) -> str:
    """A whole HTML message: its language and direction stated (the notice's text is English), a title,
    so screen readers read it right (WCAG 3.1.1); checked by the compliance lint's mail checks."""
    return (
        '<!doctype html><html lang="en" dir="ltr"><head><meta charset="utf-8">'
        f"<title>{escape(subject)}</title></head><body>{body}</body></html>"
    )


def _notice(tenant: Tenant, url: str, expires_at: datetime.datetime) -> PortalNotice:
    until = timezone.localtime(expires_at).strftime("%B %d, %Y").replace(" 0", " ")
    subject = f"You have a secure message from {tenant.name}"
    text = (
        f"{tenant.name} sent you a secure message.\n\n"
        f"For your privacy it is not included in this email. To read it, open:\n{url}\n\n"
        "We will send a one-time code to this email address to confirm it is you.\n"
        f"The message is available until {until}.\n\n{tenant.postal_address}\n"
    )
    html = _document(
        subject,
        f"<p>{escape(tenant.name)} sent you a secure message.</p>"
        "<p>For your privacy it is not included in this email.</p>"
        f'<p><a href="{escape(url)}">Read your secure message</a></p>'
        "<p>We will send a one-time code to this email address to confirm it is you. "
        f"The message is available until {escape(until)}.</p>"
        f"{linebreaks(tenant.postal_address)}",
    )
    return PortalNotice(subject=subject, html=html, text=text, portal_url=url)


def portal_notice_commercial(
    notice: PortalNotice,
    *,
    tenant: Tenant,
    subject: str,
    sender_identity: str,
    unsubscribe_url: str,
    preferences_url: str,
) -> PortalNotice:
    """The notice for a newsletter, research invitation or appeal held for the portal: it says what it
    is, under the message's own subject (template lint keeps PHI out of every subject), and carries
    the same visible opt-out and postal address as the message itself (CAN-SPAM, 15 U.S.C.
    7704(a)(2), (3) and (5)): a "secure message" title on a newsletter would mislead."""
    url = notice.portal_url
    text = (
        f"{sender_identity} sent you “{subject}”.\n\n"
        "Your email provider did not offer a verified encrypted connection, so it waits for you on our "
        f"secure page:\n{url}\n\n"
        "We will send a one-time code to this email address to confirm it is you.\n\n"
        f"--\n{sender_identity}\n{tenant.postal_address}\n"
        f"Unsubscribe: {unsubscribe_url}\nEmail preferences: {preferences_url}\n"
    )
    html = _document(
        subject,
        f"<p>{escape(sender_identity)} sent you “{escape(subject)}”.</p>"
        "<p>Your email provider did not offer a verified encrypted connection, so it waits for you "
        "on our secure page.</p>"
        f'<p><a href="{escape(url)}">Read “{escape(subject)}” on our secure page</a></p>'
        "<p>We will send a one-time code to this email address to confirm it is you.</p>"
        f'<div style="font-size:12px;color:#555555"><strong>{escape(sender_identity)}</strong>'
        f"{linebreaks(tenant.postal_address)}"
        f'<p><a href="{escape(unsubscribe_url)}">Unsubscribe</a> · '
        f'<a href="{escape(preferences_url)}">Email preferences</a></p></div>',
    )
    return PortalNotice(subject=subject, html=html, text=text, portal_url=url)


def portal_deliver(
    message: Message, content: RenderedContent, *, attachments: tuple[Attachment, ...] = ()
) -> PortalNotice:
    """Hold `content` for the portal (a copy under a new per-object key) and return the notice to send.

    Calling it again for the same message (a retried send) keeps the stored copy and issues a new
    link; earlier links keep working."""
    tenant = Tenant.objects.get(pk=message.tenant_id)
    require_phi_flow(tenant, Service.SECURE_PORTAL)
    token = _token_new(tenant.pk)
    with tenant_context(tenant), transaction.atomic():
        portal_message = (
            PortalMessage.objects.select_for_update().filter(tenant=tenant, message_id=message.pk).first()
        )
        if portal_message is None:
            portal_message = PortalMessage(
                tenant=tenant,
                message_id=message.pk,
                expires_at=timezone.now() + _setting("PORTAL_EXPIRY", EXPIRY),
            )
            _seal_content(
                portal_message,
                PortalContent(content.subject, content.html, content.text, tuple(attachments)),
            )
            portal_message.save()
            audit.record(
                actor=Actor.system("delivery.portal"),
                action="portal.store",
                target=portal_message,
                tenant=tenant,
                details={"message": str(message.pk), "attachments": len(attachments)},
            )
        PortalLink.objects.create(tenant=tenant, portal_message=portal_message, token_hash=_token_hash(token))
    return _notice(tenant, portal_url(token), portal_message.expires_at)


# --- resolving a link --------------------------------------------------------------------------------


def portal_message_by_token(*, tenant_id: uuid.UUID, token: str) -> PortalMessage:
    """Inside the tenant's context: the portal message of a link, or PortalLinkInvalid."""
    link = (
        PortalLink.objects.filter(tenant_id=tenant_id, token_hash=_token_hash(token))
        .select_related("portal_message")
        .first()
    )
    if link is None:
        raise PortalLinkInvalid(_LINK_INVALID, code="portal_link_unknown")
    return link.portal_message


def portal_available(portal_message: PortalMessage) -> None:
    """Raise PortalGone for a recalled, expired or destroyed message."""
    if portal_message.recalled_at is not None:
        raise PortalGone(
            "The sender withdrew this message. Please contact them if you need it.", code="portal_recalled"
        )
    if portal_message.expires_at <= timezone.now() or portal_message.content_key_id is None:
        raise PortalGone(
            "This secure message has expired. Please contact the sender if you still need it.",
            code="portal_expired",
        )


# --- reading, replying ------------------------------------------------------------------------------


def portal_content_read(portal_message: PortalMessage) -> PortalContent:
    """The sealed content of a portal row (live, or rebuilt from the archive with its id and key)."""
    key_id, sealed = portal_message.content_key_id, portal_message.content
    if key_id is None or sealed is None:  # destroyed under retention (portal_available refuses it first)
        raise DecryptionError("The content key was destroyed; the content is unrecoverable.")
    blob = content_open(
        key_id,
        portal_message.tenant_id,
        bytes(sealed),
        aad=_content_aad(portal_message.pk),
    )
    document = json.loads(blob)
    attachments = tuple(
        Attachment(a["filename"], a["content_type"], base64.b64decode(a["data"]))
        for a in document.get("attachments", [])
    )
    return PortalContent(document["subject"], document["html"], document["text"], attachments)


@transaction.atomic
def portal_open(
    *, portal_message: PortalMessage, purpose: str = "portal open", count_read: bool = True
) -> PortalContent:
    """Decrypt for the verified recipient: an audited PHI read, and (for a page view) the read receipt."""
    portal_available(portal_message)
    tenant = Tenant.objects.get(pk=portal_message.tenant_id)
    with phi_access(
        actor=recipient(portal_message),
        tenant=tenant,
        objects=[portal_message],
        fields=["content"],
        purpose=purpose,
        contact_ids=Message.objects.filter(pk=portal_message.message_id).values_list("contact_id", flat=True),
    ):
        content = portal_content_read(portal_message)
    if not count_read:
        return content
    now = timezone.now()
    first_read = PortalMessage.objects.filter(pk=portal_message.pk, first_read_at__isnull=True).update(
        first_read_at=now
    )
    PortalMessage.objects.filter(pk=portal_message.pk).update(
        last_read_at=now, read_count=F("read_count") + 1
    )
    portal_message.refresh_from_db(fields=["first_read_at", "last_read_at", "read_count"])
    if first_read:  # the read receipt, for the tenant's systems
        from ..webhooks.services import webhooks_notify

        webhooks_notify(Message.objects.get(pk=portal_message.message_id), "message.portal_read")
    audit.record(
        actor=recipient(portal_message),
        action="portal.open",
        target=portal_message,
        tenant=tenant,
        details={"read_count": portal_message.read_count},
    )
    return content


@transaction.atomic
def portal_reply(*, portal_message: PortalMessage, body: str) -> PortalReply:
    """A secure reply to the sender, sealed under its own key; staff read it in the portal inbox."""
    portal_available(portal_message)
    body = body.strip()
    if not body:
        raise ApplicationError("Write a reply before sending.", code="reply_empty")
    if len(body) > MAX_REPLY_CHARS:
        raise ApplicationError(f"A reply can be at most {MAX_REPLY_CHARS} characters.", code="reply_long")
    reply = PortalReply(tenant_id=portal_message.tenant_id, portal_message=portal_message)
    key = object_key_create(tenant=portal_message.tenant_id)
    reply.content_key = key
    reply.body = content_seal(key, body.encode(), aad=_reply_aad(reply.pk))
    reply.save()
    audit.record(
        actor=recipient(portal_message),
        action="portal.reply",
        target=reply,
        tenant=portal_message.tenant_id,
        details={"portal_message": str(portal_message.pk)},
    )
    _reply_notify(portal_message, reply)
    return reply


REPLY_MAIL_TOPIC = "delivery.portal_reply"
REPLY_READ_PERMISSION = "contacts.view_phi"  # the staff portal pages' permission: replies are PHI


def portal_reply_readers(tenant_id: uuid.UUID) -> list:
    """The active staff of the tenant whose role may open the portal's staff pages."""
    roles = PERMISSIONS.get(REPLY_READ_PERMISSION, frozenset())
    members = Membership.objects.filter(tenant_id=tenant_id, role__in=roles, is_active=True)
    return list(User.objects.filter(is_active=True, pk__in=members.values("user_id")).order_by("pk"))


def _reply_notify(portal_message: PortalMessage, reply: PortalReply) -> None:
    """Tell the sender, in the reply's transaction: a webhook event (ids only) and one system mail per
    staff member who may read replies. Neither carries the reply's text nor anything about the patient:
    the mail names the tenant and links to the staff page, where reading it is an audited PHI access."""
    from ..webhooks.services import webhooks_notify

    webhooks_notify(Message.objects.get(pk=portal_message.message_id), "message.portal_reply")
    tenant = Tenant.objects.get(pk=portal_message.tenant_id)
    link = settings.PUBLIC_BASE_URL.rstrip("/") + reverse("portal_staff:detail", args=[portal_message.pk])
    system_mail_queue(
        tenant=tenant,
        topic=REPLY_MAIL_TOPIC,
        subject=f"HealthMail: a secure reply arrived for {tenant.name}",
        body=(
            "A recipient replied to a secure portal message. For privacy the reply is not included "
            f"in this email.\n\nRead it (you will need to sign in):\n{link}\n"
        ),
        users=portal_reply_readers(tenant.pk),
        source_ids=[reply.pk],
    )


# --- staff side -------------------------------------------------------------------------------------


def portal_message_get(*, tenant: Tenant, portal_message_id: uuid.UUID) -> PortalMessage:
    found = PortalMessage.objects.for_tenant(tenant).filter(pk=portal_message_id).first()
    if found is None:
        raise NotFound("No such portal message.", code="portal_message_not_found")
    return found


@transaction.atomic
def portal_recall(
    *, tenant: Tenant, actor: Actor, portal_message: PortalMessage, reason: str
) -> PortalMessage:
    """The sender withdraws the message: the link shows a 'withdrawn' page from now on."""
    if portal_message.recalled_at is None:
        portal_message.recalled_at = timezone.now()
        portal_message.recalled_by = actor.reference
        portal_message.save(update_fields=["recalled_at", "recalled_by"])
        audit.record(
            actor=actor, action="portal.recall", target=portal_message, tenant=tenant, reason=reason[:200]
        )
    return portal_message


def portal_replies_unread(*, tenant: Tenant) -> int:
    """Replies no staff member has opened yet (a count: no PHI)."""
    return PortalReply.objects.for_tenant(tenant).filter(staff_read_at__isnull=True).count()


def portal_replies_read(
    *, tenant: Tenant, actor: Actor, portal_message: PortalMessage
) -> list[tuple[PortalReply, str]]:
    """Replies with their text, for staff allowed to read PHI (one audited access)."""
    replies = list(PortalReply.objects.for_tenant(tenant).filter(portal_message=portal_message))
    if not replies:
        return []
    contact_ids = Message.objects.filter(pk=portal_message.message_id).values_list("contact_id", flat=True)
    with phi_access(
        actor=actor,
        tenant=tenant,
        objects=replies,
        fields=["body"],
        purpose="portal reply",
        contact_ids=contact_ids,
    ):
        out = []
        for reply in replies:
            if reply.content_key_id is None:
                out.append((reply, ""))
                continue
            text = reply_text_read(
                tenant_id=reply.tenant_id,
                reply_id=reply.pk,
                key_id=reply.content_key_id,
                body=bytes(reply.body),
            )
            out.append((reply, text))
    PortalReply.objects.filter(pk__in=[r.pk for r in replies], staff_read_at__isnull=True).update(
        staff_read_at=timezone.now()
    )
    return out
