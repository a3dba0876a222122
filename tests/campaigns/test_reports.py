"""Campaign reports: the two-proportion test against published worked examples, link labels that never
show a URL, the time series and bounce classes from the database through the disclosure policy, the
CSV (formula injection neutralised) and PDF exports, the comparison page, roles and foreign ids."""

from __future__ import annotations

import csv
import datetime
import io
import math
import uuid

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Campaign
from campaigns.reporting.links import OTHER_LINKS, clicks_by_label, template_anchors
from campaigns.reporting.significance import two_proportion_test
from campaigns.services import launch
from delivery.models import DeliveryReport, EngagementEvent, Message
from delivery.tracking.services import tracked_url_ids
from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context
from tests.conftest import sign_in

from .conftest import contacts, draft, opt_in, scheduled, segment, template, verified_domain

pytestmark = pytest.mark.django_db

# --- The two-proportion z-test, checked against worked examples written out in textbooks' style --


def test_pooled_z_matches_a_published_worked_example():
    # 140 of 200 against 255 of 340: pooled p = 395/540 = 0.7314815, SE = 0.03949401,
    # z = -1.266015; the worked solution reads its one-tailed p = 0.1030278 off a t table (538 d.f.),
    # the normal tail is 0.102754 (standard normal table: between 0.1038 at 1.26 and 0.1020 at 1.27).
    result = two_proportion_test(successes_a=140, trials_a=200, successes_b=255, trials_b=340)
    assert result.z == pytest.approx(-1.266015, abs=1e-6)
    assert result.p_value == pytest.approx(2 * 0.102754, abs=1e-5)
    assert result.p_value == pytest.approx(2 * 0.1030278, abs=1e-3)
    assert not result.significant
    assert "not statistically significant" in result.note


def test_second_worked_example_and_its_two_tailed_p():
    # x1 = 28 of 254, x2 = 36 of 301 at alpha 0.05: z = -0.344 (rates rounded to 0.11 and 0.12 in the
    # worked solution; unrounded it is -0.3359), two-tailed p about 0.73: H0 is not rejected.
    result = two_proportion_test(successes_a=28, trials_a=254, successes_b=36, trials_b=301)
    assert result.z == pytest.approx(-0.34, abs=0.01)
    assert result.p_value == pytest.approx(0.73, abs=0.01)
    assert not result.significant


def test_a_large_difference_is_significant_and_names_the_leader():
    result = two_proportion_test(successes_a=120, trials_a=1000, successes_b=180, trials_b=1000)
    # p = 0.15, SE = sqrt(0.15 * 0.85 * 0.002) = 0.0159687, z = -0.06 / SE = -3.7573
    assert result.z == pytest.approx(-0.06 / math.sqrt(0.15 * 0.85 * 0.002), rel=1e-9)
    assert result.significant
    assert "Variant B did better" in result.note


def test_the_test_is_symmetric_and_refuses_what_is_not_a_proportion():
    ab = two_proportion_test(successes_a=30, trials_a=100, successes_b=45, trials_b=110)
    ba = two_proportion_test(successes_a=45, trials_a=110, successes_b=30, trials_b=100)
    assert ab.z == pytest.approx(-ba.z)
    assert ab.p_value == pytest.approx(ba.p_value)
    with pytest.raises(ValueError, match="not a proportion"):
        two_proportion_test(successes_a=11, trials_a=10, successes_b=1, trials_b=10)
    few = two_proportion_test(successes_a=2, trials_a=100, successes_b=9, trials_b=100)
    assert few.z is None
    assert "Too few results" in few.note


# --- Link labels --------------------------------------------------------------------------------


