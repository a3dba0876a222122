"""Consent API for EHR/CRM systems: record a consent change with its evidence, add a suppression,
record a waiver of encryption the patient gave on paper or by phone.
Thin: validate, find the contact in the key's tenant (another tenant's id is simply not found), call
one service."""

from __future__ import annotations

import base64
import binascii

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.phi import phi_access
from contacts.addresses import validate_address
from contacts.models import Contact
from healthmail.actors import Actor
from healthmail.api.idempotency import idempotent
from healthmail.api.serializers import ProblemSerializer
from healthmail.errors import NotFound

from . import selectors, services, suppressions, waivers
from .models import ConsentEvent, ConsentText, Purpose, Source, Suppression

_SOURCES = [s for s in Source.values if s != Source.SYSTEM]


class ConsentEventInSerializer(serializers.Serializer):
    contact_id = serializers.UUIDField()
    topic = serializers.SlugField(max_length=50, help_text="Topic key, e.g. `marketing_newsletters`.")
    action = serializers.ChoiceField(choices=["grant", "revoke"])
    # A field named like Field.source: DRF's metaclass takes declared fields off the class.
    source = serializers.ChoiceField(  # type: ignore[assignment]
        choices=_SOURCES, help_text="Where the evidence comes from."
    )
    occurred_at = serializers.DateTimeField(
        required=False, help_text="When the person decided (default: now)."
    )
    ip_address = serializers.IPAddressField(required=False, allow_null=True)
    user_agent = serializers.CharField(required=False, allow_blank=True, max_length=400)
    text_version_id = serializers.UUIDField(
        required=False, allow_null=True, help_text="The consent wording version shown to the person."
    )


class ConsentEventOutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    contact_id = serializers.UUIDField()
    topic = serializers.CharField()
    kind = serializers.ChoiceField(choices=ConsentEvent.Kind.choices)
    source = serializers.CharField()  # type: ignore[assignment]  # a field, not Field.source (above)
    occurred_at = serializers.DateTimeField()


class SuppressionInSerializer(serializers.Serializer):
    contact_id = serializers.UUIDField(required=False, allow_null=True)
    email = serializers.EmailField(
        required=False,
        allow_blank=True,
        validators=[validate_address],
        help_text="Stored only as a keyed hash.",
    )
    reason = serializers.ChoiceField(choices=Suppression.Reason.choices)
    note = serializers.CharField(
        required=False, allow_blank=True, max_length=200, help_text="A reference; no PHI."
    )

    def validate(self, data):
        if not data.get("contact_id") and not data.get("email"):
            raise serializers.ValidationError("Give `contact_id` or `email`.")
        return data


class SuppressionOutSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    contact_id = serializers.UUIDField(
        allow_null=True, help_text="The contact given; for an address, only to a key with contacts:phi."
    )
    reason = serializers.CharField()
    created_at = serializers.DateTimeField(
        allow_null=True, help_text="For an address, only to a key with contacts:phi."
    )


def _reads_phi(request) -> bool:
    return "contacts:phi" in request.auth.scopes


class SuppressionRemoveInSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200, help_text="Why the entry goes (kept in the audit trail).")


class SuppressionRemovedSerializer(SuppressionOutSerializer):
    removed_at = serializers.DateTimeField()


class TopicStateSerializer(serializers.Serializer):
    topic = serializers.CharField(help_text="Topic key, e.g. `marketing_newsletters`.")
    status = serializers.CharField(help_text="`granted`, `revoked`, or empty: never asked.")


class ContactConsentSerializer(serializers.Serializer):
    contact_id = serializers.UUIDField()
    topics = TopicStateSerializer(many=True)
    suppressions = SuppressionOutSerializer(
        many=True, help_text="Active entries for the contact or its address."
    )


def _contact(request, contact_id) -> Contact:
    tenant = request.auth.tenant
    contact = Contact.objects.for_tenant(tenant).filter(pk=contact_id, deleted_at__isnull=True).first()
    if contact is None:
        raise NotFound("No such contact.", code="contact_not_found")
    return contact


