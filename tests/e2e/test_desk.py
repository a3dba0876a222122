"""The marketer opens the desk and a campaign report and sees the charts drawn (Chart.js instances
with data points, not just empty canvases); the compliance officer's desk and the calendar work; no
page of the desk asks another origin for anything (scripts, styles, fonts, images)."""

from __future__ import annotations

import datetime
from urllib.parse import urlsplit

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from campaigns.services import launch
from delivery.models import EngagementEvent, Message
from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context
from tests.campaigns.conftest import contacts, opt_in, person, scheduled, segment, template, verified_domain

from .conftest import browser_sign_in, screenshot, unique

pytestmark = pytest.mark.browser

LINKED_HTML = (
    "<h1>Flu shots</h1><p>Hello {{ contact.first_name }}.</p>"
    '<p><a href="https://clinic.example.org/book" data-link-label="Book a visit">Book</a></p>'
)


def _sent_campaign(tenant) -> object:
    """A campaign sent to 30 people: 24 delivered yesterday, 16 opened, 12 clicked (committed)."""
    team = {
        "marketer": person(tenant, Role.MARKETER),
        "compliance": person(tenant, Role.COMPLIANCE_OFFICER),
    }
    ready = {
        "domain": verified_domain(tenant, domain=f"mail.{tenant.slug}.example.org"),
        "template": template(tenant, team["marketer"].actor, name="Linked", html=LINKED_HTML),
        "segment": segment(tenant),
    }
    opt_in(tenant, contacts(tenant, 30, seed=21))
    campaign = scheduled(tenant, team, ready, name=unique("Flu drive"))
    launch.campaign_launch(tenant=tenant, campaign_id=campaign.pk)
    yesterday = timezone.now() - datetime.timedelta(days=1)
    from delivery.tracking.services import tracked_url_ids

    with tenant_context(tenant):
        rows = list(Message.objects.filter(source_id=str(campaign.pk)).order_by("pk"))
        for message in rows[:24]:
            message.state, message.finished_at = Message.State.DELIVERED_TLS, yesterday
        Message.objects.bulk_update(rows, ["state", "finished_at"])
        link = next(
            iter(tracked_url_ids(tenant_id=tenant.pk, urls=["https://clinic.example.org/book"]).values())
        )
        for index, message in enumerate(rows[:16]):
            common = {
                "tenant": tenant,
                "message": message,
                "contact_id": message.contact_id,
                "source_type": "campaign",
                "source_id": str(campaign.pk),
                "occurred_at": yesterday,
            }
            EngagementEvent.objects.create(kind="open", **common)
            if index < 12:
                EngagementEvent.objects.create(kind="click", link_id=link, **common)
    return campaign


def _points(page, canvas_id: str) -> list:
    """The data Chart.js holds for the canvas (a chart that was really built, with its points)."""
    page.wait_for_function(f"() => window.Chart && Chart.getChart(document.getElementById('{canvas_id}'))")
    return page.evaluate(
        f"() => Chart.getChart(document.getElementById('{canvas_id}')).data.datasets.map(d => d.data)"
    )


def _watch_origins(page, live_server_url: str) -> list[str]:
    """Every request the page makes that is not to the application itself."""
    own = urlsplit(live_server_url).netloc
    foreign: list[str] = []
    page.on(
        "request",
        lambda request: (
            foreign.append(request.url)
            if urlsplit(request.url).netloc not in (own, "") and not request.url.startswith("data:")
            else None
        ),
    )
    return foreign


def test_marketer_desk_and_report_draw_charts_with_data(page, make_person, live_server_url):
    marketer = make_person(Role.MARKETER)
    campaign = _sent_campaign(marketer.tenant)
    foreign = _watch_origins(page, live_server_url)

    browser_sign_in(page, marketer)
    expect(page.get_by_role("heading", name="Marketing", exact=True)).to_be_visible()
    engagement = _points(page, "engagement-canvas")
    assert len(engagement[0]) == 30  # one point per day of the window
    assert engagement[0][-2] == 24  # delivered yesterday
    assert engagement[1][-2] == 16  # opened yesterday
    assert _points(page, "deliverability-canvas")[0][0] == 24
    expect(page.get_by_test_id("recent")).to_contain_text(campaign.name)
    screenshot(page, "desk-marketer")

    page.get_by_role("link", name=f"Report of {campaign.name}").click()
    expect(page.get_by_role("heading", name=f"Report: {campaign.name}")).to_be_visible()
    series = _points(page, "series-canvas")
    assert series[0] == [24]
    assert series[2] == [12]
    assert _points(page, "links-canvas") == [[12]]
    expect(page.get_by_test_id("links-table")).to_contain_text("Book a visit")
    expect(page.locator("body")).not_to_contain_text("clinic.example.org/book")
    screenshot(page, "campaign-report")

    page.get_by_role("link", name="Compare with other campaigns").click()
    assert _points(page, "compare-canvas")[0] == [pytest.approx(66.7)]
    page.goto("/calendar/")
    expect(page.get_by_role("heading", name="Calendar of sends", exact=False)).to_be_visible()
    screenshot(page, "calendar")
    assert not foreign, f"requests to other origins: {foreign}"


def test_compliance_desk_and_calendar_load_nothing_from_elsewhere(page, make_person, live_server_url):
    officer = make_person(Role.COMPLIANCE_OFFICER)
    foreign = _watch_origins(page, live_server_url)
    browser_sign_in(page, officer)
    expect(page.get_by_role("heading", name="Compliance", exact=True)).to_be_visible()
    points = _points(page, "expiring-canvas")
    assert len(points) == 2  # marketing and research authorizations
    expect(page.get_by_test_id("approvals")).to_contain_text("Nothing waiting.")
    screenshot(page, "desk-compliance")
    page.get_by_role("link", name="Calendar of sends").click()
    page.get_by_label("View").select_option("week")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_test_id("calendar").locator("tbody tr")).to_have_count(1)
    assert not foreign, f"requests to other origins: {foreign}"