def test_links_are_labelled_from_the_template_and_personal_urls_match_their_anchor():
    html = (
        '<p><a href="https://clinic.example.org/book" data-link-label="Book button">Book now</a></p>'
        '<p><a href="https://clinic.example.org/appointments?id={{ contact.external_id }}">Your'
        " <b>{{ contact.first_name }}</b> appointment</a></p>"
        '<p><a href="https://clinic.example.org/faq">FAQ</a> <a href="https://clinic.example.org/faq">FAQ</a></p>'
    )
    anchors = template_anchors([html])
    assert [a.label for a in anchors] == ["Book button", "Your appointment", "FAQ"]
    urls = {
        1: "https://clinic.example.org/book",
        2: "https://clinic.example.org/appointments?id=MRN-12345",
        3: "https://clinic.example.org/appointments?id=MRN-67890",
        4: "https://elsewhere.example.org/",
    }
    clicks = [(1, "m1"), (1, "m1"), (2, "m2"), (3, "m3"), (4, "m4"), (4, "m5")]
    rows = {r["label"]: r for r in clicks_by_label(clicks, urls, anchors)}
    assert rows["Book button"] == {"label": "Book button", "clicks": 2, "unique": 1}
    assert rows["Your appointment"]["unique"] == 2
    assert rows["FAQ"]["clicks"] == 0
    assert rows[OTHER_LINKS]["unique"] == 2
    assert "MRN" not in repr(rows)


# --- The report pages ------------------------------------------------------------------------------

LINKED_HTML = (
    "<h1>Flu shots</h1><p>Hello {{ contact.first_name }}.</p>"
    '<p><a href="https://clinic.example.org/book?who={{ organization.name }}"'
    ' data-link-label="Book a visit">Book</a></p>'
)


def _sent_campaign(tenant, team, ready, *, recipients: int = 30, **overrides) -> Campaign:
    opt_in(tenant, contacts(tenant, recipients))
    ready = {**ready, "template": template(tenant, team["marketer"].actor, name="Linked", html=LINKED_HTML)}
    campaign = scheduled(tenant, team, ready, **overrides)
    launch.campaign_launch(tenant=tenant, campaign_id=campaign.pk)
    return campaign


def _deliver_and_engage(tenant, campaign, *, delivered: int, opened: int, clicked: int, bounced: int):
    """Record outcomes as the engine and the tracker would: delivered over TLS on day one, opens and
    clicks over two days, hard bounces with a report each."""
    day_one = timezone.now() - datetime.timedelta(days=2)
    day_two = day_one + datetime.timedelta(days=1)
    with tenant_context(tenant):
        rows = list(Message.objects.filter(source_type="campaign", source_id=str(campaign.pk)).order_by("pk"))
        for message in rows[:delivered]:
            message.state, message.finished_at = Message.State.DELIVERED_TLS, day_one
        for message in rows[delivered : delivered + bounced]:
            message.state, message.finished_at = Message.State.BOUNCED, day_one
            DeliveryReport.objects.create(
                tenant=tenant,
                message=message,
                kind=DeliveryReport.Kind.BOUNCE,
                status="5.1.1",
                matched_by="verp",
            )
        Message.objects.bulk_update(rows, ["state", "finished_at"])
        link = tracked_url_ids(tenant_id=tenant.pk, urls=["https://clinic.example.org/book?who=PATIENT-42"])
        for index, message in enumerate(rows[:opened]):
            when = day_one if index % 2 == 0 else day_two
            common = {
                "tenant": tenant,
                "message": message,
                "contact_id": message.contact_id,
                "source_type": "campaign",
                "source_id": str(campaign.pk),
                "variant": message.variant,
                "occurred_at": when,
            }
            EngagementEvent.objects.create(kind="open", **common)
            if index < clicked:
                EngagementEvent.objects.create(kind="click", link_id=next(iter(link.values())), **common)
    return rows


