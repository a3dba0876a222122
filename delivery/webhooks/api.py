"""Webhook endpoints over the API (scope webhooks:manage). The signing secret is returned once, at
creation. Another tenant's endpoint id is simply not found."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.actors import Actor
from healthmail.api.idempotency import idempotent
from healthmail.api.pagination import CursorPagination

from ..models import WebhookDelivery, WebhookEndpoint
from . import services

SCOPE = ["webhooks:manage"]


class EndpointInSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=2000)
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(services.EVENT_TYPES)), min_length=1, max_length=20
    )
    description = serializers.CharField(required=False, allow_blank=True, max_length=200)


class EndpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "description", "event_types", "active", "created_at"]


class EndpointCreatedSerializer(EndpointSerializer):
    secret = serializers.CharField(help_text="The signing secret, shown only in this answer.")

    class Meta(EndpointSerializer.Meta):
        fields = [*EndpointSerializer.Meta.fields, "secret"]


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event_type",
            "state",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_duration_ms",
            "last_error",
            "payload",
            "created_at",
            "finished_at",
        ]


def _actor(request) -> Actor:
    return Actor.for_api_key(request.auth)


class EndpointCollection(APIView):
    required_scopes = {"GET": SCOPE, "POST": SCOPE}

    @extend_schema(operation_id="webhooks_list", responses=EndpointSerializer(many=True), tags=["webhooks"])
    def get(self, request):
        paginator = CursorPagination()
        page = paginator.paginate_queryset(
            WebhookEndpoint.objects.for_tenant(request.tenant), request, view=self
        )
        return paginator.get_paginated_response(EndpointSerializer(page, many=True).data)

    @extend_schema(
        operation_id="webhooks_create",
        request=EndpointInSerializer,
        responses={201: EndpointCreatedSerializer},
        tags=["webhooks"],
    )
    @idempotent
    def post(self, request):
        incoming = EndpointInSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        created = services.endpoint_create(
            tenant=request.tenant,
            actor=_actor(request),
            url=data["url"],
            event_types=data["event_types"],
            description=data.get("description", ""),
        )
        body = {**EndpointSerializer(created.endpoint).data, "secret": created.secret}
        return Response(body, status=status.HTTP_201_CREATED)


class EndpointItem(APIView):
    required_scopes = {"GET": SCOPE, "DELETE": SCOPE}

    @extend_schema(operation_id="webhooks_retrieve", responses=EndpointSerializer, tags=["webhooks"])
    def get(self, request, endpoint_id):
        endpoint = services.endpoint_get(tenant=request.tenant, endpoint_id=endpoint_id)
        return Response(EndpointSerializer(endpoint).data)

    @extend_schema(operation_id="webhooks_destroy", responses={204: None}, tags=["webhooks"])
    def delete(self, request, endpoint_id):
        endpoint = services.endpoint_get(tenant=request.tenant, endpoint_id=endpoint_id)
        services.endpoint_delete(tenant=request.tenant, actor=_actor(request), endpoint=endpoint)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EndpointDeliveries(APIView):
    required_scopes = {"GET": SCOPE}

    @extend_schema(
        operation_id="webhooks_deliveries_list", responses=DeliverySerializer(many=True), tags=["webhooks"]
    )
    def get(self, request, endpoint_id):
        endpoint = services.endpoint_get(tenant=request.tenant, endpoint_id=endpoint_id)
        paginator = CursorPagination()
        rows = WebhookDelivery.objects.for_tenant(request.tenant).filter(endpoint=endpoint)
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(DeliverySerializer(page, many=True).data)