_NOT_FOUND = OpenApiResponse(
    ProblemSerializer, description="No such contact (or topic) in your organization."
)


class ConsentEventCreate(APIView):
    """Record that a person granted or revoked consent to a topic, with the evidence."""

    required_scopes = {"POST": ["consent:write"]}

    @extend_schema(
        operation_id="consent_event_create",
        request=ConsentEventInSerializer,
        responses={201: ConsentEventOutSerializer, 404: _NOT_FOUND},
        tags=["consent"],
    )
    @idempotent
    def post(self, request):
        incoming = ConsentEventInSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        tenant = request.auth.tenant
        contact = _contact(request, data["contact_id"])
        topic = services.topic_by_key(tenant=tenant, key=data["topic"])
        text = None
        if data.get("text_version_id"):
            text = ConsentText.objects.for_tenant(tenant).filter(pk=data["text_version_id"]).first()
            if text is None:
                raise NotFound("No such consent text version.", code="text_not_found")
        evidence = services.Evidence(
            source=data["source"],
            actor=Actor.for_api_key(request.auth),
            occurred_at=data.get("occurred_at"),
            ip_address=data.get("ip_address"),
            user_agent=data.get("user_agent", ""),
            text=text,
        )
        kind = ConsentEvent.Kind.GRANTED if data["action"] == "grant" else ConsentEvent.Kind.REVOKED
        event = services.consent_record(
            tenant=tenant, contact=contact, topic=topic, kind=kind, evidence=evidence
        )
        body = {
            "id": event.pk,
            "contact_id": contact.pk,
            "topic": topic.key,
            "kind": event.kind,
            "source": event.source,
            "occurred_at": event.occurred_at,
        }
        return Response(ConsentEventOutSerializer(body).data, status=201)


class SuppressionCreate(APIView):
    """Add a contact or an address to the suppression list (e.g. a legal request received by the EHR)."""

    required_scopes = {"POST": ["consent:write"]}

    @extend_schema(
        operation_id="suppression_create",
        request=SuppressionInSerializer,
        responses={201: SuppressionOutSerializer, 404: _NOT_FOUND},
        tags=["consent"],
    )
    @idempotent
    def post(self, request):
        incoming = SuppressionInSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        contact = _contact(request, data["contact_id"]) if data.get("contact_id") else None
        entry = suppressions.suppression_add(
            tenant=request.auth.tenant,
            actor=Actor.for_api_key(request.auth),
            reason=data["reason"],
            contact=contact,
            email=data.get("email") or "",
            note=data.get("note", ""),
        )
        body = _suppression_body(entry)
        if contact is None and not _reads_phi(request):
            # Given an address only, the contact it belongs to (or none) and the date of an earlier
            # entry would tell a key that may not read PHI whether the address is a patient's.
            body.update(contact_id=None, created_at=None)
        return Response(SuppressionOutSerializer(body).data, status=201)


def _suppression_body(entry) -> dict:
    return {
        "id": entry.pk,
        "contact_id": entry.contact_id,
        "reason": entry.reason,
        "created_at": entry.created_at,
    }


class SuppressionRemove(APIView):
    """Take an entry off the suppression list, with the reason (e.g. the person asked for mail again)."""

    required_scopes = {"POST": ["consent:write"]}

    @extend_schema(
        operation_id="suppression_remove",
        request=SuppressionRemoveInSerializer,
        responses={
            200: SuppressionRemovedSerializer,
            404: OpenApiResponse(description="No such suppression in your organization."),
            409: OpenApiResponse(description="The entry was already removed."),
        },
        tags=["consent"],
    )
    @idempotent
    def post(self, request, suppression_id):
        entry = suppressions.suppression_get(tenant=request.auth.tenant, suppression_id=suppression_id)
        incoming = SuppressionRemoveInSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        entry = suppressions.suppression_remove(
            tenant=request.auth.tenant,
            actor=Actor.for_api_key(request.auth),
            suppression=entry,
            reason=incoming.validated_data["reason"],
        )
        body = {**_suppression_body(entry), "removed_at": entry.removed_at}
        if not _reads_phi(request):
            # As when it was added by address: the answer must not name the patient behind it.
            body.update(contact_id=None, created_at=None)
        return Response(SuppressionRemovedSerializer(body).data)