def test_report_draws_series_links_and_bounces_and_never_shows_the_url(client, tenant_a, team, ready):
    campaign = _sent_campaign(tenant_a, team, ready, recipients=40)
    _deliver_and_engage(tenant_a, campaign, delivered=30, opened=24, clicked=22, bounced=3)
    sign_in(client, team["compliance"].user, tenant=tenant_a)  # PHI access: exact figures from 11
    page = client.get(reverse("campaigns:campaign_report", args=[campaign.pk])).content.decode()
    assert 'data-chart="series-data"' in page
    assert '<script id="series-data" type="application/json">' in page
    assert "Book a visit" in page
    assert "PATIENT-42" not in page
    assert "clinic.example.org/book" not in page
    assert "<td>22</td>" in page  # unique clicks on the labelled link, as the database counted
    assert '<th scope="row">Bounce (hard)</th><td>fewer than 11</td>' in page
    assert "<script>" not in page  # data goes to the charts through json_script, not inline code
    assert "onclick" not in page


def test_report_series_counts_are_the_database_counts_day_by_day(tenant_a, team, ready):
    from campaigns.reporting.report import campaign_series
    from healthmail.disclosure import Viewer

    campaign = _sent_campaign(tenant_a, team, ready, recipients=40)
    _deliver_and_engage(tenant_a, campaign, delivered=30, opened=24, clicked=0, bounced=0)
    with tenant_context(tenant_a):
        series = campaign_series(tenant=tenant_a, campaign=campaign, viewer=Viewer(key="user:x", phi=True))
    chart = series.chart()
    delivered = next(d for d in chart["datasets"] if d["key"] == "delivered")["data"]
    opened = next(d for d in chart["datasets"] if d["key"] == "opened")["data"]
    assert sum(v for v in delivered if v) == 30
    assert opened == [12, 12] or opened[:2] == [12, 12]
    # A masked cell is a gap for the chart, never a number (clicked: none -> 0, shown as 0).
    assert all(v == 0 for v in next(d for d in chart["datasets"] if d["key"] == "clicked")["data"])


def test_small_series_cells_are_gaps_not_numbers(tenant_a, team, ready):
    from campaigns.reporting.report import campaign_series
    from healthmail.disclosure import Viewer

    campaign = _sent_campaign(tenant_a, team, ready, recipients=12)
    _deliver_and_engage(tenant_a, campaign, delivered=12, opened=4, clicked=0, bounced=0)
    with tenant_context(tenant_a):
        series = campaign_series(tenant=tenant_a, campaign=campaign, viewer=Viewer(key="user:x", phi=True))
    opened = next(d for d in series.chart()["datasets"] if d["key"] == "opened")["data"]
    assert opened == [None, None]  # 2 and 2: below the smallest group shown
    assert [row[1][1] for row in series.rows()] == ["fewer than 11", "fewer than 11"]


def test_csv_export_neutralises_formulas_and_quotes_every_cell(client, tenant_a, team, ready):
    campaign = _sent_campaign(tenant_a, team, ready, name='=HYPERLINK("http://evil.example")')
    _deliver_and_engage(tenant_a, campaign, delivered=20, opened=12, clicked=12, bounced=0)
    sign_in(client, team["marketer"].user, tenant=tenant_a)
    response = client.get(reverse("campaigns:campaign_report_csv", args=[campaign.pk]))
    body = response.content.decode()
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(body)))
    cells = [cell for row in rows for cell in row]
    assert '\'=HYPERLINK("http://evil.example")' in cells
    assert not any(cell.lstrip(" ").startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells)
    assert "Book a visit" in cells
    assert "PATIENT-42" not in body
    assert body.startswith('"Campaign"')  # every cell quoted: a separator inside a cell starts no new one


def test_pdf_export_holds_the_figures_and_labels(client, tenant_a, team, ready):
    from pypdf import PdfReader

    campaign = _sent_campaign(tenant_a, team, ready)
    _deliver_and_engage(tenant_a, campaign, delivered=20, opened=12, clicked=12, bounced=0)
    sign_in(client, team["compliance"].user, tenant=tenant_a)
    response = client.get(reverse("campaigns:campaign_report_pdf", args=[campaign.pk]))
    assert response["Content-Type"] == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    assert campaign.name in text
    assert "Book a visit" in text
    assert "Bounces by class" in text
    assert "PATIENT-42" not in text


