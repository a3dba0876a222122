"""Read API for templates and campaigns (scope campaigns:read). Thin: one selector, one serializer.

No counts: a campaign's audience and report numbers go through the disclosure policy on their pages
and are not part of these answers. Templates are the organization's own content, not PHI (their
fields are placeholders, filled only when a message is composed)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from healthmail.api.pagination import CursorPagination

from . import selectors
from .models import Campaign, Template

SCOPE = ["campaigns:read"]


class TemplateSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Template
        fields = ["id", "name", "kind", "description", "default_language", "revision", "has_errors"]
        fields += ["created_at", "updated_at"]


class TemplateContentSerializer(serializers.Serializer):
    language = serializers.CharField()
    subject = serializers.CharField()
    preheader = serializers.CharField()
    html = serializers.CharField()
    text = serializers.CharField()


class TemplateDetailSerializer(TemplateSummarySerializer):
    contents = TemplateContentSerializer(many=True, help_text="One per language.")

    class Meta(TemplateSummarySerializer.Meta):
        fields = [*TemplateSummarySerializer.Meta.fields, "contents"]


class CampaignSerializer(serializers.ModelSerializer):
    template_id = serializers.UUIDField(allow_null=True)
    segment_id = serializers.UUIDField(allow_null=True)

    class Meta:
        model = Campaign
        fields = ["id", "name", "status", "goal", "purpose", "template_id", "segment_id"]
        fields += ["encryption_policy", "scheduled_for", "created_at", "updated_at"]


_NOT_FOUND = OpenApiResponse(description="No such object in your organization.")


class TemplateCollection(APIView):
    required_scopes = {"GET": SCOPE}
    pagination_class = CursorPagination

    @extend_schema(
        operation_id="templates_list", responses=TemplateSummarySerializer(many=True), tags=["templates"]
    )
    def get(self, request):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(selectors.template_list(tenant=request.tenant), request, view=self)
        return paginator.get_paginated_response(TemplateSummarySerializer(page, many=True).data)


class TemplateItem(APIView):
    required_scopes = {"GET": SCOPE}

    @extend_schema(
        operation_id="templates_retrieve",
        responses={200: TemplateDetailSerializer, 404: _NOT_FOUND},
        tags=["templates"],
    )
    def get(self, request, template_id):
        template = selectors.template_get(tenant=request.tenant, template_id=template_id)
        return Response(TemplateDetailSerializer(template).data)


class CampaignCollection(APIView):
    required_scopes = {"GET": SCOPE}
    pagination_class = CursorPagination

    @extend_schema(operation_id="campaigns_list", responses=CampaignSerializer(many=True), tags=["campaigns"])
    def get(self, request):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(selectors.campaign_list(tenant=request.tenant), request, view=self)
        return paginator.get_paginated_response(CampaignSerializer(page, many=True).data)


class CampaignItem(APIView):
    required_scopes = {"GET": SCOPE}

    @extend_schema(
        operation_id="campaigns_retrieve",
        responses={200: CampaignSerializer, 404: _NOT_FOUND},
        tags=["campaigns"],
    )
    def get(self, request, campaign_id):
        campaign = selectors.campaign_get(tenant=request.tenant, campaign_id=campaign_id)
        return Response(CampaignSerializer(campaign).data)
