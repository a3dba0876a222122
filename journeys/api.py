"""The journeys API: list and read journeys (step counts through the disclosure policy), enrol and
remove a contact, a contact's positions. Parse, authorize (scopes), one service or selector."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import services as audit
from contacts.selectors import contact_get
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.api.idempotency import idempotent
from healthmail.api.pagination import CursorPagination
from healthmail.disclosure import Viewer, shows_aggregates

from . import selectors
from .serializers import (
    EnrolmentSerializer,
    JourneyCreatedSerializer,
    JourneyCreateSerializer,
    JourneyDetailSerializer,
    JourneySerializer,
    PositionSerializer,
    RemovalSerializer,
)
from .services import enrolment
from .services import journeys as journey_services


def _actor(request) -> Actor:
    return Actor.for_api_key(request.auth)


class JourneyCollection(APIView):
    required_scopes = {"GET": ["journeys:read"], "POST": ["journeys:write"]}
    pagination_class = CursorPagination

    @extend_schema(operation_id="journeys_list", responses=JourneySerializer(many=True), tags=["journeys"])
    def get(self, request):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(selectors.journey_list(tenant=request.tenant), request, view=self)
        return paginator.get_paginated_response(JourneySerializer(page, many=True).data)

    @extend_schema(
        operation_id="journeys_create",
        request=JourneyCreateSerializer,
        responses={201: JourneyCreatedSerializer},
        tags=["journeys"],
        description="Create a journey as a draft. The definition is checked first: every problem answers "
        "422 with `problems` (`where`, `message`). Activation needs a compliance officer's approval in "
        "the web app.",
    )
    @idempotent
    def post(self, request):
        incoming = JourneyCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        journey = journey_services.journey_create(
            tenant=request.tenant,
            actor=_actor(request),
            # The key's journeys:write scope stands for the editor's permission; what it creates is a
            # draft, which only a compliance officer's approval can make live.
            role=Role.MARKETER,
            name=incoming.validated_data["name"],
            definition=incoming.validated_data["definition"],
        )
        version = selectors.journey_versions(tenant=request.tenant, journey=journey).get()
        body = {
            "id": journey.pk,
            "name": journey.name,
            "status": journey.status,
            "version": version.number,
            "version_status": version.status,
        }
        return Response(JourneyCreatedSerializer(body).data, status=status.HTTP_201_CREATED)


@shows_aggregates
class JourneyItem(APIView):
    required_scopes = {"GET": ["journeys:read"]}

    @extend_schema(operation_id="journeys_retrieve", responses=JourneyDetailSerializer, tags=["journeys"])
    def get(self, request, journey_id):
        journey = selectors.journey_get(tenant=request.tenant, journey_id=journey_id)
        counts = selectors.step_counts_disclosed(
            tenant=request.tenant, journey=journey, viewer=Viewer.for_api_key(request.auth)
        )
        journey.steps = {
            step: {cell: vars(shown) for cell, shown in cells.items()} for step, cells in counts.items()
        }
        return Response(JourneyDetailSerializer(journey).data)


def _journey_and_contact(request, journey_id) -> tuple:
    """The journey in the path and the contact the body names, both of the caller's tenant (404)."""
    journey = selectors.journey_get(tenant=request.tenant, journey_id=journey_id)
    incoming = EnrolmentSerializer(data=request.data)
    incoming.is_valid(raise_exception=True)
    return journey, contact_get(tenant=request.tenant, contact_id=incoming.validated_data["contact_id"])


class JourneyEnrolment(APIView):
    required_scopes = {"POST": ["journeys:write"]}

    @extend_schema(
        operation_id="journeys_enrol",
        request=EnrolmentSerializer,
        responses={
            201: PositionSerializer,
            409: OpenApiResponse(
                description="The journey's re-entry rule keeps this contact out for now "
                "(`journey_reentry`), or a request with this Idempotency-Key is still in progress."
            ),
        },
        tags=["journeys"],
    )
    @idempotent
    def post(self, request, journey_id):
        journey, contact = _journey_and_contact(request, journey_id)
        position = enrolment.journey_enrol(
            tenant=request.tenant, actor=_actor(request), journey=journey, contact=contact
        )
        return Response(PositionSerializer(position).data, status=status.HTTP_201_CREATED)


class JourneyRemoval(APIView):
    required_scopes = {"POST": ["journeys:write"]}

    @extend_schema(
        operation_id="journeys_remove",
        request=EnrolmentSerializer,
        responses=RemovalSerializer,
        tags=["journeys"],
    )
    @idempotent
    def post(self, request, journey_id):
        journey, contact = _journey_and_contact(request, journey_id)
        removed = enrolment.journey_remove(
            tenant=request.tenant, actor=_actor(request), journey=journey, contact=contact
        )
        return Response({"removed": removed})


class ContactPositions(APIView):
    """Which journeys a contact is in says something about the person: every read is audited."""

    required_scopes = {"GET": ["journeys:read"]}

    @extend_schema(
        operation_id="journeys_contact_positions", responses=PositionSerializer(many=True), tags=["journeys"]
    )
    def get(self, request, contact_id):
        contact = contact_get(tenant=request.tenant, contact_id=contact_id)
        positions = list(selectors.contact_positions(tenant=request.tenant, contact=contact))
        audit.record(
            actor=_actor(request),
            action="journeys.positions_read",
            target=contact,
            tenant=request.tenant,
            details={"positions": len(positions)},
        )
        return Response(PositionSerializer(positions, many=True).data)
