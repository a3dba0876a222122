"""FHIR R4 endpoints under /api/fhir/r4/. Thin: validate the resource with fhir.resources, map it,
call the domain's service or selector, answer FHIR JSON; every error is an OperationOutcome.

Authentication and tenancy are the API's (static keys or SMART access tokens, which are keys too),
and each view declares the scopes of ours it needs, like every REST view. These views are not in
the OpenAPI schema: a FHIR client reads the CapabilityStatement (`metadata`) instead.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

import pydantic
from fhir.resources.R4B.communicationrequest import CommunicationRequest
from fhir.resources.R4B.patient import Patient
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.phi import phi_access
from campaigns.transactional import message_get
from contacts import selectors as contact_selectors
from contacts import services as contact_services
from delivery.models import MessageAttempt
from healthmail.actors import Actor
from healthmail.api.authentication import ApiRequest
from healthmail.api.oauth import token_endpoint_url
from healthmail.errors import ApplicationError, NotFound
from healthmail.tenants.context import tenant_context

from .capability import capability_statement, smart_configuration
from .communications import (
    communication_request_accept,
    communication_request_resource,
    communication_resource,
)
from .middleware import FHIR_BASE
from .models import CommunicationRequestRecord
from .outcomes import (
    AlwaysFhirJSON,
    FhirJSONParser,
    FhirJSONRenderer,
    PlainJSONParser,
    fhir_exception_handler,
    information,
)
from .patients import REPLACED, PatientInvalid, patient_input, patient_resource
from .services import identifier_system_name

SOURCE = "fhir"
# A contact field the service refused → the Patient element it came from.
_ELEMENTS = {
    "email": "telecom",
    "phone": "telecom",
    "first_name": "name.given",
    "last_name": "name.family",
    "birth_date": "birthDate",
    "postal_address": "address",
    "external_ids": "identifier",
    "demographics.gender": "gender",
    "demographics.preferred_language": "communication",
}


class FhirView(APIView):
    schema = None  # FHIR's contract is the CapabilityStatement, not the OpenAPI schema
    renderer_classes = [FhirJSONRenderer]
    parser_classes = [FhirJSONParser, PlainJSONParser]
    content_negotiation_class = AlwaysFhirJSON

    def get_exception_handler(self):
        return fhir_exception_handler


def _parse(model, data: Any):
    """The resource as a validated fhir.resources model, or 422 naming each invalid element."""
    name = model.get_resource_type()
    if not isinstance(data, dict) or data.get("resourceType") != name:
        raise exceptions.ValidationError({"resourceType": [f"must be {name}"]})
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as error:
        found: dict[str, list[str]] = {}
        for item in error.errors(include_input=False, include_url=False):
            path = ".".join(str(part) for part in item["loc"]) or "resource"
            found.setdefault(path, []).append(item["msg"])
        raise exceptions.ValidationError(found) from None


def _actor(request: ApiRequest) -> Actor:
    return Actor.for_api_key(request.auth)


def _reads_phi(request: ApiRequest) -> bool:
    return "contacts:phi" in request.auth.scopes


def _base(request: Request) -> str:
    return request.build_absolute_uri(FHIR_BASE)


def _bundle(request: Request, kind: str, resources: list[dict]) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "link": [{"relation": "self", "url": request.build_absolute_uri()}],
        "entry": [
            {"fullUrl": f"{_base(request)}{kind}/{r['id']}", "resource": r, "search": {"mode": "match"}}
            for r in resources
        ],
    }


def _search_params(request: Request, allowed: set[str]) -> dict[str, str]:
    given = {key: request.query_params.get(key, "") for key in request.query_params if key != "_format"}
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise exceptions.ValidationError(
            {name: ["is not a search parameter this server supports"] for name in unknown}
        )
    return given


class Metadata(FhirView):
    authentication_classes: list = []
    permission_classes: list = []

    def get(self, request):
        return Response(capability_statement(base_url=_base(request), token_url=token_endpoint_url(request)))


class SmartConfiguration(APIView):
    schema = None
    authentication_classes: list = []
    permission_classes: list = []

    def get(self, request):
        return Response(smart_configuration(token_url=token_endpoint_url(request)))


def _patient_record(request: ApiRequest, contact, purpose: str) -> dict:
    scope = contact_selectors.ReadScope(unmasked=_reads_phi(request), clinical=False, purpose=purpose)
    [record] = contact_selectors.contact_records(
        actor=_actor(request), tenant=request.tenant, contacts=[contact], scope=scope, detail=True
    )
    return patient_resource(tenant=request.tenant, record=record)


def _element(field: str) -> str:
    for name, element in _ELEMENTS.items():
        if field == name or field.startswith(f"{name}."):
            return element
    return field


class PatientType(FhirView):
    required_scopes = {"GET": ["contacts:read"], "POST": ["contacts:write"]}

    def get(self, request):
        params = _search_params(request, {"identifier", "email"})
        if len(params) != 1:
            raise exceptions.ValidationError(
                {"identifier": ["search by one identifier (system|value) or email"]}
            )
        [(name, value)] = params.items()
        if name == "identifier":
            system, bar, found = value.partition("|")
            if not bar or not system or not found:
                raise exceptions.ValidationError({"identifier": ["give system|value"]})
            system_name = identifier_system_name(tenant=request.tenant, uri=system, create=False)
            # An unregistered system names nobody; the search is still audited as a lookup.
            value = f"{system_name or 'fhir.unregistered'}:{found}"
        try:
            contact = contact_selectors.contact_lookup(
                tenant=request.tenant, actor=_actor(request), identifier=value, purpose="fhir patient search"
            )
        except NotFound:
            return Response(_bundle(request, "Patient", []))
        return Response(
            _bundle(request, "Patient", [_patient_record(request, contact, "fhir patient search")])
        )

    def post(self, request):
        patient = _parse(Patient, request.data)
        data = patient_input(tenant=request.tenant, patient=patient)
        result = contact_services.contact_upsert(
            tenant=request.tenant,
            actor=_actor(request),
            data=data,
            source=SOURCE,
            writer_reads_phi=_reads_phi(request),
        )
        return _patient_written(request, result)


def _patient_written(request: ApiRequest, result: contact_services.UpsertResult) -> Response:
    """The answer to a Patient create or update: the Patient as this writer may read it."""
    if result.status == contact_services.UpsertStatus.ERROR:
        errors: dict[str, list[str]] = {}
        for error in result.errors:
            errors.setdefault(_element(error.field), []).append(error.message)
        raise PatientInvalid(
            "Some elements are invalid; see the issues.",
            code="validation_failed",
            extra={"errors": errors},
        )
    if result.status == contact_services.UpsertStatus.ACCEPTED:
        # A writer without contacts:phi learns neither created vs updated nor the stored values.
        return Response(information("Accepted.", code="accepted"))
    status = 201 if result.created else 200
    headers = {"Location": f"{_base(request)}Patient/{result.contact_id}"}
    if "contacts:read" not in request.auth.scopes:
        return Response(
            information(result.status.capitalize() + ".", code=result.status), status, headers=headers
        )
    # Written (created or updated): the result names the contact.
    contact = contact_selectors.contact_get(
        tenant=request.tenant, contact_id=cast(uuid.UUID, result.contact_id)
    )
    return Response(_patient_record(request, contact, "fhir patient write answer"), status, headers=headers)


class IdMismatch(ApplicationError):
    status_code = 400
    title = "Resource id does not match the URL"


class VersionMismatch(ApplicationError):
    status_code = 412
    title = "Precondition failed"


class PatientInstance(FhirView):
    required_scopes = {"GET": ["contacts:read"], "PUT": ["contacts:write"]}

    def get(self, request, resource_id):
        contact = contact_selectors.contact_get(tenant=request.tenant, contact_id=resource_id)
        return Response(_patient_record(request, contact, "fhir patient read"))

    def put(self, request, resource_id):
        """FHIR update: the Patient replaces every element we map (docs/api.md); not an upsert,
        so an unknown id is 404 (updateCreate false)."""
        contact = contact_selectors.contact_get(tenant=request.tenant, contact_id=resource_id)
        if "If-Match" in request.headers:
            # No meta.versionId is given out (a change time would tell a reader without clinical
            # access that clinical values changed: contacts.selectors._changed_at), so no version
            # a client names can be the current one.
            raise VersionMismatch(
                "This server does not version Patients; send the update without If-Match.",
                code="version_mismatch",
            )
        patient = _parse(Patient, request.data)
        if patient.id != str(contact.pk):
            raise IdMismatch(
                "The Patient's id must be the id in the URL.",
                code="id_mismatch",
                extra={"errors": {"id": [f"must be {contact.pk}"]}},
            )
        result = contact_services.contact_replace(
            tenant=request.tenant,
            actor=_actor(request),
            contact=contact,
            data=patient_input(tenant=request.tenant, patient=patient),
            replaced=REPLACED,
            source=SOURCE,
            writer_reads_phi=_reads_phi(request),
        )
        return _patient_written(request, result)


class CommunicationRequestType(FhirView):
    required_scopes = {"POST": ["messages:send"]}

    def post(self, request):
        wanted = _parse(CommunicationRequest, request.data)
        record, created = communication_request_accept(
            tenant=request.tenant, actor=_actor(request), request=wanted
        )
        headers = {"Location": f"{_base(request)}CommunicationRequest/{record.id}"}
        body = communication_request_resource(record=record, request=wanted)
        return Response(body, status=201 if created else 200, headers=headers)


def _communication(request: ApiRequest, message) -> dict:
    with tenant_context(request.tenant):
        attempts = list(MessageAttempt.objects.for_tenant(request.tenant).filter(message=message))
        request_id = (
            CommunicationRequestRecord.objects.for_tenant(request.tenant)
            .filter(message=message)
            .values_list("id", flat=True)
            .first()
        )
    # Which patient got which kind of message is PHI: an audited read, like the message list.
    with phi_access(
        actor=_actor(request),
        tenant=request.tenant,
        objects=[message],
        fields=["contact_id", "purpose"],
        purpose="fhir communication read",
    ):
        return communication_resource(message=message, request_id=request_id, attempts=attempts)


class CommunicationType(FhirView):
    required_scopes = {"GET": ["messages:read"]}

    def get(self, request):
        params = _search_params(request, {"based-on"})
        reference = params.get("based-on", "")
        kind, _, found = reference.partition("/")
        if kind != "CommunicationRequest" or not found:
            raise exceptions.ValidationError({"based-on": ["give CommunicationRequest/<id>"]})
        try:
            request_id = uuid.UUID(found)
        except ValueError:
            request_id = None
        with tenant_context(request.tenant):
            record = (
                CommunicationRequestRecord.objects.for_tenant(request.tenant)
                .filter(pk=request_id)
                .select_related("message")
                .first()
            )
        resources = [_communication(request, record.message)] if record is not None else []
        return Response(_bundle(request, "Communication", resources))


class CommunicationInstance(FhirView):
    required_scopes = {"GET": ["messages:read"]}

    def get(self, request, resource_id):
        message = message_get(tenant=request.tenant, message_id=resource_id)
        if message is None:
            raise NotFound("No such Communication.", code="not_found")
        return Response(_communication(request, message))
