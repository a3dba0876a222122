"""The campaign report a marketer reads: the totals (campaigns.selectors.campaign_report), the days
delivered, opened and clicked, clicks per link label, bounces by class and the A/B comparison.

Counts are what the database returned, passed through the disclosure policy cell by cell; a chart
draws a masked cell as a gap (null), never as a number the policy did not release."""

from __future__ import annotations

import datetime
import zoneinfo
from dataclasses import dataclass, field
from functools import partial

from django.db.models import Count

from delivery.models import DeliveryReport, EngagementEvent, Message, TrackedUrl
from healthmail import labels
from healthmail.disclosure import Disclosed, Viewer
from healthmail.tenants.models import Tenant

from ..models import Campaign, Metric
from ..selectors import SOURCE_TYPE, Report, campaign_report, campaign_variants, shown
from .links import clicks_by_label, template_anchors
from .series import SERIES, Series, daily_counts
from .significance import ProportionTest, two_proportion_test

MAX_DAYS = 62  # a report's time series covers at most two months from the launch
BOUNCE_CLASSES = (
    DeliveryReport.Kind.BOUNCE,
    DeliveryReport.Kind.SOFT_BOUNCE,
    DeliveryReport.Kind.SENDER_POLICY,
    DeliveryReport.Kind.DELAYED,
)
NONE_COUNTED = Disclosed(0, "0", exact=True, empty=True)


@dataclass
class AbComparison:
    metric: str
    metric_label: str
    rows: list[dict]  # {variant, sent, successes, rate}
    test: ProportionTest | None
    computed_from: str  # "exact" | "released" | ""


@dataclass
class CampaignReport:
    campaign: Campaign
    totals: Report
    series: Series
    links: list[dict]  # {label, clicks, unique, display}
    bounces: list[dict]  # {code, label, display, value}
    ab: list[AbComparison] = field(default_factory=list)

    def delivery_chart(self) -> dict:
        """TLS against portal (and the rest) as one doughnut."""
        keys = (
            ("delivered_tls", "Verified TLS"),
            ("delivered_portal", "Secure portal"),
            ("bounced", "Bounced"),
        )
        cells = [self.totals.values[key]["total"] for key, _ in keys]
        return {"labels": [label for _, label in keys], "data": [c.value for c in cells]}

    def links_chart(self) -> dict:
        return {
            "labels": [link["label"] for link in self.links],
            "data": [link["value"] for link in self.links],
        }


def _zone(tenant: Tenant) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(tenant.timezone)


def _messages(tenant: Tenant, campaign: Campaign):
    return Message.objects.for_tenant(tenant).filter(source_type=SOURCE_TYPE, source_id=str(campaign.pk))


def campaign_series(*, tenant: Tenant, campaign: Campaign, viewer: Viewer) -> Series:
    zone = _zone(tenant)
    counts = daily_counts(
        messages=_messages(tenant, campaign).filter(finished_at__isnull=False),
        events=EngagementEvent.objects.for_tenant(tenant).filter(
            source_type=SOURCE_TYPE, source_id=str(campaign.pk)
        ),
        zone=zone,
    )
    seen = sorted({day for by_day in counts.values() for day in by_day})
    if not seen:
        return Series(days=[], cells={key: [] for key, _ in SERIES})
    first = seen[0]
    last = min(seen[-1], first + datetime.timedelta(days=MAX_DAYS - 1))
    days = [first + datetime.timedelta(days=n) for n in range((last - first).days + 1)]
    figure = partial(shown, tenant=tenant, viewer=viewer, campaign=campaign)
    cells = {
        key: [figure(counts[key].get(day, 0), cell=f"series:{key}:{day.isoformat()}") for day in days]
        for key, _ in SERIES
    }
    return Series(days=days, cells=cells)


def _anchors(tenant: Tenant, campaign: Campaign):
    versions = [campaign.template_version] + [
        v.template_version for v in campaign_variants(tenant=tenant, campaign=campaign)
    ]
    htmls: list[str] = []
    for version in versions:
        if version is None:
            continue
        htmls += [parts.get("html", "") for parts in version.contents.values()]
        htmls += list((version.blocks or {}).values())
    return template_anchors(htmls)


