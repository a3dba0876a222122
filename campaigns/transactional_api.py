"""REST API for transactional messages (/api/v1/messages). Thin: parse, call the service, answer.

POST answers 202 at once with the message id (the outbox row exists; delivery follows), and honours
Idempotency-Key: a retried POST gets the same id back instead of a second message.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.phi import phi_access
from delivery.models import MessageAttempt
from healthmail.actors import Actor
from healthmail.api.errors import problem
from healthmail.api.idempotency import idempotent
from healthmail.api.pagination import CursorPagination
from healthmail.errors import NotFound
from healthmail.tenants.context import tenant_context

from . import transactional
from .serializers import (
    AcceptedSerializer,
    BatchResultSerializer,
    MessageBatchSerializer,
    MessageFilterSerializer,
    MessageRequestSerializer,
    MessageStatusSerializer,
    MessageSummarySerializer,
)


def _accepted(message) -> dict:
    return {
        "id": message.pk,
        "status": message.state,
        "message_id": message.message_id,
        "stream": message.stream,
    }


class MessageCollection(APIView):
    required_scopes = {"GET": ["messages:read"], "POST": ["messages:send"]}
    pagination_class = CursorPagination

    @extend_schema(
        operation_id="messages_list",
        parameters=[MessageFilterSerializer],
        responses=MessageSummarySerializer(many=True),
        tags=["messages"],
        description="Messages of every source (API, campaigns, journeys), newest first, in cursor pages; "
        "no addresses or content. Which person got which kind of message is PHI: every page is an "
        "audited PHI access.",
    )
    def get(self, request):
        # A plain dict: as form data, DRF would read `?state=` as "not given" instead of refusing it.
        filters = MessageFilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        paginator = self.pagination_class()
        with tenant_context(request.tenant):
            page = paginator.paginate_queryset(
                transactional.message_list(tenant=request.tenant, **filters.validated_data),
                request,
                view=self,
            )
        with phi_access(
            actor=Actor.for_api_key(request.auth),
            tenant=request.tenant,
            objects=page,
            fields=["contact_id", "purpose"],
            purpose="api message list",
        ):
            return paginator.get_paginated_response(MessageSummarySerializer(page, many=True).data)

    @extend_schema(
        operation_id="messages_send",
        request=MessageRequestSerializer,
        responses={202: AcceptedSerializer, 422: OpenApiResponse(description="Refused, with a reason code")},
        tags=["messages"],
        description="Send one transactional message (treatment, payment or operations) to a contact (by id "
        "or external id) or an address, from a template with data or inline content.",
    )
    @idempotent
    def post(self, request):
        incoming = MessageRequestSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        [result] = transactional.transactional_send(
            tenant=request.tenant, actor=Actor.for_api_key(request.auth), requests=[incoming.to_request()]
        )
        if result.error is not None:
            return problem(422, result.error.message, code=result.error.code, **result.error.extra)
        return Response(AcceptedSerializer(_accepted(result.message)).data, status=status.HTTP_202_ACCEPTED)


class MessageBatch(APIView):
    required_scopes = {"POST": ["messages:send"]}

    @extend_schema(
        operation_id="messages_send_batch",
        request=MessageBatchSerializer,
        responses={202: BatchResultSerializer},
        tags=["messages"],
        description=f"Up to {transactional.MAX_BATCH} messages; one result per item, in order.",
    )
    @idempotent
    def post(self, request):
        incoming = MessageBatchSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        parsed, results = [], {}
        for index, item in enumerate(incoming.validated_data["messages"]):
            serializer = MessageRequestSerializer(data=item) if isinstance(item, dict) else None
            if serializer is not None and serializer.is_valid():
                parsed.append((index, serializer.to_request()))
            else:
                results[index] = {
                    "index": index,
                    "id": None,
                    "status": "refused",
                    "code": "validation_failed",
                    "detail": "The item is not a valid message request.",
                }
        outcomes = (
            transactional.transactional_send(
                tenant=request.tenant, actor=Actor.for_api_key(request.auth), requests=[r for _, r in parsed]
            )
            if parsed
            else []
        )
        for (index, _), outcome in zip(parsed, outcomes, strict=True):
            if outcome.error is not None:
                results[index] = {
                    "index": index,
                    "id": None,
                    "status": "refused",
                    "code": outcome.error.code,
                    "detail": outcome.error.message,
                }
            else:
                results[index] = {
                    "index": index,
                    "id": outcome.message.pk,
                    "status": outcome.message.state,
                    "code": "",
                    "detail": "",
                }
        ordered = [results[i] for i in sorted(results)]
        accepted = sum(1 for r in ordered if r["id"] is not None)
        body = {"results": ordered, "accepted": accepted, "refused": len(ordered) - accepted}
        return Response(BatchResultSerializer(body).data, status=status.HTTP_202_ACCEPTED)


class MessageItem(APIView):
    required_scopes = {"GET": ["messages:read"]}

    @extend_schema(
        operation_id="messages_retrieve",
        responses=MessageStatusSerializer,
        tags=["messages"],
        description="Status and delivery evidence (TLS version, cipher, MX, portal) of one message.",
    )
    def get(self, request, message_id):
        message = transactional.message_get(tenant=request.tenant, message_id=message_id)
        if message is None:
            raise NotFound("No such message.")
        with tenant_context(request.tenant):
            attempts = list(MessageAttempt.objects.for_tenant(request.tenant).filter(message=message))
        # Which patient got which kind of message, and when, is PHI: an audited read, as the list and
        # the FHIR Communication read are.
        with phi_access(
            actor=Actor.for_api_key(request.auth),
            tenant=request.tenant,
            objects=[message],
            fields=["purpose", "state", "evidence"],
            purpose="api message status",
        ):
            return Response(MessageStatusSerializer(_status(message, attempts)).data)


def _status(message, attempts: list[MessageAttempt]) -> dict:
    return {
        **{
            name: getattr(message, name)
            for name in (
                "id",
                "state",
                "state_reason",
                "stream",
                "purpose",
                "encryption_policy",
                "message_id",
                "to_domain",
                "attempts",
                "created_at",
                "finished_at",
                "evidence",
            )
        },
        "attempt_log": [
            {
                "started_at": a.started_at,
                "finished_at": a.finished_at,
                "outcome": a.outcome,
                "smtp_code": a.smtp_code,
                "mx_host": a.mx_host,
                "evidence": a.evidence,
            }
            for a in attempts
        ],
    }
