"""Campaigns over the API: read (campaigns:read), write (campaigns:write) and report (campaigns:report).

Every write calls the service the campaign pages call (services/campaigns.py, services/workflow.py),
so the lint, the state machine, the history and the audit are the pages' own: an edit of a campaign
in review, approved or scheduled returns it to draft (that round's approvals no longer count), one
that is sending, paused, sent or cancelled is refused (409 campaign_locked). Approval is not here:
a review is a person's decision on the approvals page, and four eyes counts the person who created
the key as the campaign's author and submitter, so nobody approves what their own key submitted.

The report answers the figures of the report page, each cell through the disclosure policy with the
key as the viewer (a key without contacts:phi sees a PHI campaign's counts noisy, rounded, masked)."""

from __future__ import annotations

import dataclasses

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import services as audit
from consent.models import Purpose
from delivery.models import EncryptionPolicy
from healthmail.actors import Actor
from healthmail.api.idempotency import idempotent
from healthmail.api.pagination import CursorPagination
from healthmail.disclosure import Viewer, shows_aggregates

from . import selectors
from .forms import campaign_initial, campaign_input
from .models import Campaign, Goal, Metric
from .selectors import REPORT_METRICS
from .serializers import StrictSerializer
from .services import campaigns as campaign_services
from .services import templates as template_services
from .services import workflow
from .services.common import author_id

READ = ["campaigns:read"]
WRITE = ["campaigns:write"]
REPORT = ["campaigns:report"]
_NOT_FOUND = OpenApiResponse(description="No such object in your organization.")
_STATE = OpenApiResponse(description="The campaign's status does not allow this step now.")
_TAGS = ["campaigns"]


class CampaignSerializer(serializers.ModelSerializer):
    template_id = serializers.UUIDField(allow_null=True)
    segment_id = serializers.UUIDField(allow_null=True)

    class Meta:
        model = Campaign
        fields = ["id", "name", "status", "goal", "purpose", "template_id", "segment_id"]
        fields += ["encryption_policy", "scheduled_for", "created_at", "updated_at"]


class CampaignCreateSerializer(StrictSerializer):
    """The builder's fields without A/B tests and send windows (set those on the campaign's page)."""

    name = serializers.CharField(max_length=120)
    template_id = serializers.UUIDField()
    segment_id = serializers.UUIDField()
    goal = serializers.ChoiceField(choices=Goal.choices, default=Goal.AWARENESS)
    primary_metric = serializers.ChoiceField(choices=Metric.choices, required=False)
    goal_target = serializers.IntegerField(min_value=1, max_value=100_000_000, required=False)
    purpose = serializers.ChoiceField(choices=Purpose.choices, default=Purpose.MARKETING)
    topic_id = serializers.UUIDField(required=False, help_text="The consent topic (marketing needs one).")
    sender_domain_id = serializers.UUIDField(required=False, help_text="A verified sender domain.")
    sender_name = serializers.CharField(
        max_length=100, required=False, help_text="Default: the organization's branding."
    )
    from_local_part = serializers.CharField(max_length=64, default="hello")
    encryption_policy = serializers.ChoiceField(
        choices=EncryptionPolicy.choices, default=EncryptionPolicy.TLS_ELSE_PORTAL
    )
    throttle_per_hour = serializers.IntegerField(min_value=1, max_value=1_000_000, required=False)
    frequency_cap_count = serializers.IntegerField(min_value=1, max_value=100, required=False)
    frequency_cap_days = serializers.IntegerField(min_value=1, max_value=365, default=7)
    track_engagement = serializers.BooleanField(default=True)

    def to_input(self, tenant) -> campaign_services.CampaignInput:
        data = dict(self.validated_data)
        data.setdefault("sender_name", template_services.branding_get(tenant=tenant).sender_name)
        return campaign_services.CampaignInput(**data)


