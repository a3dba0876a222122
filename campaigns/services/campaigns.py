"""Writing a campaign, and its compliance lint (template rules + the campaign's own rules).

Any edit of a campaign that is in review, approved or scheduled returns it to draft (approvals
of that round no longer count); a campaign that is sending, paused, sent or cancelled cannot be
edited at all.
"""

from __future__ import annotations

import datetime
import re
import uuid
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction

from consent.models import Purpose, Topic
from delivery.models import EncryptionPolicy, SenderDomain
from healthmail.actors import Actor
from healthmail.errors import Conflict, NotFound
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant
from segmentation.models import Segment

from ..models import GOAL_DEFAULT_METRIC, Campaign, CampaignVariant, Goal, Metric, Template, TemplateVersion
from ..templating import lint as linting
from ..templating.render import HEADER_UNSAFE
from ..templating.sandbox import analyze
from . import previews
from . import templates as template_services
from .common import CampaignConflict, CampaignError, author_id
from .history import transition_record
from .template_lifecycle import template_for_use

LOCAL_PART = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
VARIANT_KEYS = ("A", "B", "C", "D")
EDITABLE_AGAIN = (Campaign.Status.IN_REVIEW, Campaign.Status.APPROVED, Campaign.Status.SCHEDULED)


@dataclass(frozen=True)
class VariantInput:
    key: str
    subject: str = ""
    template_id: uuid.UUID | None = None


@dataclass(frozen=True)
class CampaignInput:
    name: str
    goal: str
    purpose: str
    sender_name: str
    primary_metric: str = ""
    goal_target: int | None = None
    topic_id: uuid.UUID | None = None
    sender_domain_id: uuid.UUID | None = None
    from_local_part: str = "hello"
    segment_id: uuid.UUID | None = None
    template_id: uuid.UUID | None = None
    encryption_policy: str = EncryptionPolicy.TLS_ELSE_PORTAL
    window_start: datetime.time | None = None
    window_end: datetime.time | None = None
    throttle_per_hour: int | None = None
    frequency_cap_count: int | None = None
    frequency_cap_days: int = 7
    track_engagement: bool = True
    ab_enabled: bool = False
    ab_dimension: str = Campaign.AbDimension.SUBJECT
    ab_test_percent: int = 20
    ab_winner_metric: str = Metric.OPENS
    ab_wait_hours: int = 4
    variants: list[VariantInput] = field(default_factory=list)


def _get(model, tenant: Tenant, object_id, label: str):
    if object_id is None:
        return None
    found = model.objects.for_tenant(tenant).filter(pk=object_id).first()
    if found is None:
        raise NotFound(f"No such {label}.", code=f"{label.replace(' ', '_')}_not_found")
    return found


def _template(tenant: Tenant, template_id) -> Template | None:
    # Locked against a removal until the campaign is saved; an archived template is not found.
    return None if template_id is None else template_for_use(tenant=tenant, template_id=template_id)


def _validate(data: CampaignInput) -> None:
    if not data.name.strip():
        raise CampaignError("Give the campaign a name.", code="name_required")
    if data.goal not in Goal.values:
        raise CampaignError("Choose a goal.", code="goal_invalid")
    if data.primary_metric and data.primary_metric not in Metric.values:
        raise CampaignError("Choose a primary metric.", code="metric_invalid")
    if data.purpose not in Purpose.values:
        raise CampaignError("Choose a purpose.", code="purpose_invalid")
    if data.encryption_policy not in EncryptionPolicy.values:
        raise CampaignError("Choose an encryption policy.", code="encryption_policy_invalid")
    if data.encryption_policy == EncryptionPolicy.OPPORTUNISTIC and data.purpose != Purpose.MARKETING:
        raise CampaignError(
            "Opportunistic TLS is for non-PHI marketing only.", code="encryption_policy_invalid"
        )
    if HEADER_UNSAFE.search(data.sender_name) or HEADER_UNSAFE.search(data.name):
        raise CampaignError("The sender name may not contain line breaks.", code="header_injection")
    if not data.sender_name.strip():
        raise CampaignError("Give a sender name.", code="sender_name_required")
    if not LOCAL_PART.match(data.from_local_part or ""):
        raise CampaignError(
            "The sender address part may use letters, digits, dots and dashes.", code="from_invalid"
        )
    if (data.window_start is None) != (data.window_end is None) or (
        data.window_start is not None and data.window_start == data.window_end
    ):
        raise CampaignError("A send-time window needs a different start and end.", code="window_invalid")
    if data.frequency_cap_count is not None and not (1 <= data.frequency_cap_days <= 365):
        raise CampaignError("A frequency cap counts over 1 to 365 days.", code="frequency_cap_invalid")
    if data.ab_enabled:
        _validate_ab(data)


