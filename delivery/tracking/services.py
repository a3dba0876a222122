"""Tracking: rewrite a message's HTML at render time, record opens/clicks/conversions, aggregate.

    html = tracking_rewrite(html, message, enabled=tracking_allowed(contact=c, campaign_tracking=on))

Only URLs recorded here (TrackedUrl) can be redirected to, so /t/c/ is never an open redirect.
"""

from __future__ import annotations

import datetime
import hashlib
import html as html_lib
import re
import uuid

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from healthmail.tenants.context import tenant_context

from ..models import EngagementEvent, Message, TrackedUrl
from . import bots
from .tokens import CLICK, OPEN, TrackingToken, token_make

_ANCHOR_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
MAX_URL_LENGTH = 2000


def tracking_allowed(*, contact, campaign_tracking: bool) -> bool:
    """The default: tracking only where the campaign turned it on and the recipient has no sensitive
    category (an open of a behavioural-health mailing is itself sensitive)."""
    if not campaign_tracking:
        return False
    return not (contact is not None and list(getattr(contact, "sensitive_categories", []) or []))


def _absolute(path: str) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + path


def _trackable(url: str) -> bool:
    if not url.lower().startswith(("http://", "https://")) or len(url) > MAX_URL_LENGTH:
        return False
    # Our own patient links (unsubscribe, preferences, portal) carry signed tokens; they go direct.
    return not url.startswith(_absolute("/p/"))


def _url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


def tracked_url_ids(*, tenant_id: uuid.UUID, urls: list[str]) -> dict[str, int]:
    """Record the URLs (idempotent, race-safe) and return their ids."""
    by_hash = {_url_hash(url): url for url in urls}
    with tenant_context(tenant_id):
        found = dict(
            TrackedUrl.objects.filter(tenant_id=tenant_id, url_hash__in=list(by_hash)).values_list(
                "url_hash", "pk"
            )
        )
        missing = [
            TrackedUrl(tenant_id=tenant_id, url_hash=h, url=u) for h, u in by_hash.items() if h not in found
        ]
        if missing:
            TrackedUrl.objects.bulk_create(missing, ignore_conflicts=True)
            found = dict(
                TrackedUrl.objects.filter(tenant_id=tenant_id, url_hash__in=list(by_hash)).values_list(
                    "url_hash", "pk"
                )
            )
    return {url: found[h] for h, url in by_hash.items()}


def open_url(message: Message) -> str:
    token = token_make(TrackingToken(OPEN, message.tenant_id, message.pk))
    return _absolute(reverse("tracking:open", args=[token]))


def click_url(message: Message, url_id: int) -> str:
    token = token_make(TrackingToken(CLICK, message.tenant_id, message.pk, url_id))
    return _absolute(reverse("tracking:click", args=[token]))


def tracking_rewrite(html: str, message: Message, enabled: bool) -> str:
    """Links through the click redirect and an open pixel, when enabled; otherwise unchanged."""
    if not enabled or not html:
        return html
    hrefs = [html_lib.unescape(match.group(3)).strip() for match in _ANCHOR_HREF.finditer(html)]
    urls = sorted({url for url in hrefs if _trackable(url)})
    ids = tracked_url_ids(tenant_id=message.tenant_id, urls=urls) if urls else {}

    def replace(match: re.Match) -> str:
        url = html_lib.unescape(match.group(3)).strip()
        if url not in ids:
            return match.group(0)
        return (
            f"{match.group(1)}{match.group(2)}{html_lib.escape(click_url(message, ids[url]))}{match.group(2)}"
        )

    rewritten = _ANCHOR_HREF.sub(replace, html)
    pixel = (
        f'<img src="{html_lib.escape(open_url(message))}" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0" aria-hidden="true">'
    )
    if _BODY_END.search(rewritten):
        return _BODY_END.sub(lambda m: pixel + m.group(0), rewritten, count=1)
    return rewritten + pixel


# --- recording -------------------------------------------------------------------------------------


def _message(token: TrackingToken) -> Message | None:
    return Message.objects.filter(tenant_id=token.tenant_id, pk=token.message_id).first()


def _notify(message: Message, event: str) -> None:
    from ..webhooks.services import webhooks_notify

    webhooks_notify(message, event)


# Called in the transaction of each human open or click (message, "opened" or "clicked"): journeys
# register here (they wait for and start on engagement), so delivery never imports them.
_engagement_handlers: list = []


def register_engagement_handler(handler) -> None:
    if handler not in _engagement_handlers:
        _engagement_handlers.append(handler)


@transaction.atomic
def engagement_record(
    *, token: TrackingToken, user_agent: str, ip: str | None, method: str = "GET", now=None
) -> tuple[EngagementEvent | None, str | None]:
    """Store the open or click (inside the token's tenant). Returns the event and, for a click, the
    recorded URL to redirect to (None: unknown URL, no redirect)."""
    now = now or timezone.now()
    with tenant_context(token.tenant_id):
        message = _message(token)
        url = None
        link = None
        if token.kind == CLICK:
            link = (
                TrackedUrl.objects.filter(tenant_id=token.tenant_id, pk=token.url_id).first()
                if token.url_id is not None
                else None
            )
            if link is None:
                return None, None
            url = link.url
        if message is None:
            return None, url  # the message was disposed of: still take the reader where they wanted
        reason = bots.bot_reason(
            user_agent=user_agent, ip=ip, occurred_at=now, delivered_at=message.finished_at, method=method
        )
        kind = EngagementEvent.Kind.CLICK if token.kind == CLICK else EngagementEvent.Kind.OPEN
        first_human_open = (
            kind == EngagementEvent.Kind.OPEN
            and not reason
            and not EngagementEvent.objects.filter(
                tenant_id=message.tenant_id, message=message, kind=kind, is_bot=False
            ).exists()
        )
        event = EngagementEvent.objects.create(
            tenant_id=message.tenant_id,
            message=message,
            contact_id=message.contact_id,
            kind=kind,
            link=link,
            source_type=message.source_type,
            source_id=message.source_id,
            variant=message.variant,
            occurred_at=now,
            is_bot=bool(reason),
            bot_reason=reason,
        )
        if first_human_open:
            _notify(message, "message.opened")
        elif kind == EngagementEvent.Kind.CLICK and not reason:
            _notify(message, "message.clicked")
        if first_human_open or (kind == EngagementEvent.Kind.CLICK and not reason):
            for handler in _engagement_handlers:
                handler(message, "opened" if kind == EngagementEvent.Kind.OPEN else "clicked")
    return event, url


@transaction.atomic
def conversion_record(*, tenant, message_id: uuid.UUID, occurred_at: datetime.datetime | None = None):
    """A conversion reported for a message (e.g. an appointment booked from a campaign)."""
    with tenant_context(tenant):
        message = Message.objects.filter(tenant_id=getattr(tenant, "pk", tenant), pk=message_id).first()
        if message is None:
            return None
        return EngagementEvent.objects.create(
            tenant_id=message.tenant_id,
            message=message,
            contact_id=message.contact_id,
            kind=EngagementEvent.Kind.CONVERSION,
            source_type=message.source_type,
            source_id=message.source_id,
            variant=message.variant,
            occurred_at=occurred_at or timezone.now(),
        )
