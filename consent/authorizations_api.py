"""HIPAA authorizations API for EHR and CRM systems: record a form signed elsewhere (paper,
electronic, in the EHR) with its scan, read a contact's authorizations and where they stand, record a
revocation or the end event. Thin: parse, find the object in the key's tenant (another tenant's id
is simply not found), call one service, answer.

Write answers carry ids and outcomes only (idempotent replays are stored unencrypted); reads carry
dates about a person and are audited PHI accesses.
"""

from __future__ import annotations

import base64
import binascii
import uuid

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.phi import phi_access
from contacts.models import Contact
from healthmail.actors import Actor
from healthmail.api.idempotency import idempotent
from healthmail.api.serializers import ProblemSerializer
from healthmail.errors import ApplicationError, NotFound

from . import authorization_records as records
from . import authorization_rules as rules
from . import authorizations, selectors
from .authorizations import REVOCATION_RECEIVED
from .models import (
    AUTHORIZATION_TEXT_ELEMENTS,
    Authorization,
    AuthorizationKind,
    AuthorizationText,
    FormSource,
    Initiator,
    Source,
)
from .services import Evidence

_EVIDENCE_SOURCE = {
    FormSource.PAPER: Source.PAPER,
    FormSource.ELECTRONIC: Source.API,
    FormSource.EHR: Source.API,
}


class DocumentSerializer(serializers.Serializer):
    """The words of the signed form, when it is not a version published here."""

    title = serializers.CharField(max_length=200, required=False, allow_blank=True)
    remuneration_involved = serializers.BooleanField(default=False)
    remuneration_statement = serializers.CharField(required=False, allow_blank=True, default="")

    def get_fields(self):
        fields = super().get_fields()
        for name, label in AUTHORIZATION_TEXT_ELEMENTS.items():
            fields[name] = serializers.CharField(
                required=False, allow_blank=True, default="", help_text=label
            )
        return fields


class SignerSerializer(serializers.Serializer):
    name = serializers.CharField(allow_blank=True, max_length=200, help_text="The name as signed.")
    signed_on = serializers.DateField(help_text="The date written next to the signature (today or earlier).")
    by_representative = serializers.BooleanField(default=False)
    representative_authority = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="e.g. parent of a minor, court-appointed guardian.",
    )


class AttachmentSerializer(serializers.Serializer):
    content_type = serializers.ChoiceField(choices=sorted(records.ATTACHMENT_TYPES))
    content_base64 = serializers.CharField(help_text="The scanned signed form, base64.")


class AuthorizationInSerializer(serializers.Serializer):
    contact_id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=[AuthorizationKind.MARKETING, AuthorizationKind.RESEARCH])
    text_id = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text="A document version of this organization (instead of `document`).",
    )
    document = DocumentSerializer(required=False, help_text="The full text of the signed form.")
    signer = SignerSerializer()
    expires_on = serializers.DateField(
        required=False, allow_null=True, help_text="The last day the authorization allows anything."
    )
    expiry_event = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=300, help_text="Or the event that ends it."
    )
    initiated_by = serializers.ChoiceField(choices=Initiator.choices, default=Initiator.COVERED_ENTITY)
    combined_with = serializers.ListField(
        child=serializers.ChoiceField(choices=rules.Combined.ALL), required=False, default=list
    )
    conditioned_on = serializers.ListField(
        child=serializers.ChoiceField(choices=rules.CONDITIONABLE), required=False, default=list
    )
    # A field named like Field.source: DRF's metaclass takes declared fields off the class.
    source = serializers.ChoiceField(  # type: ignore[assignment]
        choices=FormSource.choices, help_text="Where the signed form lives."
    )
    attachment = AttachmentSerializer(required=False)
    external_reference = serializers.CharField(
        required=False,
        max_length=64,
        help_text="Your id for this form: recording it twice returns the first.",
    )

    def validate(self, data):
        if bool(data.get("text_id")) == bool(data.get("document")):
            raise serializers.ValidationError("Give either `text_id` or `document`.")
        return data


class RecordedSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    contact_id = serializers.UUIDField()
    kind = serializers.CharField()
    status = serializers.CharField()
    created = serializers.BooleanField()


class DefectSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=sorted(rules.DEFECTS))
    paragraph = serializers.CharField()
    message = serializers.CharField()


class StandingSerializer(serializers.Serializer):
    allowed = serializers.BooleanField()
    code = serializers.CharField(
        help_text="no_authorization, authorization_expired, authorization_revoked, …"
    )
    reason = serializers.CharField()
    defects = serializers.ListField(child=serializers.CharField())
    on = serializers.DateField(allow_null=True)


class AuthorizationOutSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    contact_id = serializers.UUIDField()
    kind = serializers.CharField()
    status = serializers.CharField()
    text_id = serializers.UUIDField()
    signed_on = serializers.DateField()
    expires_on = serializers.DateField(allow_null=True)
    expiry_event = serializers.CharField()
    expiry_event_occurred_on = serializers.DateField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    by_representative = serializers.BooleanField()
    initiated_by = serializers.CharField()
    form_source = serializers.CharField()
    recorded_at = serializers.DateTimeField()
    recorded_by = serializers.CharField()
    attachments = serializers.IntegerField()
    defects = DefectSerializer(many=True, help_text="Every defect of the form today; empty when valid.")


class ContactAuthorizationsSerializer(serializers.Serializer):
    marketing = StandingSerializer()
    research = StandingSerializer()
    authorizations = AuthorizationOutSerializer(many=True)


class RevokeInSerializer(serializers.Serializer):
    revoked_on = serializers.DateField(
        required=False, help_text="The day the written revocation was received (default: today)."
    )
    # No default: "" is not one of the choices, and a schema that says so breaks generated clients.
    received_via = serializers.ChoiceField(choices=REVOCATION_RECEIVED, required=False)


class EndEventInSerializer(serializers.Serializer):
    occurred_on = serializers.DateField(
        required=False, help_text="The day the expiration event occurred (default: today)."
    )


class OutcomeSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()
    changed = serializers.BooleanField()


_NOT_FOUND = OpenApiResponse(ProblemSerializer, description="No such contact, document or authorization.")
_DEFECTIVE = OpenApiResponse(
    ProblemSerializer,
    description="`authorization_defective`: `defects` lists every defect (code, paragraph, message).",
)


def _actor(request) -> Actor:
    return Actor.for_api_key(request.auth)


def _contact(request, contact_id) -> Contact:
    contact = (
        Contact.objects.for_tenant(request.tenant).filter(pk=contact_id, deleted_at__isnull=True).first()
    )
    if contact is None:
        raise NotFound("No such contact.", code="contact_not_found")
    return contact


def _authorization(request, authorization_id) -> Authorization:
    found = (
        Authorization.objects.for_tenant(request.tenant)
        .filter(pk=authorization_id)
        .select_related("text", "tenant")
        .first()
    )
    if found is None:
        raise NotFound("No such authorization.", code="authorization_not_found")
    return found


def _attachment(data: dict | None) -> records.Attachment | None:
    if not data:
        return None
    try:
        content = base64.b64decode(data["content_base64"], validate=True)
    except (binascii.Error, ValueError):
        raise ApplicationError("The attachment is not valid base64.", code="attachment_invalid") from None
    return records.Attachment(content=content, content_type=data["content_type"])


def _text(request, data: dict) -> AuthorizationText:
    if data.get("text_id"):
        text = AuthorizationText.objects.for_tenant(request.tenant).filter(pk=data["text_id"]).first()
        if text is None or text.kind != data["kind"]:
            raise NotFound("No such document of this kind.", code="text_not_found")
        return text
    document = dict(data["document"])
    return records.authorization_text_from_elements(
        tenant=request.tenant, kind=data["kind"], title=document.pop("title", ""), elements=document
    )


class AuthorizationCollection(APIView):
    """Record a signed authorization (e.g. a paper form signed last month, with its scan)."""

    required_scopes = {"POST": ["consent:write"]}

    @extend_schema(
        operation_id="authorizations_record",
        request=AuthorizationInSerializer,
        responses={201: RecordedSerializer, 200: RecordedSerializer, 404: _NOT_FOUND, 422: _DEFECTIVE},
        tags=["authorizations"],
        description="Validates the signed form against 45 CFR 164.508 and records it, or refuses it "
        "with every defect. The signature date may be in the past; the recorder and the scan are kept.",
    )
    @idempotent
    def post(self, request):
        incoming = AuthorizationInSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        contact = _contact(request, data["contact_id"])
        signer = data["signer"]
        authorization, created = records.authorization_record(
            tenant=request.tenant,
            contact=contact,
            text=_text(request, data),
            signature=records.Signature(
                signer_name=signer["name"],
                signed_on=signer["signed_on"],
                by_representative=signer["by_representative"],
                representative_authority=signer["representative_authority"],
            ),
            circumstances=records.Circumstances(
                initiated_by=data["initiated_by"],
                combined_with=frozenset(data["combined_with"]),
                conditioned_on=frozenset(data["conditioned_on"]),
                form_source=data["source"],
                expires_on=data.get("expires_on"),
                expiry_event=data["expiry_event"],
            ),
            evidence=Evidence(source=_EVIDENCE_SOURCE[data["source"]], actor=_actor(request)),
            submission_key=f"api:{data.get('external_reference') or uuid.uuid4().hex}"[:64],
            attachment=_attachment(data.get("attachment")),
        )
        body = {
            "id": authorization.pk,
            "contact_id": contact.pk,
            "kind": authorization.kind,
            "status": authorization.status,
            "created": created,
        }
        return Response(RecordedSerializer(body).data, status=201 if created else 200)


