"""Webhook endpoints over the API (scope webhooks:manage). The signing secret is returned once, at
creation. Another tenant's endpoint id is simply not found."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from healthmail.actors import Actor
from healthmail.api.idempotency import idempotent
from healthmail.api.pagination import CursorPagination
from healthmail.errors import NotFound

from ..models import WebhookDelivery, WebhookEndpoint
from . import services

SCOPE = ["webhooks:manage"]


class EndpointInSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=2000)
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(services.EVENT_TYPES)), min_length=1, max_length=20
    )
    description = serializers.CharField(required=False, allow_blank=True, max_length=200)


class EndpointPatchSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=2000, required=False)
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(services.EVENT_TYPES)),
        min_length=1,
        max_length=20,
        required=False,
    )
    description = serializers.CharField(required=False, allow_blank=True, max_length=200)
    active = serializers.BooleanField(required=False)


class RotateInSerializer(serializers.Serializer):
    grace_seconds = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=services.MAX_ROTATION_GRACE_SECONDS,
        default=services.ROTATION_GRACE_SECONDS,
        help_text="How long the old secret keeps signing beside the new one (0: stop at once).",
    )


class RotatedSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="The new signing secret, shown only in this answer.")
    previous_secret_until = serializers.DateTimeField(allow_null=True)


class EndpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "description", "event_types", "active", "created_at"]


class EndpointCreatedSerializer(EndpointSerializer):
    secret = serializers.CharField(help_text="The signing secret, shown only in this answer.")

    class Meta(EndpointSerializer.Meta):
        fields = [*EndpointSerializer.Meta.fields, "secret"]


class EventSourceSerializer(serializers.Serializer):
    type = serializers.CharField(
        help_text="What sent the message: campaign, api (transactional API), journey, portal, "
        "authorization_copy, patient_mail (codes, confirmations, reminders the platform sends)."
    )
    id = serializers.CharField(help_text="The source's id (a campaign id; for patient_mail, its kind).")


class WebhookEventSerializer(serializers.Serializer):
    """The JSON body POSTed to an endpoint (and kept as a delivery's `payload`): ids, states and times,
    never PHI. Signed in `X-HealthMail-Signature`; receivers de-duplicate on `event_id`."""

    event = serializers.ChoiceField(choices=sorted(services.EVENT_TYPES.items()))
    event_id = serializers.UUIDField(help_text="Stable across redeliveries of the same event.")
    delivery_id = serializers.UUIDField(help_text="This attempt series; a redelivery gets a new one.")
    message_id = serializers.UUIDField(allow_null=True, help_text="The message; null for webhook.test.")
    rfc_message_id = serializers.CharField(required=False, help_text="The Message-ID header sent.")
    state = serializers.CharField(required=False, help_text="The message's state after the event.")
    reason = serializers.CharField(
        required=False, allow_blank=True, help_text="Why (a gate code, an SMTP status), without PHI."
    )
    stream = serializers.ChoiceField(choices=["transactional", "marketing"], required=False)
    # A field named like Field.source: DRF's metaclass takes declared fields off the class.
    source = EventSourceSerializer(required=False)  # type: ignore[assignment]
    occurred_at = serializers.DateTimeField()


@extend_schema_field(WebhookEventSerializer)
class EventPayloadField(serializers.JSONField):
    """The stored payload, as sent (a JSON object documented by WebhookEventSerializer)."""


class DeliverySerializer(serializers.ModelSerializer):
    payload = EventPayloadField(read_only=True)

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
    pagination_class = CursorPagination

    @extend_schema(operation_id="webhooks_list", responses=EndpointSerializer(many=True), tags=["webhooks"])
    def get(self, request):
        paginator = self.pagination_class()
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
    required_scopes = {"GET": SCOPE, "PATCH": SCOPE, "DELETE": SCOPE}

    @extend_schema(
        operation_id="webhooks_partial_update",
        request=EndpointPatchSerializer,
        responses=EndpointSerializer,
        tags=["webhooks"],
    )
    def patch(self, request, endpoint_id):
        endpoint = services.endpoint_get(tenant=request.tenant, endpoint_id=endpoint_id)
        incoming = EndpointPatchSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        endpoint = services.endpoint_update(
            tenant=request.tenant, actor=_actor(request), endpoint=endpoint, **incoming.validated_data
        )
        return Response(EndpointSerializer(endpoint).data)

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
    pagination_class = CursorPagination

    @extend_schema(
        operation_id="webhooks_deliveries_list", responses=DeliverySerializer(many=True), tags=["webhooks"]
    )
    def get(self, request, endpoint_id):
        endpoint = services.endpoint_get(tenant=request.tenant, endpoint_id=endpoint_id)
        paginator = self.pagination_class()
        rows = WebhookDelivery.objects.for_tenant(request.tenant).filter(endpoint=endpoint)
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(DeliverySerializer(page, many=True).data)


class EndpointRotateSecret(APIView):
    required_scopes = {"POST": SCOPE}

    @extend_schema(
        operation_id="webhooks_rotate_secret",
        request=RotateInSerializer,
        responses=RotatedSerializer,
        tags=["webhooks"],
        description="A new signing secret. During the grace period every delivery carries two "
        "signatures (`v1=<new>, v1=<old>`), so receivers can switch without losing events.",
    )
    @idempotent
    def post(self, request, endpoint_id):
        endpoint = services.endpoint_get(tenant=request.tenant, endpoint_id=endpoint_id)
        incoming = RotateInSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        secret = services.endpoint_rotate_secret(
            tenant=request.tenant,
            actor=_actor(request),
            endpoint=endpoint,
            grace_seconds=incoming.validated_data["grace_seconds"],
        )
        return Response({"secret": secret, "previous_secret_until": endpoint.previous_secret_until})


class EndpointPing(APIView):
    required_scopes = {"POST": SCOPE}

    @extend_schema(
        operation_id="webhooks_ping",
        request=None,
        responses={202: DeliverySerializer},
        tags=["webhooks"],
        description="Queue a signed `webhook.test` event to this endpoint.",
    )
    def post(self, request, endpoint_id):
        endpoint = services.endpoint_get(tenant=request.tenant, endpoint_id=endpoint_id)
        delivery = services.webhook_test_send(tenant=request.tenant, actor=_actor(request), endpoint=endpoint)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class DeliveryRedeliver(APIView):
    required_scopes = {"POST": SCOPE}

    @extend_schema(
        operation_id="webhooks_deliveries_redeliver",
        request=None,
        responses={202: DeliverySerializer},
        tags=["webhooks"],
        description="Send an earlier event again: same payload and `event_id`, a new delivery id.",
    )
    def post(self, request, delivery_id):
        original = WebhookDelivery.objects.for_tenant(request.tenant).filter(pk=delivery_id).first()
        if original is None:
            raise NotFound("No such webhook delivery.", code="webhook_delivery_not_found")
        delivery = services.webhook_redeliver(
            tenant=request.tenant, actor=_actor(request), endpoint=original.endpoint, delivery_id=original.pk
        )
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
