"""Reads of campaigns and templates: lists, lookups (a foreign id is simply not found), the review
queue, live progress and the aggregate report. Reports never name a person, and counts from 1 to 10
are shown as "fewer than 11" so small groups cannot be singled out."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import partial
from typing import TypeVar, cast

from django.db.models import Count, Model, Q, QuerySet

from consent.models import ConsentEvent, Suppression
from delivery.models import DeliveryReport, Message
from delivery.tracking.selectors import engagement_summary
from healthmail.accounts.roles import role_can
from healthmail.disclosure import Disclosed, QueryRefused, Viewer, canonical, disclose
from healthmail.errors import NotFound
from healthmail.tenants.models import Tenant
from segmentation import services as segmentation
from segmentation.models import Segment

from .models import (
    Campaign,
    CampaignApproval,
    CampaignTransition,
    CampaignVariant,
    ContentBlock,
    Template,
    TemplateVersion,
)
from .services.audience import exclusion_label

SOURCE_TYPE = "campaign"
_M = TypeVar("_M", bound=Model)
State = Message.State


def _uuid(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _by_id(queryset: QuerySet[_M], value: object) -> _M | None:
    """The row with this id, None when there is none or the value is no id at all."""
    found_id = _uuid(value)
    return queryset.filter(pk=found_id).first() if found_id is not None else None


def campaign_list(*, tenant: Tenant) -> QuerySet[Campaign]:
    return Campaign.objects.for_tenant(tenant).select_related("segment", "template").order_by("-created_at")


def campaign_names(tenant: Tenant, ids: list[str]) -> dict[str, str]:
    """{campaign id: name} of the given ids (healthmail.labels names message sources with it)."""
    valid = [found for found in map(_uuid, ids) if found is not None]
    rows = Campaign.objects.for_tenant(tenant).filter(pk__in=valid).values_list("pk", "name")
    return {str(pk): name for pk, name in rows}


def campaign_get(*, tenant: Tenant, campaign_id) -> Campaign:
    found = _by_id(
        Campaign.objects.for_tenant(tenant).select_related(
            "segment", "template", "template_version", "topic", "sender_domain", "created_by"
        ),
        campaign_id,
    )
    if found is None:
        raise NotFound("No such campaign.")
    return found


def template_list(*, tenant: Tenant) -> QuerySet[Template]:
    """The templates people and API clients see and choose from: archived ones are left out."""
    return Template.objects.for_tenant(tenant).filter(archived_at__isnull=True).order_by("name")


def template_get(*, tenant: Tenant, template_id) -> Template:
    # An archived template is not found (docs/api.md): its frozen versions stay readable by id.
    found = _by_id(template_list(tenant=tenant), template_id)
    if found is None:
        raise NotFound("No such template.")
    return found


def template_versions(*, tenant: Tenant, template: Template) -> QuerySet[TemplateVersion]:
    """Newest first."""
    return TemplateVersion.objects.for_tenant(tenant).filter(template=template).order_by("-number")


def template_version_get(*, tenant: Tenant, version_id) -> TemplateVersion:
    found = _by_id(TemplateVersion.objects.for_tenant(tenant), version_id)
    if found is None:
        raise NotFound("No such template version.")
    return found


def block_list(*, tenant: Tenant) -> QuerySet[ContentBlock]:
    return ContentBlock.objects.for_tenant(tenant).order_by("name")


def block_get(*, tenant: Tenant, block_id) -> ContentBlock:
    found = _by_id(ContentBlock.objects.for_tenant(tenant), block_id)
    if found is None:
        raise NotFound("No such block.")
    return found


def campaign_variants(*, tenant: Tenant, campaign: Campaign) -> list[CampaignVariant]:
    return list(
        CampaignVariant.objects.for_tenant(tenant).filter(campaign=campaign).select_related("template")
    )


def campaign_history(*, tenant: Tenant, campaign: Campaign) -> list[CampaignTransition]:
    return list(
        CampaignTransition.objects.for_tenant(tenant).filter(campaign=campaign).select_related("user")
    )


def campaign_reviews(*, tenant: Tenant, campaign: Campaign) -> list[CampaignApproval]:
    return list(
        CampaignApproval.objects.for_tenant(tenant)
        .filter(campaign=campaign, round=campaign.review_round)
        .select_related("reviewer")
    )


def approvals_waiting(*, tenant: Tenant, role: str) -> list[Campaign]:
    """Campaigns in review that still need a review this role can give."""
    kinds = [
        k
        for k, perm in (
            ("compliance", "campaigns.approve_compliance"),
            ("clinical", "campaigns.approve_clinical"),
        )
        if role_can(role, perm)
    ]
    waiting = []
    for campaign in campaign_list(tenant=tenant).filter(status=Campaign.Status.IN_REVIEW):
        given = {
            r.kind for r in campaign_reviews(tenant=tenant, campaign=campaign) if r.decision == "approved"
        }
        needed = {"compliance"} | ({"clinical"} if campaign.uses_phi else set())
        if (needed - given) & set(kinds):
            waiting.append(campaign)
    return waiting


# --- Progress and reports -----------------------------------------------------------------------


def shown(count: int, *, tenant: Tenant, viewer: Viewer, campaign: Campaign, cell: str) -> Disclosed:
    """Every campaign figure goes through the disclosure policy: sensitive when the audience was
    chosen by clinical criteria (the campaign uses PHI)."""
    return disclose(
        count,
        tenant=tenant,
        viewer=viewer,
        query=f"campaign:{campaign.pk}#{cell}",
        sensitive=campaign.uses_phi,
    )


PROGRESS_GROUPS = {
    "waiting": (State.QUEUED, State.DEFERRED),
    "sending": (State.SENDING,),
    "delivered": (
        State.DELIVERED_TLS,
        State.DELIVERED_PORTAL,
        State.DELIVERED_WAIVER,
        State.DELIVERED_UNVERIFIED,
    ),
    "bounced": (State.BOUNCED,),
    "failed": (State.FAILED, State.EXPIRED),
    "suppressed": (State.SUPPRESSED,),
    "cancelled": (State.CANCELLED,),
}


@dataclass(frozen=True)
class Progress:
    total: Disclosed
    display: dict[str, str]
    percent_done: int | None  # None when the total is masked


def campaign_progress(*, tenant: Tenant, campaign: Campaign, viewer: Viewer) -> Progress:
    rows = dict(
        Message.objects.for_tenant(tenant)
        .filter(source_type=SOURCE_TYPE, source_id=str(campaign.pk))
        .values("state")
        .annotate(n=Count("id"))
        .values_list("state", "n")
    )
    counts = {group: sum(rows.get(s, 0) for s in states) for group, states in PROGRESS_GROUPS.items()}
    total = sum(rows.values())
    done = total - counts["waiting"] - counts["sending"]
    figure = partial(shown, tenant=tenant, viewer=viewer, campaign=campaign)
    total_shown = figure(total, cell="progress:total")
    percent = None
    if total and total_shown.value is not None:
        # In steps of 10 when the figures are blurred, so the share cannot undo the rounding.
        step = 1 if total_shown.exact else 10
        percent = step * round(100 * done / total / step)
    return Progress(
        total=total_shown,
        display={name: figure(count, cell=f"progress:{name}").display for name, count in counts.items()},
        percent_done=percent,
    )


def campaign_audience_shown(*, tenant: Tenant, campaign: Campaign, viewer: Viewer) -> dict:
    """The queued recipients and the exclusions by reason, as `viewer` may see them."""
    figure = partial(shown, tenant=tenant, viewer=viewer, campaign=campaign)
    excluded = sorted(campaign.excluded_counts.items(), key=lambda item: -item[1])
    return {
        "queued": figure(campaign.recipient_count, cell="queued"),
        "excluded": [
            (exclusion_label(reason), figure(count, cell=f"excluded:{reason}")) for reason, count in excluded
        ],
    }


PREVIEW_NOT_SHOWN = Disclosed(None, "not shown", exact=False)


def audience_preview_shown(*, tenant: Tenant, campaign: Campaign, viewer: Viewer, preview) -> dict:
    """The pre-launch preview (campaigns.services.audience.AudiencePreview) as `viewer` may see it:
    the same policy as the segment's own count, or the preview would be a way around it.

    Draft campaigns cost nothing to make, so the figures are keyed by what decides them (the
    segment's definition; the topic, purpose and PHI use of the gate), not by the campaign: N
    campaigns on one segment get one answer, not N draws to average. The members figure is the
    segment's count, in the viewer's query audit like the builder's; when the audit refuses it
    (an alias of a group counted lately), no figure of the preview is shown."""
    if preview is None:
        return {}
    definition = cast(Segment, campaign.segment).definition  # a preview is made with a segment only
    try:
        segmentation.segment_answer_audit(
            tenant=tenant, viewer=viewer, definition=definition, count=preview.members
        )
    except QueryRefused:
        return {"members": PREVIEW_NOT_SHOWN, "sendable": PREVIEW_NOT_SHOWN, "exclusions": []}
    sensitive = campaign.uses_phi
    gate = canonical(
        {"segment": definition, "topic": campaign.topic_id, "purpose": campaign.purpose, "phi": sensitive}
    )

    def figure(count: int, cell: str) -> Disclosed:
        query = f"preview:{gate}#{cell}"
        return disclose(count, tenant=tenant, viewer=viewer, query=query, sensitive=sensitive)

    return {
        "members": disclose(
            preview.members, tenant=tenant, viewer=viewer, query=canonical(definition), sensitive=sensitive
        ),
        "sendable": figure(preview.sendable, "sendable"),
        "exclusions": [(e.label, figure(e.count, f"excluded:{e.code}")) for e in preview.exclusions],
    }


REPORT_METRICS = (
    ("sent", "Sent"),
    ("delivered_tls", "Delivered (verified TLS)"),
    ("delivered_portal", "Delivered (secure portal)"),
    ("bounced", "Bounced"),
    ("opens", "Opens (unique)"),
    ("clicks", "Clicks (unique)"),
    ("conversions", "Conversions"),
    ("unsubscribes", "Unsubscribes"),
    ("complaints", "Complaints"),
)


@dataclass
class Report:
    columns: list[str]  # variant keys ("" = no A/B test), then "total"
    values: dict[str, dict[str, Disclosed]]  # metric -> column -> count as the viewer may see it
    goal_metric: str = ""
    goal_shown: Disclosed | None = None
    goal_target: int | None = None

    def cell(self, metric: str, column: str) -> str:
        found = self.values[metric].get(column)
        return found.display if found is not None else "0"

    def rows(self) -> list[tuple[str, list[str]]]:
        return [(label, [self.cell(key, c) for c in self.columns]) for key, label in REPORT_METRICS]

    @property
    def goal_display(self) -> str:
        return self.goal_shown.display if self.goal_shown is not None else "0"


def _by_variant(query, key: str = "variant") -> dict[str, int]:
    return dict(query.values(key).annotate(n=Count("id")).values_list(key, "n"))


def campaign_report(*, tenant: Tenant, campaign: Campaign, viewer: Viewer) -> Report:
    messages = Message.objects.for_tenant(tenant).filter(source_type=SOURCE_TYPE, source_id=str(campaign.pk))
    keys = (
        [v.key for v in campaign_variants(tenant=tenant, campaign=campaign)] if campaign.ab_enabled else [""]
    )
    values: dict[str, dict[str, int]] = {}
    sent = messages.exclude(state__in=(State.CANCELLED, State.SUPPRESSED, State.QUEUED, State.DEFERRED))
    values["sent"] = _by_variant(sent)
    values["delivered_tls"] = _by_variant(messages.filter(state=State.DELIVERED_TLS))
    values["delivered_portal"] = _by_variant(messages.filter(state=State.DELIVERED_PORTAL))
    values["bounced"] = _by_variant(messages.filter(state=State.BOUNCED))
    engagement = engagement_summary(tenant=tenant, source_type=SOURCE_TYPE, source_id=str(campaign.pk))
    for metric, source in (
        ("opens", "unique_opens"),
        ("clicks", "unique_clicks"),
        ("conversions", "conversions"),
    ):
        values[metric] = {k: v.get(source, 0) for k, v in engagement["variants"].items()}
    complaints = DeliveryReport.objects.for_tenant(tenant).filter(
        kind=DeliveryReport.Kind.COMPLAINT, message__in=messages
    )
    values["complaints"] = _by_variant(complaints, "message__variant")
    values["unsubscribes"] = _unsubscribes(tenant, campaign, messages)
    for metric in values:
        values[metric]["total"] = sum(v for k, v in values[metric].items() if k in keys)
    figure = partial(shown, tenant=tenant, viewer=viewer, campaign=campaign)
    disclosed = {
        metric: {column: figure(count, cell=f"report:{metric}:{column}") for column, count in cells.items()}
        for metric, cells in values.items()
    }
    metric = campaign.primary_metric
    return Report(
        columns=[*keys, "total"] if keys != [""] else ["total"],
        values=disclosed,
        goal_metric=metric,
        goal_shown=disclosed.get(metric, {}).get("total"),
        goal_target=campaign.goal_target,
    )


def _unsubscribes(tenant: Tenant, campaign: Campaign, messages) -> dict[str, int]:
    """Recipients who left the campaign's topic (or all email) after it went out, by variant."""
    if campaign.launched_at is None:
        return {}
    variant_of = dict(messages.exclude(contact__isnull=True).values_list("contact_id", "variant"))
    left: set = set()
    if campaign.topic_id:
        left |= set(
            ConsentEvent.objects.for_tenant(tenant)
            .filter(
                topic_id=campaign.topic_id,
                kind=ConsentEvent.Kind.REVOKED,
                occurred_at__gte=campaign.launched_at,
                contact_id__in=list(variant_of),
            )
            .values_list("contact_id", flat=True)
        )
    left |= set(
        Suppression.objects.for_tenant(tenant)
        .filter(
            Q(reason=Suppression.Reason.UNSUBSCRIBE_ALL),
            created_at__gte=campaign.launched_at,
            contact_id__in=list(variant_of),
        )
        .values_list("contact_id", flat=True)
    )
    counts: dict[str, int] = {}
    for contact_id in left:
        counts[variant_of[contact_id]] = counts.get(variant_of[contact_id], 0) + 1
    return counts