class ContactConsent(APIView):
    """Where a contact stands now: consent per topic and active suppressions."""

    required_scopes = {"GET": ["consent:read"]}

    @extend_schema(
        operation_id="contact_consent_retrieve",
        responses={200: ContactConsentSerializer, 404: _NOT_FOUND},
        tags=["consent"],
        description="A person's consent choices are PHI: every read is an audited PHI access.",
    )
    def get(self, request, contact_id):
        tenant = request.auth.tenant
        contact = _contact(request, contact_id)
        with phi_access(
            actor=Actor.for_api_key(request.auth),
            tenant=tenant,
            objects=[contact],
            fields=["consent_state", "suppressions"],
            purpose="api consent state",
        ):
            body = {
                "contact_id": contact.pk,
                "topics": [
                    {"topic": topic.key, "status": status}
                    for topic, status in selectors.contact_topic_states(tenant=tenant, contact=contact)
                ],
                "suppressions": [
                    _suppression_body(entry)
                    for entry in suppressions.suppressions_active(tenant=tenant, contact=contact)
                ],
            }
            return Response(ContactConsentSerializer(body).data)


class WaiverDocumentSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    content_type = serializers.ChoiceField(choices=sorted(waivers.DOCUMENT_TYPES))
    content = serializers.CharField(help_text="The scanned file, base64; stored encrypted.")

    def validate_content(self, value: str) -> bytes:
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise serializers.ValidationError("Not valid base64.") from None


class WaiverInSerializer(serializers.Serializer):
    contact_id = serializers.UUIDField()
    purposes = serializers.ListField(
        child=serializers.ChoiceField(choices=Purpose.choices),
        allow_empty=False,
        help_text="Which kinds of email may go without encryption.",
    )
    source = serializers.ChoiceField(  # type: ignore[assignment]  # a field, not Field.source (above)
        choices=[Source.PAPER, Source.VERBAL], help_text="How the patient gave it: signed paper or phone."
    )
    received_on = serializers.DateField(help_text="When the patient gave it.")
    document = WaiverDocumentSerializer(required=False, help_text="The scanned signed paper, if any.")


class WaiverOutSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    contact_id = serializers.UUIDField()
    purposes = serializers.ListField(child=serializers.CharField())
    status = serializers.CharField()
    requested_at = serializers.DateTimeField()


class WaiverCreate(APIView):
    """Record a patient's request for email without encryption, given on paper or by phone after the
    risk was explained. The API key is recorded as who recorded it; the tenant must allow waivers."""

    required_scopes = {"POST": ["consent:write"]}

    @extend_schema(
        operation_id="consent_waiver_create",
        request=WaiverInSerializer,
        responses={201: WaiverOutSerializer, 404: _NOT_FOUND},
        tags=["consent"],
    )
    @idempotent
    def post(self, request):
        incoming = WaiverInSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        contact = _contact(request, data["contact_id"])
        document = data.get("document")
        waiver = waivers.waiver_record(
            tenant=request.auth.tenant,
            actor=Actor.for_api_key(request.auth),
            contact=contact,
            purposes=data["purposes"],
            source=data["source"],
            received_on=data["received_on"],
            document=waivers.ScannedDocument(**document) if document else None,
        )
        body = {
            "id": waiver.pk,
            "contact_id": contact.pk,
            "purposes": waiver.purposes,
            "status": waiver.status,
            "requested_at": waiver.requested_at,
        }
        return Response(WaiverOutSerializer(body).data, status=201)
