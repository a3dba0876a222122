"""FHIR Consent: marketing decisions (a topic's permit or deny) and HIPAA authorizations, created,
read, searched by patient and category, and (authorizations) revoked by an update to `inactive`.

Ids: a marketing decision's Consent id is its consent event's number, an authorization's is its
UUID, so one read finds either. A person's consent choices are PHI: every read that returns one is
an audited PHI access; without contacts:phi the dates, the signer and the end event are left out
(meta.security REDACTED), like Patient.
"""

from __future__ import annotations

import datetime
import uuid
import zoneinfo
from typing import Any

from fhir.resources.R4B.consent import Consent
from rest_framework import exceptions
from rest_framework.response import Response

from audit.phi import phi_access
from consent import authorization_records as records
from consent import authorizations as authorization_services
from consent import selectors as consent_selectors
from consent import services as consent_services
from consent.evidence import Evidence
from consent.models import Authorization, Source
from contacts import selectors as contact_selectors
from healthmail.api.authentication import ApiRequest
from healthmail.errors import ApplicationError, NotFound

from . import authorizations as mapping
from .api import FhirView, _actor, _base, _bundle, _parse, _reads_phi, _search_params
from .consents import TOPIC_SYSTEM, consent_change, consent_event_resource
from .outcomes import FHIR_JSON, information

_NOT_FOUND = "No such Consent."


def _consent_id(resource_id: str) -> int | uuid.UUID | None:
    """A consent event's number, an authorization's UUID, or None (nothing of ours)."""
    if resource_id.isascii() and resource_id.isdigit() and len(resource_id) < 19:
        return int(resource_id)
    try:
        return uuid.UUID(resource_id)
    except ValueError:
        return None


def _zone(request: ApiRequest) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(request.tenant.timezone)


def _authorization_resources(request: ApiRequest, found: list[Authorization], purpose: str) -> list[dict]:
    if not found:
        return []
    masked = not _reads_phi(request)
    defects = consent_selectors.authorization_defects_now(
        tenant=request.tenant, authorization_ids=[a.pk for a in found]
    )
    fields = mapping.MASKED_FIELDS if masked else [*mapping.MASKED_FIELDS, *mapping.PHI_FIELDS]
    with phi_access(
        actor=_actor(request), tenant=request.tenant, objects=found, fields=fields, purpose=purpose
    ):
        return [
            mapping.authorization_resource(
                authorization=a, defects=defects.get(a.pk, []), masked=masked, tenant_zone=_zone(request)
            )
            for a in found
        ]


def _event_resources(request: ApiRequest, found: list[tuple[Any, bool]], purpose: str) -> list[dict]:
    if not found:
        return []
    masked = not _reads_phi(request)
    fields = ["topic", "kind"] if masked else ["topic", "kind", "occurred_at"]
    events = [event for event, _ in found]
    with phi_access(
        actor=_actor(request), tenant=request.tenant, objects=events, fields=fields, purpose=purpose
    ):
        return [consent_event_resource(event=e, current=current, masked=masked) for e, current in found]


def _category_filter(value: str) -> tuple[bool, set[str] | None]:
    """(authorizations wanted, topic keys wanted or None for every topic) for a category token."""
    system, bar, code = value.rpartition("|") if "|" in value else ("", "", value)
    is_loinc = code == mapping.CATEGORY["code"] and (not bar or system == mapping.LOINC)
    if is_loinc:
        return True, set()
    if bar and system != TOPIC_SYSTEM:
        return False, set()
    return False, {code}


