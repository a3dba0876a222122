"""REST API for contacts (/api/v1/contacts). Thin: parse, call a service or selector, answer.

Reads are masked unless the key holds `contacts:phi`, and every read is an audited PHI access.
Write answers carry ids and outcomes only: idempotent replays are stored unencrypted. A key without
`contacts:phi` gets one answer for every row it wrote, 200 "accepted": "unchanged" would confirm a
guessed stored value, and "created" (201) vs "updated" whether the address was already a patient's.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from healthmail.actors import Actor
from healthmail.api.errors import problem
from healthmail.api.idempotency import idempotent
from healthmail.api.pagination import CursorPagination

from . import selectors, services
from .serializers import (
    MAX_BULK,
    ContactBulkResultSerializer,
    ContactBulkSerializer,
    ContactDetailSerializer,
    ContactInputSerializer,
    ContactSummarySerializer,
    UpsertResultSerializer,
)

SOURCE = "api"


def _scope(request, purpose: str) -> selectors.ReadScope:
    phi = "contacts:phi" in request.auth.scopes
    return selectors.ReadScope(unmasked=phi, clinical=phi, purpose=purpose)


def _reads_phi(request) -> bool:
    return "contacts:phi" in request.auth.scopes


def _actor(request) -> Actor:
    return Actor.for_api_key(request.auth)


class ContactCollection(APIView):
    required_scopes = {"GET": ["contacts:read"], "POST": ["contacts:write"]}
    pagination_class = CursorPagination  # also what the schema documents (cursor, page_size, results)

    @extend_schema(
        operation_id="contacts_list",
        responses=ContactSummarySerializer(many=True),
        tags=["contacts"],
        description="Live contacts, newest first (cursor pages); masked unless the key holds contacts:phi.",
    )
    def get(self, request):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(selectors.contact_list(tenant=request.tenant), request, view=self)
        purpose = "api contact list" if "contacts:phi" in request.auth.scopes else "api masked list"
        records = selectors.contact_records(
            actor=_actor(request), tenant=request.tenant, contacts=page, scope=_scope(request, purpose)
        )
        return paginator.get_paginated_response(ContactSummarySerializer(records, many=True).data)

    @extend_schema(
        operation_id="contacts_upsert",
        request=ContactInputSerializer,
        responses={201: UpsertResultSerializer, 200: UpsertResultSerializer},
        tags=["contacts"],
        description="Create or update one contact: by external id first, else by email. "
        "Fields left out keep their stored values. A key with contacts:phi is told 201 created, "
        "200 updated or 200 unchanged; a key without it always 200 accepted (docs/privacy.md).",
    )
    @idempotent
    def post(self, request):
        incoming = ContactInputSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        result = services.contact_upsert(
            tenant=request.tenant,
            actor=_actor(request),
            data=incoming.to_input(),
            source=SOURCE,
            writer_reads_phi=_reads_phi(request),
        )
        if result.status == services.UpsertStatus.ERROR:
            errors: dict[str, list[str]] = {}
            for error in result.errors:
                errors.setdefault(error.field, []).append(error.message)
            return problem(
                422, "Some fields are invalid; see `errors`.", code="validation_failed", errors=errors
            )
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(UpsertResultSerializer.of(result), status=code)


class ContactBulk(APIView):
    required_scopes = {"POST": ["contacts:write"]}

    @extend_schema(
        operation_id="contacts_bulk_upsert",
        request=ContactBulkSerializer,
        responses={200: ContactBulkResultSerializer, 413: OpenApiResponse(description="More than 1,000")},
        tags=["contacts"],
        description=f"Upsert up to {MAX_BULK} contacts; one result per item, in order.",
    )
    @idempotent
    def post(self, request):
        incoming = ContactBulkSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        items = incoming.validated_data["contacts"]
        if len(items) > MAX_BULK:
            return problem(
                413, f"At most {MAX_BULK} contacts per call; split the batch.", code="batch_too_large"
            )
        parsed, structural = [], {}
        for index, item in enumerate(items):
            serializer = ContactInputSerializer(data=item) if isinstance(item, dict) else None
            if serializer is not None and serializer.is_valid():
                parsed.append((index, serializer.to_input()))
            else:
                found = serializer.errors if serializer is not None else {"contact": ["Must be an object."]}
                structural[index] = [
                    {
                        "field": field,
                        "message": str(messages[0]) if isinstance(messages, list) else "Invalid.",
                    }
                    for field, messages in found.items()
                ]
        outcomes = services.contact_upsert_many(
            tenant=request.tenant,
            actor=_actor(request),
            inputs=[data for _, data in parsed],
            source=SOURCE,
            writer_reads_phi=_reads_phi(request),
        )
        results = [
            {**UpsertResultSerializer.of(outcome), "index": index}
            for (index, _), outcome in zip(parsed, outcomes, strict=True)
        ]
        results += [
            {"index": index, "status": services.UpsertStatus.ERROR, "id": None, "errors": errors}
            for index, errors in structural.items()
        ]
        results.sort(key=lambda result: result["index"])
        counts = {value: 0 for value in services.UpsertStatus.values}
        for result in results:
            counts[result["status"]] += 1
        return Response(ContactBulkResultSerializer({"results": results, "counts": counts}).data)


class ContactItem(APIView):
    required_scopes = {"GET": ["contacts:read"], "DELETE": ["contacts:write"]}

    @extend_schema(operation_id="contacts_retrieve", responses=ContactDetailSerializer, tags=["contacts"])
    def get(self, request, contact_id):
        contact = selectors.contact_get(tenant=request.tenant, contact_id=contact_id)
        purpose = "api contact detail" if "contacts:phi" in request.auth.scopes else "api masked detail"
        (record,) = selectors.contact_records(
            actor=_actor(request),
            tenant=request.tenant,
            contacts=[contact],
            scope=_scope(request, purpose),
            detail=True,
        )
        return Response(ContactDetailSerializer(record).data)

    @extend_schema(operation_id="contacts_destroy", responses={204: None}, tags=["contacts"])
    def delete(self, request, contact_id):
        contact = selectors.contact_get(tenant=request.tenant, contact_id=contact_id)
        services.contact_delete(
            tenant=request.tenant, actor=_actor(request), contact=contact, reason="api request"
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
