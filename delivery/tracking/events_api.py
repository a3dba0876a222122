"""POST /api/v1/events: the tenant's systems report engagement (`kind`: conversions, form submissions,
page views) or a named event (`type` with its `id` and `data`: lab_result.ready, appointment.booked)
that starts, wakes or completes journeys. A named event's id makes a retry harmless."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from contacts.addresses import validate_address
from contacts.selectors import contact_find
from healthmail.actors import Actor
from healthmail.api.idempotency import idempotent

from .events import REPORTABLE, engagement_report, named_event_report


class EventExternalIdSerializer(serializers.Serializer):
    system = serializers.CharField(max_length=32)
    id = serializers.CharField(max_length=200)


class EventSerializer(serializers.Serializer):
    contact_id = serializers.UUIDField(required=False)
    external_id = EventExternalIdSerializer(required=False)
    email = serializers.EmailField(required=False, validators=[validate_address])
    kind = serializers.ChoiceField(choices=[str(kind) for kind in REPORTABLE], required=False)
    type = serializers.CharField(
        required=False, max_length=64, help_text="A named event, e.g. lab_result.ready."
    )
    id = serializers.CharField(required=False, max_length=100, help_text="Your system's id of a named event.")
    # Fields named like Serializer.data and Field.label: DRF's metaclass takes them off the class.
    data = serializers.DictField(  # type: ignore[assignment]
        required=False, help_text="Values of a named event (scalars only)."
    )
    label = serializers.CharField(required=False, allow_blank=True, max_length=64)  # type: ignore[assignment]
    occurred_at = serializers.DateTimeField(required=False)
    message_id = serializers.UUIDField(required=False)

    def validate(self, data):
        named = [key for key in ("contact_id", "external_id", "email") if key in data]
        if len(named) != 1:
            raise serializers.ValidationError(
                "Name the contact with exactly one of contact_id, external_id, email."
            )
        if ("kind" in data) == ("type" in data):
            raise serializers.ValidationError("Give either kind (engagement) or type (a named event).")
        if "type" in data and not data.get("id"):
            raise serializers.ValidationError({"id": "A named event needs your system's id for it."})
        return data


class EventResponseSerializer(serializers.Serializer):
    id = serializers.CharField()
    kind = serializers.CharField(required=False)
    type = serializers.CharField(required=False)
    duplicate = serializers.BooleanField(required=False)


class EventCollection(APIView):
    required_scopes = {"POST": ["events:write"]}
    serializer_class = EventSerializer

    @extend_schema(
        operation_id="events_create",
        request=EventSerializer,
        responses={
            201: OpenApiResponse(EventResponseSerializer, description="An engagement event, recorded."),
            202: OpenApiResponse(EventResponseSerializer, description="A named event, accepted."),
            200: OpenApiResponse(
                EventResponseSerializer, description="A named event whose id was received before."
            ),
            404: OpenApiResponse(description="No live contact matches the one named."),
        },
        tags=["events"],
    )
    @idempotent
    def post(self, request):
        incoming = EventSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        external = data.get("external_id") or {}
        contact = contact_find(
            tenant=request.auth.tenant,
            contact_id=data.get("contact_id"),
            external_system=external.get("system", ""),
            external_id=external.get("id", ""),
            email=data.get("email", ""),
        )
        if "type" in data:
            receipt = named_event_report(
                tenant=request.auth.tenant,
                actor=Actor.for_api_key(request.auth),
                contact=contact,
                event_type=data["type"],
                event_id=data["id"],
                data=data.get("data"),
                occurred_at=data.get("occurred_at"),
            )
            body = {"id": receipt.event_id, "type": receipt.type, "duplicate": receipt.duplicate}
            return Response(
                body, status=status.HTTP_200_OK if receipt.duplicate else status.HTTP_202_ACCEPTED
            )
        event = engagement_report(
            tenant=request.auth.tenant,
            actor=Actor.for_api_key(request.auth),
            contact=contact,
            kind=data["kind"],
            label=data.get("label", ""),
            occurred_at=data.get("occurred_at"),
            message_id=data.get("message_id"),
        )
        return Response({"id": event.pk, "kind": event.kind}, status=status.HTTP_201_CREATED)
