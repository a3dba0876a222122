"""Tracking: links and pixel rewritten only when enabled, opaque signed tokens without PHI, redirects
only to URLs recorded at render time, bot/prefetch flags, aggregates per variant and link."""

from __future__ import annotations

import datetime
import re
import uuid

import pytest
from django.utils import timezone

from contacts.models import Contact
from delivery.models import EngagementEvent, Message, Stream
from delivery.tracking import bots
from delivery.tracking.selectors import contacts_engaged, engagement_summary
from delivery.tracking.services import tracking_allowed, tracking_rewrite
from delivery.tracking.tokens import CLICK, TrackingToken, token_make, token_read
from healthmail.tenants.context import tenant_context

from .outbox_helpers import make_message

pytestmark = pytest.mark.django_db

HTML = (
    '<html><body><p>Hello</p><a href="https://clinic.example/book?x=1&amp;y=2">Book</a>'
    "<a href='mailto:care@clinic.example'>Mail</a>"
    '<a href="http://127.0.0.1:8000/p/unsubscribe/abc/">Unsubscribe</a></body></html>'
)
HUMAN = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126 Safari/537.36"


def _marketing(tenant, **kwargs) -> Message:
    return make_message(
        tenant, stream=Stream.MARKETING, source_type="campaign", source_id="c-1", with_content=False, **kwargs
    )


def _delivered(tenant, message, seconds_ago=60) -> Message:
    with tenant_context(tenant):
        Message.objects.filter(pk=message.pk).update(
            state=Message.State.DELIVERED_TLS,
            finished_at=timezone.now() - datetime.timedelta(seconds=seconds_ago),
        )
        return Message.objects.get(pk=message.pk)


def _links(html: str) -> list[str]:
    return re.findall(r'href="(http[^"]+/t/c/[^"]+)"', html)