def test_ab_report_gives_a_significance_note(client, tenant_a, team, ready):
    from campaigns.services.campaigns import VariantInput

    campaign = _sent_campaign(
        tenant_a,
        team,
        ready,
        recipients=60,
        ab_enabled=True,
        ab_dimension=Campaign.AbDimension.SUBJECT,
        ab_test_percent=100,
        ab_winner_metric="opens",
        variants=[VariantInput("A", "Flu shots are here"), VariantInput("B", "Your flu shot is waiting")],
    )
    with tenant_context(tenant_a):
        rows = list(Message.objects.filter(source_type="campaign", source_id=str(campaign.pk)))
        Message.objects.filter(pk__in=[m.pk for m in rows]).update(
            state=Message.State.DELIVERED_TLS, finished_at=timezone.now()
        )
        opened = [m for m in rows if m.variant == "B"][:25] + [m for m in rows if m.variant == "A"][:12]
        for message in opened:
            EngagementEvent.objects.create(
                tenant=tenant_a,
                message=message,
                kind="open",
                source_type="campaign",
                source_id=str(campaign.pk),
                variant=message.variant,
                occurred_at=timezone.now(),
            )
    sign_in(client, team["compliance"].user, tenant=tenant_a)
    page = client.get(reverse("campaigns:campaign_report", args=[campaign.pk])).content.decode()
    assert "two-proportion z-test" in page
    assert "Variant B did better" in page
    assert "83.3%" in page  # 25 of 30
    assert "40.0%" in page  # 12 of 30


def test_comparison_lists_campaigns_with_rates(client, tenant_a, team, ready):
    first = _sent_campaign(tenant_a, team, ready, recipients=30)
    _deliver_and_engage(tenant_a, first, delivered=30, opened=20, clicked=0, bounced=0)
    sign_in(client, team["compliance"].user, tenant=tenant_a)
    response = client.get(reverse("campaigns:campaign_compare") + f"?campaign={first.pk}")
    page = response.content.decode()
    assert response.status_code == 200
    assert first.name in page
    assert 'data-chart="compare-data"' in page
    assert "66.7%" in page  # 20 opens of 30 sent


@pytest.mark.parametrize(
    ("role", "status"),
    [
        (Role.MARKETER, 200),
        (Role.COMPLIANCE_OFFICER, 200),
        (Role.TENANT_ADMIN, 200),
        (Role.CLINICAL_REVIEWER, 403),
    ],
)
def test_report_pages_role_matrix(client, tenant_a, team, ready, role, status):
    campaign = draft(tenant_a, team, ready)
    from tests.factories import MembershipFactory

    membership = MembershipFactory(tenant=tenant_a, role=role)
    sign_in(client, membership.user, tenant=tenant_a)
    for name, args in (
        ("campaigns:campaign_report", [campaign.pk]),
        ("campaigns:campaign_report_csv", [campaign.pk]),
        ("campaigns:campaign_report_pdf", [campaign.pk]),
        ("campaigns:campaign_compare", []),
    ):
        assert client.get(reverse(name, args=args)).status_code == status, name


def test_foreign_campaign_reports_answer_404(member_client, tenant_b):
    from .conftest import person

    other = person(tenant_b, Role.MARKETER)
    foreign = draft(
        tenant_b,
        {"marketer": other},
        {
            "domain": verified_domain(tenant_b),
            "template": template(tenant_b, other.actor, name="Theirs"),
            "segment": segment(tenant_b),
        },
    )
    client = member_client(Role.MARKETER)
    for url in (
        reverse("campaigns:campaign_report", args=[foreign.pk]),
        reverse("campaigns:campaign_report_csv", args=[foreign.pk]),
        reverse("campaigns:campaign_report_pdf", args=[foreign.pk]),
        reverse("campaigns:campaign_compare") + f"?campaign={foreign.pk}",
        reverse("campaigns:campaign_compare") + f"?campaign={uuid.uuid4()}",
        reverse("campaigns:campaign_compare") + "?campaign=not-a-uuid",
    ):
        assert client.get(url).status_code == 404, url