class ConsentType(FhirView):
    required_scopes = {"GET": ["consent:read"], "POST": ["consent:write"]}

    def get(self, request: ApiRequest) -> Response:
        params = _search_params(request, {"patient", "category"})
        reference = params.get("patient", "")
        if not reference:
            raise exceptions.ValidationError({"patient": ["search by patient (Patient/<id>)"]})
        contact_id = reference.removeprefix("Patient/")
        try:
            contact = contact_selectors.contact_get(tenant=request.tenant, contact_id=contact_id)
        except NotFound:  # another tenant's patient, or nobody: no match
            return Response(_bundle(request, "Consent", []))
        wants_authorizations, topics = True, None
        if "category" in params:
            wants_authorizations, topics = _category_filter(params["category"])
        events = []
        if topics is None or topics:
            events = [
                (event, current)
                for event, current in consent_selectors.consent_events(
                    tenant=request.tenant, contact_id=contact.pk
                )
                if topics is None or event.topic.key in topics
            ]
        authorizations = (
            consent_selectors.authorizations_find(tenant=request.tenant, contact_id=contact.pk)
            if wants_authorizations
            else []
        )
        resources = [
            *_event_resources(request, events, "fhir consent search"),
            *_authorization_resources(request, authorizations, "fhir consent search"),
        ]
        return Response(_bundle(request, "Consent", resources))

    def post(self, request: ApiRequest) -> Response:
        consent = _parse(Consent, request.data)
        if mapping.is_authorization(consent):
            return self._authorization(request, consent)
        return self._marketing(request, consent)

    def _marketing(self, request: ApiRequest, consent: Consent) -> Response:
        change = consent_change(consent)
        occurred_at = change["occurred_at"]
        if occurred_at is not None and not (
            isinstance(occurred_at, datetime.datetime) and occurred_at.tzinfo
        ):
            raise exceptions.ValidationError({"dateTime": ["give a full date and time with a time zone"]})
        contact = contact_selectors.contact_get(tenant=request.tenant, contact_id=change["contact_id"])
        topic = consent_services.topic_by_key(tenant=request.tenant, key=change["topic"])
        evidence = Evidence(source=change["source"], actor=_actor(request), occurred_at=occurred_at)
        event = consent_services.consent_record(
            tenant=request.tenant, contact=contact, topic=topic, kind=change["kind"], evidence=evidence
        )
        resource = consent.model_dump(mode="json", exclude_none=True)
        resource["id"] = str(event.pk)
        headers = {"Location": f"{_base(request)}Consent/{event.pk}"}
        return Response(resource, status=201, headers=headers, content_type=FHIR_JSON)

    def _authorization(self, request: ApiRequest, consent: Consent) -> Response:
        wanted = mapping.authorization_input(consent, new_key=uuid.uuid4().hex)
        contact = contact_selectors.contact_get(tenant=request.tenant, contact_id=wanted.contact_id)
        text = records.authorization_text_from_elements(
            tenant=request.tenant, kind=wanted.kind, title=wanted.title, elements=wanted.elements
        )
        try:
            authorization, created = records.authorization_record(
                tenant=request.tenant,
                contact=contact,
                text=text,
                signature=wanted.signature,
                circumstances=wanted.circumstances,
                evidence=Evidence(source=wanted.evidence_source, actor=_actor(request)),
                submission_key=wanted.submission_key,
                attachment=wanted.attachment,
            )
        except records.AuthorizationDefective as error:
            raise mapping.defects_refused(error) from None
        return _answer(request, authorization, 201 if created else 200, "Created." if created else "Found.")


def _answer(request: ApiRequest, authorization: Authorization, status: int, said: str) -> Response:
    """The stored authorization as a Consent for a key that may read consents, else an outcome."""
    headers = {"Location": f"{_base(request)}Consent/{authorization.pk}"}
    if "consent:read" not in request.auth.scopes:
        code = said.rstrip(".").lower().replace(" ", "_")
        return Response(information(said, code=code), status, headers=headers)
    [authorization] = consent_selectors.authorizations_find(
        tenant=request.tenant, authorization_id=authorization.pk
    )
    [resource] = _authorization_resources(request, [authorization], "fhir consent write answer")
    return Response(resource, status, headers=headers)


def _live(request: ApiRequest, contact_id: uuid.UUID) -> None:
    """The consent's patient is a live contact (a deleted one's consents answer like no consent)."""
    try:
        contact_selectors.contact_get(tenant=request.tenant, contact_id=contact_id)
    except NotFound:
        raise NotFound(_NOT_FOUND, code="not_found") from None