def _path(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def test_disabled_tracking_leaves_html_untouched(tenant_a):
    message = _marketing(tenant_a)
    assert tracking_rewrite(HTML, message, enabled=False) == HTML


def test_rewrite_tracks_web_links_only_and_adds_a_pixel(tenant_a):
    message = _marketing(tenant_a)
    html = tracking_rewrite(HTML, message, enabled=True)
    assert len(_links(html)) == 1
    assert "mailto:care@clinic.example" in html
    assert "/p/unsubscribe/abc/" in html  # signed patient links go direct
    assert re.search(r'<img src="[^"]+/t/o/[^"]+\.gif"[^>]*></body>', html)
    assert str(message.contact_id) not in html
    assert "patients.example" not in html


def test_tokens_are_signed_and_carry_no_contact(tenant_a):
    message = _marketing(tenant_a, contact_id=None)
    token = token_make(TrackingToken(CLICK, tenant_a.pk, message.pk, 5))
    assert token_read(token).url_id == 5
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    assert token_read(tampered) is None
    assert token_read("x" * 500) is None
    assert token_read("!!!") is None


def test_click_redirects_to_the_recorded_url_and_counts(client, tenant_a):
    message = _delivered(tenant_a, _marketing(tenant_a))
    [link] = _links(tracking_rewrite(HTML, message, enabled=True))
    response = client.get(_path(link), HTTP_USER_AGENT=HUMAN)
    assert response.status_code == 302
    assert response["Location"] == "https://clinic.example/book?x=1&y=2"
    with tenant_context(tenant_a):
        event = EngagementEvent.objects.get(message=message)
    assert (event.kind, event.is_bot, event.source_id) == ("click", False, "c-1")


def test_forged_click_token_is_no_open_redirect(client, tenant_a):
    message = _marketing(tenant_a)
    forged = token_make(TrackingToken(CLICK, tenant_a.pk, message.pk, 999_999))  # no such URL recorded
    assert client.get(f"/t/c/{forged}").status_code == 404
    assert client.get("/t/c/not-a-token?url=https://evil.example").status_code == 404


def test_click_token_of_one_tenant_cannot_reach_another_tenants_url(client, tenant_a, tenant_b):
    message_b = _marketing(tenant_b)
    [link_b] = _links(tracking_rewrite(HTML, message_b, enabled=True))
    url_id = token_read(_path(link_b).rsplit("/", 1)[1]).url_id
    message_a = _marketing(tenant_a)
    crossed = token_make(TrackingToken(CLICK, tenant_a.pk, message_a.pk, url_id))
    assert client.get(f"/t/c/{crossed}").status_code == 404


def test_open_pixel_records_an_open_and_flags_bots(client, tenant_a):
    message = _delivered(tenant_a, _marketing(tenant_a))
    pixel = re.search(r'src="([^"]+\.gif)"', tracking_rewrite(HTML, message, enabled=True)).group(1)
    response = client.get(_path(pixel), HTTP_USER_AGENT=HUMAN)
    assert response["Content-Type"] == "image/gif"
    assert response["Cache-Control"].startswith("no-store")
    client.get(_path(pixel), HTTP_USER_AGENT="Mozilla/5.0 (compatible; Barracuda Sentinel)")
    client.get(_path(pixel), HTTP_USER_AGENT=HUMAN, REMOTE_ADDR="17.58.1.2")
    with tenant_context(tenant_a):
        flags = sorted(EngagementEvent.objects.filter(message=message).values_list("bot_reason", flat=True))
    assert flags == ["", "apple_mpp", "scanner_agent"]


def test_bad_pixel_token_still_answers_a_gif_and_records_nothing(client, tenant_a):
    response = client.get("/t/o/garbage.gif")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/gif"
    with tenant_context(tenant_a):
        assert not EngagementEvent.objects.exists()


def test_prefetch_right_after_delivery_is_a_bot():
    now = timezone.now()
    assert (
        bots.bot_reason(user_agent=HUMAN, ip=None, occurred_at=now, delivered_at=now)
        == "too_soon_after_delivery"
    )
    later = now + datetime.timedelta(minutes=5)
    assert bots.bot_reason(user_agent=HUMAN, ip="203.0.113.9", occurred_at=later, delivered_at=now) == ""
    assert bots.bot_reason(user_agent=HUMAN, ip=None, occurred_at=later, delivered_at=now, method="HEAD")


def test_summary_counts_per_variant_and_link_without_bots(client, tenant_a):
    messages = [_delivered(tenant_a, _marketing(tenant_a, variant=v)) for v in ("A", "A", "B")]
    for message in messages:
        html = tracking_rewrite(HTML, message, enabled=True)
        client.get(_path(_links(html)[0]), HTTP_USER_AGENT=HUMAN)
        client.get(_path(re.search(r'src="([^"]+\.gif)"', html).group(1)), HTTP_USER_AGENT=HUMAN)
        client.get(_path(re.search(r'src="([^"]+\.gif)"', html).group(1)), HTTP_USER_AGENT="curl/8.0")
    client.get(_path(_links(tracking_rewrite(HTML, messages[0], enabled=True))[0]), HTTP_USER_AGENT=HUMAN)
    with tenant_context(tenant_a):
        summary = engagement_summary(tenant=tenant_a, source_type="campaign", source_id="c-1")
    a, b = summary["variants"]["A"], summary["variants"]["B"]
    assert (a["unique_opens"], a["clicks"], a["unique_clicks"], a["bot_events"]) == (2, 3, 2, 2)
    assert (b["unique_opens"], b["clicks"]) == (1, 1)
    assert summary["links"] == [{"url": "https://clinic.example/book?x=1&y=2", "clicks": 4, "unique": 3}]


def test_tracking_defaults_off_for_sensitive_categories(tenant_a):
    with tenant_context(tenant_a):
        plain = Contact(tenant=tenant_a, sensitive_categories=[])
        sensitive = Contact(tenant=tenant_a, sensitive_categories=["behavioral_health"])
    assert tracking_allowed(contact=plain, campaign_tracking=True) is True
    assert tracking_allowed(contact=sensitive, campaign_tracking=True) is False
    assert tracking_allowed(contact=plain, campaign_tracking=False) is False


def test_contacts_engaged_selector(tenant_a):
    from contacts.services import ContactInput, contact_upsert
    from healthmail.actors import Actor

    contact_id = contact_upsert(
        tenant=tenant_a,
        actor=Actor.system("tests"),
        data=ContactInput(email="e@patients.example"),
        source="test",
    ).contact_id
    message = _marketing(tenant_a, contact_id=contact_id)
    now = timezone.now()
    with tenant_context(tenant_a):
        for days, bot in ((1, False), (3, False), (40, False), (1, True)):
            EngagementEvent.objects.create(
                tenant=tenant_a,
                message=message,
                contact_id=contact_id,
                kind="open",
                occurred_at=now - datetime.timedelta(days=days),
                is_bot=bot,
            )
        week = now - datetime.timedelta(days=7)
        assert contacts_engaged(tenant=tenant_a, kind="open", since=week, min_count=2) == {contact_id}
        assert contacts_engaged(tenant=tenant_a, kind="open", since=week, min_count=3) == set()
        assert contacts_engaged(tenant=tenant_a, kind="click", since=week) == set()
    assert uuid.UUID(str(contact_id))
