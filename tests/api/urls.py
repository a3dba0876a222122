"""Test-only API routes on top of the real URLconf: a POST that declares Idempotency-Key, an object
route for the BOLA harness, and a view that forgot to declare scopes. Used with
`@pytest.mark.urls("tests.api.urls")`; never part of the product."""

import uuid

from django.shortcuts import get_object_or_404
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import services as audit
from healthmail import urls as project_urls
from healthmail.accounts.models import ApiKey
from healthmail.actors import Actor
from healthmail.api.idempotency import idempotent


class NoteSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=50)
    explode = serializers.BooleanField(default=False)


class NoteCreatedSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    text = serializers.CharField()


class NoteCreate(APIView):
    """Writes one audit row per execution, so a test can count how often the handler really ran."""

    required_scopes = {"POST": ["events:write"]}

    @extend_schema(
        operation_id="test_note_create", request=NoteSerializer, responses={201: NoteCreatedSerializer}
    )
    @idempotent
    def post(self, request):
        incoming = NoteSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        note_id = uuid.uuid4()
        audit.record(
            actor=Actor.for_api_key(request.auth),
            action="test.note_create",
            target=("test.note", note_id),
            tenant=request.auth.tenant_id,
        )
        if incoming.validated_data["explode"]:
            # The message quotes request data, as real exceptions (IntegrityError...) do.
            raise RuntimeError(f"simulated failure while saving {incoming.validated_data['text']}")
        return Response({"id": note_id, "text": incoming.validated_data["text"]}, status=201)


class ApiKeyPeekSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    prefix = serializers.CharField()


class ApiKeyPeek(APIView):
    """An object route: looks up one of the caller's tenant's API keys by id."""

    required_scopes = {"GET": []}

    @extend_schema(operation_id="test_api_key_retrieve", responses=ApiKeyPeekSerializer)
    def get(self, request, key_id):
        api_key = get_object_or_404(ApiKey.objects.for_tenant(request.auth.tenant_id), pk=key_id)
        return Response({"id": api_key.pk, "prefix": api_key.prefix})


class Undeclared(APIView):
    """Forgot `required_scopes`: must be refused, never open."""

    @extend_schema(operation_id="test_undeclared", responses={200: None})
    def get(self, request):
        return Response({"reached": True})


urlpatterns = [
    path("api/v1/_test/notes", NoteCreate.as_view()),
    path("api/v1/_test/api-keys/<uuid:key_id>", ApiKeyPeek.as_view()),
    path("api/v1/_test/undeclared", Undeclared.as_view()),
    *project_urls.urlpatterns,
]

handler400 = project_urls.handler400
handler403 = project_urls.handler403
handler404 = project_urls.handler404
handler500 = project_urls.handler500