def _standing_body(found) -> dict:
    if found is None:
        reason = "A valid authorization is in force."
        return {"allowed": True, "code": "authorization_valid", "reason": reason, "defects": [], "on": None}
    return {
        "allowed": False,
        "code": found.code,
        "reason": found.reason,
        "defects": list(found.defects),
        "on": found.on,
    }


def _out(authorization: Authorization) -> dict:
    form = records.authorization_form(authorization=authorization)
    today = records.tenant_today(authorization.tenant)
    return {
        **{
            name: getattr(authorization, name)
            for name in AuthorizationOutSerializer().fields.keys()
            if name != "defects"
        },
        "attachments": authorization.attachments.count(),
        "defects": [d.as_dict() for d in rules.authorization_defects(form=form, today=today)],
    }


_PHI_FIELDS = [
    "signed_on",
    "expires_on",
    "expiry_event",
    "revoked_at",
    "signer_name",
    "representative_authority",
]


class ContactAuthorizations(APIView):
    """A contact's authorizations and where marketing and research with PHI stand now."""

    required_scopes = {"GET": ["consent:read"]}

    @extend_schema(
        operation_id="contact_authorizations_list",
        responses={200: ContactAuthorizationsSerializer, 404: _NOT_FOUND},
        tags=["authorizations"],
    )
    def get(self, request, contact_id):
        contact = _contact(request, contact_id)
        found = list(
            Authorization.objects.for_tenant(request.tenant)
            .filter(contact=contact)
            .select_related("text", "tenant")
        )
        # Where a person's authorizations stand is about them even when they signed none: the read is
        # audited either way (on the contact when there is no authorization to name).
        with phi_access(
            actor=_actor(request),
            tenant=request.tenant,
            objects=found or [contact],
            fields=_PHI_FIELDS if found else ["authorization standing"],
            purpose="api authorizations",
        ):
            body = {
                kind: _standing_body(
                    selectors.contact_authorization_standing(
                        tenant=request.tenant, contact=contact, kind=kind
                    )
                )
                for kind in (AuthorizationKind.MARKETING, AuthorizationKind.RESEARCH)
            }
            body["authorizations"] = [_out(a) for a in found]
        return Response(ContactAuthorizationsSerializer(body).data)


class AuthorizationItem(APIView):
    required_scopes = {"GET": ["consent:read"]}

    @extend_schema(
        operation_id="authorizations_retrieve",
        responses={200: AuthorizationOutSerializer, 404: _NOT_FOUND},
        tags=["authorizations"],
    )
    def get(self, request, authorization_id):
        authorization = _authorization(request, authorization_id)
        with phi_access(
            actor=_actor(request),
            tenant=request.tenant,
            objects=[authorization],
            fields=_PHI_FIELDS,
            purpose="api authorization",
        ):
            return Response(AuthorizationOutSerializer(_out(authorization)).data)


class AuthorizationRevoke(APIView):
    """Record a written revocation received on a given day (45 CFR 164.508(b)(5))."""

    required_scopes = {"POST": ["consent:write"]}

    @extend_schema(
        operation_id="authorizations_revoke",
        request=RevokeInSerializer,
        responses={200: OutcomeSerializer, 404: _NOT_FOUND},
        tags=["authorizations"],
    )
    @idempotent
    def post(self, request, authorization_id):
        authorization = _authorization(request, authorization_id)
        incoming = RevokeInSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        data.setdefault("revoked_on", records.tenant_today(request.tenant))
        if data["revoked_on"] > records.tenant_today(request.tenant):
            raise ApplicationError("A revocation cannot be dated in the future.", code="revoked_on_invalid")
        changed = authorizations.authorization_revoke(
            tenant=request.tenant,
            authorization=authorization,
            evidence=Evidence(
                source=Source.API,
                actor=_actor(request),
                occurred_at=records.reported_day_instant(request.tenant, data["revoked_on"]),
            ),
            received_via=data.get("received_via", ""),
        )
        authorization.refresh_from_db(fields=["status"])
        return Response(
            OutcomeSerializer(
                {"id": authorization.pk, "status": authorization.status, "changed": changed}
            ).data
        )


class AuthorizationEndEvent(APIView):
    """The expiration event written on the form occurred: the authorization ends that day."""

    required_scopes = {"POST": ["consent:write"]}

    @extend_schema(
        operation_id="authorizations_end_event",
        request=EndEventInSerializer,
        responses={200: OutcomeSerializer, 404: _NOT_FOUND},
        tags=["authorizations"],
    )
    @idempotent
    def post(self, request, authorization_id):
        authorization = _authorization(request, authorization_id)
        incoming = EndEventInSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        changed = authorizations.authorization_end_event_record(
            tenant=request.tenant,
            authorization=authorization,
            occurred_on=incoming.validated_data.get("occurred_on") or records.tenant_today(request.tenant),
            evidence=Evidence(source=Source.API, actor=_actor(request)),
        )
        authorization.refresh_from_db(fields=["status"])
        return Response(
            OutcomeSerializer(
                {"id": authorization.pk, "status": authorization.status, "changed": changed}
            ).data
        )
