"""REST API for segments (/api/v1/segments): create, update, read and count. Thin.

There is deliberately no member list: an API client learns audience sizes (masked), never who is in
an audience, whatever scopes it holds.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from healthmail.actors import Actor
from healthmail.api.idempotency import idempotent
from healthmail.api.pagination import CursorPagination
from healthmail.disclosure import Viewer, shows_aggregates
from healthmail.errors import NotFound

from . import selectors, services
from .serializers import (
    CountSerializer,
    DefinitionSerializer,
    SegmentInputSerializer,
    SegmentSerializer,
    SegmentUpdateSerializer,
)

COUNT_HELP = (
    "Count {} now, with breakdowns, through the disclosure policy (docs/privacy.md). "
    "Clinical criteria need the contacts:phi scope."
)


def _actor(request) -> Actor:
    return Actor.for_api_key(request.auth)


def _shown(request, segment) -> dict:
    """A segment with its remembered count as this key may see it (through the disclosure policy)."""
    shown = services.segment_count_disclosed(
        tenant=request.tenant, viewer=Viewer.of(request), segment=segment
    )
    return SegmentSerializer.of(segment, shown)


def _segment(request, segment_id):
    try:
        return selectors.segment_get(tenant=request.tenant, segment_id=segment_id)
    except NotFound:
        raise NotFound("No such object.", code="not_found") from None


@shows_aggregates
class SegmentCollection(APIView):
    required_scopes = {"GET": ["segments:read"], "POST": ["segments:write"]}
    pagination_class = CursorPagination  # also what the schema documents (cursor, page_size, results)

    @extend_schema(
        operation_id="segments_list",
        responses=SegmentSerializer(many=True),
        tags=["segments"],
        description="Saved segments, newest first (cursor pages); each remembered count through the "
        "disclosure policy.",
    )
    def get(self, request):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(selectors.segment_list(tenant=request.tenant), request, view=self)
        return paginator.get_paginated_response([_shown(request, segment) for segment in page])

    @extend_schema(
        operation_id="segments_create",
        request=SegmentInputSerializer,
        responses={201: SegmentSerializer},
        tags=["segments"],
        description="Create a segment; an invalid definition answers 422 with the offending node's path.",
    )
    @idempotent
    def post(self, request):
        incoming = SegmentInputSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        segment = services.segment_create(
            tenant=request.tenant,
            actor=_actor(request),
            name=data["name"],
            description=data.get("description", ""),
            definition=data["definition"],
            viewer=Viewer.of(request),
        )
        return Response(_shown(request, segment), status=status.HTTP_201_CREATED)


@shows_aggregates
class SegmentItem(APIView):
    required_scopes = {"GET": ["segments:read"], "PATCH": ["segments:write"]}

    @extend_schema(operation_id="segments_retrieve", responses=SegmentSerializer, tags=["segments"])
    def get(self, request, segment_id):
        return Response(_shown(request, _segment(request, segment_id)))

    @extend_schema(
        operation_id="segments_update",
        request=SegmentUpdateSerializer,
        responses=SegmentSerializer,
        tags=["segments"],
    )
    def patch(self, request, segment_id):
        segment = _segment(request, segment_id)
        incoming = SegmentUpdateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        segment = services.segment_update(
            tenant=request.tenant,
            actor=_actor(request),
            segment=segment,
            name=data.get("name"),
            description=data.get("description"),
            definition=data.get("definition"),
            viewer=Viewer.of(request),
        )
        return Response(_shown(request, segment))


@shows_aggregates
class SegmentCount(APIView):
    required_scopes = {"POST": ["segments:read"]}

    @extend_schema(
        operation_id="segments_count",
        request=None,
        responses=CountSerializer,
        tags=["segments"],
        description=COUNT_HELP.format("a saved segment"),
    )
    def post(self, request, segment_id):
        segment = _segment(request, segment_id)
        result = services.segment_count(
            tenant=request.tenant, viewer=Viewer.of(request), definition=segment.definition, segment=segment
        )
        return Response(CountSerializer.of(result))


@shows_aggregates
class DefinitionCount(APIView):
    required_scopes = {"POST": ["segments:read"]}

    @extend_schema(
        operation_id="segments_count_definition",
        request=DefinitionSerializer,
        responses=CountSerializer,
        tags=["segments"],
        description=COUNT_HELP.format("an unsaved definition"),
    )
    def post(self, request):
        incoming = DefinitionSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        result = services.segment_count(
            tenant=request.tenant, viewer=Viewer.of(request), definition=incoming.validated_data["definition"]
        )
        return Response(CountSerializer.of(result))