def _validate_ab(data: CampaignInput) -> None:
    keys = [v.key for v in data.variants]
    if not 2 <= len(keys) <= 4 or keys != list(VARIANT_KEYS[: len(keys)]):
        raise CampaignError("An A/B test has 2 to 4 variants (A, B, C, D).", code="ab_variants")
    if not 2 <= data.ab_test_percent <= 100:
        raise CampaignError("The test share is 2 to 100 percent.", code="ab_share")
    if data.ab_winner_metric not in Metric.values:
        raise CampaignError("Choose how the winner is picked.", code="ab_metric")
    if data.ab_dimension == Campaign.AbDimension.SUBJECT:
        for variant in data.variants:
            if not variant.subject.strip():
                raise CampaignError(f"Variant {variant.key} needs a subject.", code="ab_subject_required")
            if HEADER_UNSAFE.search(variant.subject):
                raise CampaignError(
                    f"The subject of variant {variant.key} contains a line break.", code="header_injection"
                )
    elif data.ab_dimension == Campaign.AbDimension.CONTENT:
        if any(v.template_id is None for v in data.variants):
            raise CampaignError("Each variant needs a template.", code="ab_template_required")
    else:
        raise CampaignError("Test the subject or the content.", code="ab_dimension")


def _apply(tenant: Tenant, campaign: Campaign, data: CampaignInput) -> None:
    topic = _get(Topic, tenant, data.topic_id, "topic")
    if topic is not None and topic.purpose != data.purpose:
        raise CampaignError(f"The topic “{topic.name}” is not a {data.purpose} topic.", code="topic_mismatch")
    template = _template(tenant, data.template_id)
    if template is not None and template.kind != Template.Kind.MARKETING:
        raise CampaignError(
            "Campaigns use campaign templates (API data fields are for transactional messages).",
            code="template_kind",
        )
    campaign.name = data.name.strip()
    campaign.goal = data.goal
    campaign.primary_metric = data.primary_metric or GOAL_DEFAULT_METRIC[data.goal]
    campaign.goal_target = data.goal_target
    campaign.purpose = data.purpose
    campaign.topic = topic
    campaign.sender_domain = _get(SenderDomain, tenant, data.sender_domain_id, "sender domain")
    campaign.sender_name = data.sender_name.strip()
    campaign.from_local_part = data.from_local_part
    campaign.segment = _get(Segment, tenant, data.segment_id, "segment")
    campaign.template = template
    campaign.encryption_policy = data.encryption_policy
    campaign.window_start, campaign.window_end = data.window_start, data.window_end
    campaign.throttle_per_hour = data.throttle_per_hour
    campaign.frequency_cap_count, campaign.frequency_cap_days = (
        data.frequency_cap_count,
        data.frequency_cap_days,
    )
    campaign.track_engagement = data.track_engagement
    campaign.ab_enabled = data.ab_enabled
    campaign.ab_dimension = data.ab_dimension
    campaign.ab_test_percent = data.ab_test_percent
    campaign.ab_winner_metric = data.ab_winner_metric
    campaign.ab_wait_hours = data.ab_wait_hours


def _save_variants(tenant: Tenant, campaign: Campaign, data: CampaignInput) -> None:
    CampaignVariant.objects.for_tenant(tenant).filter(campaign=campaign).delete()
    if not data.ab_enabled:
        return
    content = data.ab_dimension == Campaign.AbDimension.CONTENT
    CampaignVariant.objects.bulk_create(
        [
            CampaignVariant(
                tenant=tenant,
                campaign=campaign,
                key=v.key,
                subject="" if content else v.subject.strip(),
                template=_template(tenant, v.template_id) if content else None,
            )
            for v in data.variants
        ]
    )


def _save(tenant: Tenant, campaign: Campaign) -> None:
    try:
        with transaction.atomic():
            campaign.save()
    except IntegrityError as error:
        raise Conflict(f"A campaign named “{campaign.name}” exists.", code="campaign_exists") from error


@transaction.atomic
def campaign_create(*, tenant: Tenant, actor: Actor, data: CampaignInput) -> Campaign:
    _validate(data)
    with tenant_context(tenant):
        campaign = Campaign(tenant=tenant, created_by_id=author_id(actor))
        _apply(tenant, campaign, data)
        _save(tenant, campaign)
        _save_variants(tenant, campaign, data)
        campaign_relint(tenant=tenant, campaign=campaign)
        transition_record(campaign=campaign, actor=actor, action="create", from_status="", comment="")
    return campaign


@transaction.atomic
def campaign_update(*, tenant: Tenant, actor: Actor, campaign: Campaign, data: CampaignInput) -> Campaign:
    """Save changes. Sending campaigns refuse; reviewed or approved ones go back to draft. Like
    creating one, editing needs a person answerable for the content (author_id)."""
    author_id(actor)
    _validate(data)
    with tenant_context(tenant):
        locked = Campaign.objects.select_for_update(of=("self",)).get(pk=campaign.pk, tenant=tenant)
        if locked.is_locked:
            raise CampaignConflict(
                f"The campaign is {locked.get_status_display().lower()}: it can no longer be edited. "
                "Pause or cancel it, or copy it into a new campaign.",
                code="campaign_locked",
            )
        previous = locked.status
        _apply(tenant, locked, data)
        if previous in EDITABLE_AGAIN:
            _back_to_draft(locked)
        _save(tenant, locked)
        _save_variants(tenant, locked, data)
        campaign_relint(tenant=tenant, campaign=locked)
        transition_record(
            campaign=locked,
            actor=actor,
            action="edit",
            from_status=previous,
            comment="Edited after submission: approvals no longer count."
            if previous in EDITABLE_AGAIN
            else "",
        )
    campaign.__dict__.update({k: v for k, v in locked.__dict__.items() if not k.startswith("_")})
    return locked