def campaign_links(*, tenant: Tenant, campaign: Campaign, viewer: Viewer) -> list[dict]:
    clicks = list(
        EngagementEvent.objects.for_tenant(tenant)
        .filter(
            source_type=SOURCE_TYPE,
            source_id=str(campaign.pk),
            kind=EngagementEvent.Kind.CLICK,
            is_bot=False,
            link__isnull=False,
        )
        .values_list("link_id", "message_id")
    )
    ids = {link_id for link_id, _ in clicks}
    urls = dict(TrackedUrl.objects.for_tenant(tenant).filter(pk__in=ids).values_list("pk", "url"))
    figure = partial(shown, tenant=tenant, viewer=viewer, campaign=campaign)
    rows = []
    for row in clicks_by_label(clicks, urls, _anchors(tenant, campaign)):
        unique = figure(row["unique"], cell=f"link:{row['label']}")
        rows.append({"label": row["label"], "display": unique.display, "value": unique.value})
    return rows


def campaign_bounces(*, tenant: Tenant, campaign: Campaign, viewer: Viewer) -> list[dict]:
    """Messages with a report of each bounce class (a message counts once per class)."""
    found = dict(
        DeliveryReport.objects.for_tenant(tenant)
        .filter(message__in=_messages(tenant, campaign), kind__in=BOUNCE_CLASSES)
        .values("kind")
        .annotate(n=Count("message", distinct=True))
        .values_list("kind", "n")
    )
    figure = partial(shown, tenant=tenant, viewer=viewer, campaign=campaign)
    rows = []
    for code in BOUNCE_CLASSES:
        cell = figure(found.get(code, 0), cell=f"bounce:{code}")
        rows.append({"code": code, "label": labels.label("bounce_class", code), "display": cell.display})
    return rows


_AB_METRIC_FIGURE: dict[str, str] = {
    Metric.OPENS: "opens",
    Metric.CLICKS: "clicks",
    Metric.CONVERSIONS: "conversions",
}


def _ab_metric(campaign: Campaign) -> str:
    return _AB_METRIC_FIGURE[campaign.ab_winner_metric]


def ab_comparisons(*, campaign: Campaign, totals: Report) -> list[AbComparison]:
    """Each variant against A on the campaign's winner metric, from the figures the viewer sees:
    exact figures when the viewer sees exact ones, else the released (rounded) ones, and no test at
    all when a figure is hidden (a test on hidden figures would reveal them)."""
    variants = [c for c in totals.columns if c != "total"]
    if not campaign.ab_enabled or len(variants) < 2:
        return []
    metric = _ab_metric(campaign)
    sent, successes = totals.values["sent"], totals.values[metric]

    def cells(key: str) -> tuple[Disclosed, Disclosed]:
        # No row for a variant: the database counted none.
        return sent.get(key) or NONE_COUNTED, successes.get(key) or NONE_COUNTED

    rows = []
    for key in variants:
        n, x = cells(key)
        rate = f"{100 * x.value / n.value:.1f}%" if n.value and x.value is not None else "not shown"
        rows.append({"variant": key, "sent": n.display, "successes": x.display, "rate": rate})
    comparisons = []
    base = variants[0]
    for other in variants[1:]:
        shown_cells = [*cells(base), *cells(other)]
        n_a, x_a, n_b, x_b = (c.value for c in shown_cells)
        if n_a is None or x_a is None or n_b is None or x_b is None:
            test, source = None, ""
        else:
            source = "exact" if all(c.exact for c in shown_cells) else "released"
            if x_a > n_a or x_b > n_b:
                test = ProportionTest(
                    0.0, 0.0, None, None, "Conversions can exceed messages: no rate to test."
                )
            else:
                test = two_proportion_test(successes_a=x_a, trials_a=n_a, successes_b=x_b, trials_b=n_b)
        pair = [r for r in rows if r["variant"] in (base, other)]
        comparisons.append(AbComparison(metric, campaign.get_ab_winner_metric_display(), pair, test, source))
    return comparisons


def campaign_report_full(*, tenant: Tenant, campaign: Campaign, viewer: Viewer) -> CampaignReport:
    totals = campaign_report(tenant=tenant, campaign=campaign, viewer=viewer)
    return CampaignReport(
        campaign=campaign,
        totals=totals,
        series=campaign_series(tenant=tenant, campaign=campaign, viewer=viewer),
        links=campaign_links(tenant=tenant, campaign=campaign, viewer=viewer),
        bounces=campaign_bounces(tenant=tenant, campaign=campaign, viewer=viewer),
        ab=ab_comparisons(campaign=campaign, totals=totals),
    )