class CampaignUpdateSerializer(StrictSerializer):
    """The fields of the create body, each optional: what is left out keeps its value (A/B tests and
    send windows stay as set on the campaign's page). null clears an optional setting."""

    name = serializers.CharField(max_length=120, required=False)
    template_id = serializers.UUIDField(required=False)
    segment_id = serializers.UUIDField(required=False)
    goal = serializers.ChoiceField(choices=Goal.choices, required=False)
    primary_metric = serializers.ChoiceField(choices=Metric.choices, required=False)
    goal_target = serializers.IntegerField(
        min_value=1, max_value=100_000_000, required=False, allow_null=True
    )
    purpose = serializers.ChoiceField(choices=Purpose.choices, required=False)
    topic_id = serializers.UUIDField(required=False, allow_null=True)
    sender_domain_id = serializers.UUIDField(required=False, allow_null=True)
    sender_name = serializers.CharField(max_length=100, required=False)
    from_local_part = serializers.CharField(max_length=64, required=False)
    encryption_policy = serializers.ChoiceField(choices=EncryptionPolicy.choices, required=False)
    throttle_per_hour = serializers.IntegerField(
        min_value=1, max_value=1_000_000, required=False, allow_null=True
    )
    frequency_cap_count = serializers.IntegerField(
        min_value=1, max_value=100, required=False, allow_null=True
    )
    frequency_cap_days = serializers.IntegerField(min_value=1, max_value=365, required=False)
    track_engagement = serializers.BooleanField(required=False)

    def to_input(self, tenant, campaign: Campaign) -> campaign_services.CampaignInput:
        variants = selectors.campaign_variants(tenant=tenant, campaign=campaign)
        current = campaign_input(campaign_initial(campaign, variants))
        return dataclasses.replace(current, **self.validated_data)


class CommentSerializer(StrictSerializer):
    comment = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class ScheduleSerializer(StrictSerializer):
    send_date = serializers.DateField(required=False, help_text="With send_time; both absent: send now.")
    send_time = serializers.TimeField(required=False)
    timezone_mode = serializers.ChoiceField(
        choices=Campaign.TimezoneMode.choices, default=Campaign.TimezoneMode.TENANT
    )
    confirm_empty = serializers.BooleanField(
        default=False, help_text="Schedule even though nobody in the audience may receive it now."
    )


class ReportCellSerializer(serializers.Serializer):
    column = serializers.CharField(help_text='A variant key, or "total".')
    value = serializers.IntegerField(allow_null=True, help_text="null: masked by the disclosure policy.")
    display = serializers.CharField(help_text='As the report page prints it, e.g. "about 120".')
    exact = serializers.BooleanField()


class ReportMetricSerializer(serializers.Serializer):
    metric = serializers.CharField()
    name = serializers.CharField(help_text="What the report page calls it.")
    cells = ReportCellSerializer(many=True)


class ReportSerializer(serializers.Serializer):
    campaign_id = serializers.UUIDField()
    status = serializers.CharField()
    columns = serializers.ListField(child=serializers.CharField())
    metrics = ReportMetricSerializer(many=True)
    goal_metric = serializers.CharField()
    goal = ReportCellSerializer(allow_null=True)


def _actor(request) -> Actor:
    return Actor.for_api_key(request.auth)


def _writer(request) -> Actor:
    """The key as the actor of a campaign write: refused (403 key_without_person) unless a person of
    the organization created it, for every write, not only those that record an author."""
    actor = _actor(request)
    author_id(actor)
    return actor


def _campaign(request, campaign_id) -> Campaign:
    return selectors.campaign_get(tenant=request.tenant, campaign_id=campaign_id)


def _answer(request, campaign: Campaign) -> Response:
    return Response(CampaignSerializer(_campaign(request, campaign.pk)).data)