def _back_to_draft(campaign: Campaign) -> None:
    campaign.status = Campaign.Status.DRAFT
    campaign.template_version = None
    campaign.scheduled_for = None
    CampaignVariant.objects.for_tenant(campaign.tenant_id).filter(campaign=campaign).update(
        template_version=None
    )


# --- The lint of a campaign -----------------------------------------------------------------------


def _template_lint(tenant: Tenant, template: Template | None, version: TemplateVersion | None):
    if version is not None:
        return linting.lint_template(
            contents=template_services.version_contents(version),
            blocks=version.blocks,
            field_set=template_services.field_set_for(tenant=tenant, kind=version.kind),
        )
    if template is not None:
        return template_services.template_lint(tenant=tenant, template=template)
    return None


def campaign_lint(*, tenant: Tenant, campaign: Campaign) -> tuple[list[linting.Finding], set[str], bool]:
    """(findings, PHI fields used, uses_phi). uses_phi: the audience or any content uses PHI."""
    findings: list[linting.Finding] = []
    phi_fields: set[str] = set()
    if campaign.segment_id is None:
        findings.append(linting.Finding("segment_required", "Choose the audience (a segment).", "Audience"))
    variants = (
        list(CampaignVariant.objects.for_tenant(tenant).filter(campaign=campaign))
        if campaign.ab_enabled
        else []
    )
    content_test = campaign.ab_enabled and campaign.ab_dimension == Campaign.AbDimension.CONTENT
    templates = (
        [(f"Variant {v.key}: ", v.template, v.template_version) for v in variants]
        if content_test
        else [("", campaign.template, campaign.template_version)]
    )
    for prefix, template, version in templates:
        result = _template_lint(tenant, template, version)
        if result is None:
            findings.append(linting.Finding("template_required", "Choose a template.", f"{prefix}Template"))
            continue
        phi_fields |= result.phi_fields
        findings.extend(
            linting.Finding(f.code, f.message, f"{prefix}{f.where}", f.line, f.column)
            for f in result.findings
        )
    field_set = template_services.field_set_for(tenant=tenant, kind=Template.Kind.MARKETING)
    if campaign.ab_enabled and not content_test:
        for variant in variants:
            findings.extend(_subject_findings(variant, field_set))
            phi_fields |= {
                n
                for n in analyze(variant.subject, field_set=field_set).fields
                if (f := field_set.get(n)) and f.phi
            }
    segment_phi = bool(campaign.segment and campaign.segment.uses_phi)
    uses_phi = segment_phi or bool(phi_fields)
    branding = template_services.branding_get(tenant=tenant)
    facts = linting.MessageFacts(
        purpose=campaign.purpose,
        encryption_policy=campaign.encryption_policy,
        uses_phi=uses_phi,
        phi_fields=frozenset(phi_fields),
        sender_name=campaign.sender_name,
        branding=template_services.render_branding(branding),
        footer=template_services.footer_for(
            tenant=tenant,
            contact=previews.synthetic_recipient(tenant),
            purpose=campaign.purpose,
            topic=campaign.topic,
            sender_name=campaign.sender_name,
        ),
        has_topic=campaign.topic_id is not None,
    )
    findings.extend(linting.lint_message(facts))
    if campaign.sender_domain is None or campaign.sender_domain.status != SenderDomain.Status.VERIFIED:
        findings.append(
            linting.Finding(
                "sender_domain_unverified", "Choose a verified sender domain before launch.", "Sender"
            )
        )
    return findings, phi_fields, uses_phi


def _subject_findings(variant: CampaignVariant, field_set) -> list[linting.Finding]:
    where = f"Variant {variant.key}: Subject"
    analysis = analyze(variant.subject, field_set=field_set)
    found = [linting.Finding(p.code, p.message, where, p.line, p.column) for p in analysis.problems]
    for name in sorted(analysis.fields):
        merge_field = field_set.get(name)
        if merge_field is not None and merge_field.phi:
            found.append(
                linting.Finding("phi_in_subject", f"The PHI field “{name}” is used in the subject.", where)
            )
    if HEADER_UNSAFE.search(variant.subject):
        found.append(linting.Finding("header_injection", "The subject contains a line break.", where))
    return found


def campaign_relint(*, tenant: Tenant, campaign: Campaign) -> list[linting.Finding]:
    findings, _, uses_phi = campaign_lint(tenant=tenant, campaign=campaign)
    campaign.lint = [f.as_dict() for f in findings]
    campaign.has_errors = bool(linting.errors_in(findings))
    campaign.uses_phi = uses_phi
    Campaign.objects.filter(pk=campaign.pk).update(
        lint=campaign.lint, has_errors=campaign.has_errors, uses_phi=uses_phi
    )
    return findings