class ConsentInstance(FhirView):
    required_scopes = {"GET": ["consent:read"], "PUT": ["consent:write"]}

    def get(self, request: ApiRequest, resource_id: str) -> Response:
        found_id = _consent_id(resource_id)
        if isinstance(found_id, int):
            events = consent_selectors.consent_events(tenant=request.tenant, event_id=found_id)
            if events:
                _live(request, events[0][0].contact_id)
                return Response(_event_resources(request, events, "fhir consent read")[0])
        elif isinstance(found_id, uuid.UUID):
            authorizations = consent_selectors.authorizations_find(
                tenant=request.tenant, authorization_id=found_id
            )
            if authorizations:
                _live(request, authorizations[0].contact_id)
                return Response(_authorization_resources(request, authorizations, "fhir consent read")[0])
        raise NotFound(_NOT_FOUND, code="not_found")

    def put(self, request: ApiRequest, resource_id: str) -> Response:
        """An update revokes an authorization (status inactive); nothing else of a signed form changes."""
        found_id = _consent_id(resource_id)
        found = (
            consent_selectors.authorizations_find(tenant=request.tenant, authorization_id=found_id)
            if isinstance(found_id, uuid.UUID)
            else []
        )
        if isinstance(found_id, int) and consent_selectors.consent_events(
            tenant=request.tenant, event_id=found_id
        ):
            raise mapping.AuthorizationConsentInvalid(
                "A marketing decision is changed by creating a new Consent (provision.type permit or deny).",
                code="update_not_supported",
            )
        if not found:
            raise NotFound(_NOT_FOUND, code="not_found")
        [authorization] = found
        _live(request, authorization.contact_id)
        consent = _parse(Consent, request.data)
        if consent.id != resource_id:
            raise ApplicationError(  # FHIR's update: an id that disagrees with the URL is a 400
                "The resource's id must be the id in the URL.",
                code="id_mismatch",
                extra={"errors": {"Consent.id": ["must be the id in the URL"]}},
            )
        if (consent.patient.reference if consent.patient else "") != f"Patient/{authorization.contact_id}":
            raise mapping.AuthorizationConsentInvalid(
                "The patient of a signed authorization cannot change.",
                code="patient_immutable",
                extra={"errors": {"Consent.patient": ["must be the authorization's patient"]}},
            )
        if consent.status == "inactive":
            changed = self._revoke(request, authorization, mapping.revocation_input(consent))
            said = "Revoked." if changed else "Already not in force."
        elif consent.status == "active":
            if authorization.status != Authorization.Status.VALID:
                raise mapping.AuthorizationConsentInvalid(
                    "An authorization that was revoked or has ended cannot be made active again; "
                    "record the new signed form as a new Consent.",
                    code="reactivation_refused",
                    extra={"errors": {"Consent.status": ["cannot go back to active"]}},
                )
            said = "Unchanged."
        else:
            raise mapping.AuthorizationConsentInvalid(
                "An update records a revocation: status inactive (a form entered in error is marked "
                "known to be false by staff on the contact's consent page).",
                code="status_not_supported",
                extra={"errors": {"Consent.status": ["give inactive to revoke"]}},
            )
        return _answer(request, authorization, 200, said)

    def _revoke(
        self, request: ApiRequest, authorization: Authorization, revocation: mapping.Revocation
    ) -> bool:
        today = records.tenant_today(request.tenant)
        received_on = revocation.received_on or today
        if received_on > today:
            raise ApplicationError("A revocation cannot be dated in the future.", code="revoked_on_invalid")
        return authorization_services.authorization_revoke(
            tenant=request.tenant,
            authorization=authorization,
            evidence=Evidence(
                source=Source.API,
                actor=_actor(request),
                occurred_at=records.reported_day_instant(request.tenant, received_on),
            ),
            received_via=revocation.received_via,
        )