class CampaignCollection(APIView):
    required_scopes = {"GET": READ, "POST": WRITE}
    pagination_class = CursorPagination

    @extend_schema(operation_id="campaigns_list", responses=CampaignSerializer(many=True), tags=_TAGS)
    def get(self, request):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(selectors.campaign_list(tenant=request.tenant), request, view=self)
        return paginator.get_paginated_response(CampaignSerializer(page, many=True).data)

    @extend_schema(
        operation_id="campaigns_create",
        request=CampaignCreateSerializer,
        responses={201: CampaignSerializer, 404: _NOT_FOUND, 409: OpenApiResponse(description="Name taken.")},
        tags=_TAGS,
        description="A draft from a template and a segment, linted like on its page. Submit it for "
        "approval next; a person of the organization other than the key's creator approves it.",
    )
    @idempotent
    def post(self, request):
        incoming = CampaignCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        campaign = campaign_services.campaign_create(
            tenant=request.tenant, actor=_actor(request), data=incoming.to_input(request.tenant)
        )
        return Response(CampaignSerializer(_campaign(request, campaign.pk)).data, status=201)


class CampaignItem(APIView):
    required_scopes = {"GET": READ, "PATCH": WRITE}

    @extend_schema(
        operation_id="campaigns_retrieve", responses={200: CampaignSerializer, 404: _NOT_FOUND}, tags=_TAGS
    )
    def get(self, request, campaign_id):
        return Response(CampaignSerializer(_campaign(request, campaign_id)).data)

    @extend_schema(
        operation_id="campaigns_update",
        request=CampaignUpdateSerializer,
        responses={
            200: CampaignSerializer,
            404: _NOT_FOUND,
            409: OpenApiResponse(
                description="Name taken (campaign_exists), or the campaign is sending, paused, sent or "
                "cancelled and can no longer be edited (campaign_locked)."
            ),
        },
        tags=_TAGS,
        description="Change a campaign's settings like its page does, linted again. A campaign in "
        "review, approved or scheduled returns to draft (submit it again); fields left out keep "
        "their values.",
    )
    def patch(self, request, campaign_id):
        _writer(request)
        campaign = _campaign(request, campaign_id)
        incoming = CampaignUpdateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        campaign_services.campaign_update(
            tenant=request.tenant,
            actor=_actor(request),
            campaign=campaign,
            data=incoming.to_input(request.tenant, campaign),
        )
        return _answer(request, campaign)


class _Step(APIView):
    """A workflow step on one campaign: parse the body, call the service, answer the campaign."""

    required_scopes = {"POST": WRITE}
    body: type[StrictSerializer] = CommentSerializer

    def step(self, request, campaign: Campaign, data: dict) -> None:
        raise NotImplementedError

    def run(self, request, campaign_id) -> Response:
        _writer(request)
        campaign = _campaign(request, campaign_id)
        incoming = self.body(data=request.data)
        incoming.is_valid(raise_exception=True)
        self.step(request, campaign, incoming.validated_data)
        return _answer(request, campaign)


def _step_schema(operation_id: str, description: str, body=CommentSerializer):
    return extend_schema(
        operation_id=operation_id,
        request=body,
        responses={200: CampaignSerializer, 404: _NOT_FOUND, 409: _STATE},
        tags=_TAGS,
        description=description,
    )


class CampaignSubmit(_Step):
    @_step_schema(
        "campaigns_submit",
        "Freeze the content and ask for review (a draft without lint errors; 422 lists them). The "
        "reviewers approve on the approvals page; the key's creator cannot approve it.",
    )
    @idempotent
    def post(self, request, campaign_id):
        return self.run(request, campaign_id)

    def step(self, request, campaign, data):
        workflow.campaign_submit(
            tenant=request.tenant, actor=_actor(request), campaign=campaign, comment=data["comment"]
        )


class CampaignSchedule(_Step):
    body = ScheduleSerializer

    @_step_schema(
        "campaigns_schedule",
        "Schedule an approved campaign: now (no date and time) or at a local time. A campaign that "
        "would reach nobody now is refused (422 audience_empty with the reasons) unless confirm_empty.",
        ScheduleSerializer,
    )
    @idempotent
    def post(self, request, campaign_id):
        return self.run(request, campaign_id)

    def step(self, request, campaign, data):
        workflow.campaign_schedule(
            tenant=request.tenant,
            actor=_actor(request),
            campaign=campaign,
            send_date=data.get("send_date"),
            send_time=data.get("send_time"),
            timezone_mode=data["timezone_mode"],
            confirm_empty=data["confirm_empty"],
        )


class CampaignPause(_Step):
    @_step_schema("campaigns_pause", "Hold every message not yet sent (a sending campaign).")
    @idempotent
    def post(self, request, campaign_id):
        return self.run(request, campaign_id)

    def step(self, request, campaign, data):
        workflow.campaign_pause(
            tenant=request.tenant, actor=_actor(request), campaign=campaign, comment=data["comment"]
        )


class CampaignResume(_Step):
    @_step_schema("campaigns_resume", "Release the held messages of a paused campaign.")
    @idempotent
    def post(self, request, campaign_id):
        return self.run(request, campaign_id)

    def step(self, request, campaign, data):
        workflow.campaign_resume(
            tenant=request.tenant, actor=_actor(request), campaign=campaign, comment=data["comment"]
        )


class CampaignWithdraw(_Step):
    @_step_schema(
        "campaigns_withdraw",
        "Take a campaign out of review, back to draft (the reviews of that round no longer count).",
    )
    @idempotent
    def post(self, request, campaign_id):
        return self.run(request, campaign_id)

    def step(self, request, campaign, data):
        workflow.campaign_withdraw(
            tenant=request.tenant, actor=_actor(request), campaign=campaign, comment=data["comment"]
        )


class NoBody(StrictSerializer):
    """No fields: any field sent is refused."""


class CampaignUnschedule(_Step):
    body = NoBody

    @_step_schema(
        "campaigns_unschedule",
        "Take a scheduled campaign off the schedule: it stays approved and can be scheduled again.",
        NoBody,
    )
    @idempotent
    def post(self, request, campaign_id):
        return self.run(request, campaign_id)

    def step(self, request, campaign, data):
        workflow.campaign_unschedule(tenant=request.tenant, actor=_actor(request), campaign=campaign)


class CampaignCancel(_Step):
    @_step_schema(
        "campaigns_cancel",
        "Stop the campaign for good (any status before sent): queued and held messages are cancelled, "
        "sent ones stay sent.",
    )
    @idempotent
    def post(self, request, campaign_id):
        return self.run(request, campaign_id)

    def step(self, request, campaign, data):
        workflow.campaign_cancel(
            tenant=request.tenant, actor=_actor(request), campaign=campaign, comment=data["comment"]
        )


def _cell(column: str, shown) -> dict:
    return {"column": column, "value": shown.value, "display": shown.display, "exact": shown.exact}


@shows_aggregates
class CampaignReport(APIView):
    required_scopes = {"GET": REPORT}

    @extend_schema(
        operation_id="campaigns_report",
        responses={200: ReportSerializer, 404: _NOT_FOUND},
        tags=_TAGS,
        description="The totals of the report page, each through the disclosure policy with this key "
        "as the viewer. Reading it is recorded like a report export.",
    )
    def get(self, request, campaign_id):
        campaign = _campaign(request, campaign_id)
        totals = selectors.campaign_report(
            tenant=request.tenant, campaign=campaign, viewer=Viewer.of(request)
        )
        audit.record(
            actor=_actor(request),
            action="campaign.report_export",
            tenant=request.tenant,
            target=campaign,
            details={"format": "api"},
        )
        metrics = [
            {
                "metric": key,
                "name": str(label),
                "cells": [
                    _cell(column, totals.values[key][column])
                    for column in totals.columns
                    if column in totals.values[key]
                ],
            }
            for key, label in REPORT_METRICS
        ]
        body = {
            "campaign_id": campaign.pk,
            "status": campaign.status,
            "columns": totals.columns,
            "metrics": metrics,
            "goal_metric": totals.goal_metric,
            "goal": _cell("total", totals.goal_shown) if totals.goal_shown is not None else None,
        }
        return Response(ReportSerializer(body).data)
