"""API for templates: read (scope campaigns:read) and written (templates:write) through the same
services as the editor. Thin: parse, one service or selector, one serializer. Campaigns: campaign_api.py.

Templates are the organization's own content, not PHI (their fields are placeholders, filled only
when a message is composed)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from healthmail.actors import Actor
from healthmail.api.idempotency import idempotent
from healthmail.api.pagination import CursorPagination

from . import selectors
from .models import Template
from .serializers import StrictSerializer
from .services import template_lifecycle
from .services import templates as template_services

SCOPE = ["campaigns:read"]
WRITE_SCOPE = ["templates:write"]


class TemplateSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Template
        fields = ["id", "name", "kind", "description", "default_language", "revision", "has_errors"]
        fields += ["created_at", "updated_at"]


class TemplateContentSerializer(serializers.Serializer):
    language = serializers.CharField()
    subject = serializers.CharField()
    preheader = serializers.CharField()
    html = serializers.CharField()
    text = serializers.CharField()


class TemplateDetailSerializer(TemplateSummarySerializer):
    contents = TemplateContentSerializer(many=True, help_text="One per language.")

    class Meta(TemplateSummarySerializer.Meta):
        fields = [*TemplateSummarySerializer.Meta.fields, "contents"]


_NOT_FOUND = OpenApiResponse(description="No such object in your organization.")
_NAME_TAKEN = OpenApiResponse(description="Another template of your organization has this name.")
_IN_USE = OpenApiResponse(
    description="Campaigns or journeys use the template (template_in_use); the problem's `campaigns` "
    "and `journeys` say how many (any status; versions and A/B variants count)."
)


class TemplateContentInSerializer(StrictSerializer):
    language = serializers.CharField(max_length=12, default="en", help_text="e.g. en, es, pt-BR")
    subject = serializers.CharField(max_length=200)
    preheader = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    html = serializers.CharField(max_length=200_000)
    text = serializers.CharField(max_length=200_000, required=False, allow_blank=True, default="")

    def content(self) -> template_services.ContentInput:
        data = self.validated_data
        return template_services.ContentInput(
            data["language"], data["subject"], data["preheader"], data["html"], data["text"]
        )


# The columns' own lengths: a longer value accepted here failed in the database with a 500.
_NAME_MAX = Template._meta.get_field("name").max_length
_DESCRIPTION_MAX = Template._meta.get_field("description").max_length


class TemplateCreateSerializer(TemplateContentInSerializer):
    name = serializers.CharField(max_length=_NAME_MAX)
    kind = serializers.ChoiceField(choices=Template.Kind.choices, default=Template.Kind.MARKETING)
    description = serializers.CharField(
        max_length=_DESCRIPTION_MAX, required=False, allow_blank=True, default=""
    )


class TemplateUpdateSerializer(TemplateContentInSerializer):
    name = serializers.CharField(max_length=_NAME_MAX, required=False)
    description = serializers.CharField(max_length=_DESCRIPTION_MAX, required=False, allow_blank=True)
    make_default = serializers.BooleanField(default=False, help_text="Make this language the default.")


def _template_detail(request, template) -> dict:
    return TemplateDetailSerializer(
        selectors.template_get(tenant=request.tenant, template_id=template.pk)
    ).data


class TemplateCollection(APIView):
    required_scopes = {"GET": SCOPE, "POST": WRITE_SCOPE}
    pagination_class = CursorPagination

    @extend_schema(
        operation_id="templates_list", responses=TemplateSummarySerializer(many=True), tags=["templates"]
    )
    def get(self, request):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(selectors.template_list(tenant=request.tenant), request, view=self)
        return paginator.get_paginated_response(TemplateSummarySerializer(page, many=True).data)

    @extend_schema(
        operation_id="templates_create",
        request=TemplateCreateSerializer,
        responses={201: TemplateDetailSerializer, 409: _NAME_TAKEN},
        tags=["templates"],
        description="A new template with its first language, linted like in the editor. Templates are "
        "content, not sends: a campaign using one still goes through approval.",
    )
    def post(self, request):
        incoming = TemplateCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        template = template_services.template_create(
            tenant=request.tenant,
            actor=Actor.for_api_key(request.auth),
            name=data["name"],
            kind=data["kind"],
            description=data["description"],
            content=incoming.content(),
        )
        return Response(_template_detail(request, template), status=201)


class TemplateItem(APIView):
    required_scopes = {"GET": SCOPE, "PATCH": WRITE_SCOPE, "DELETE": WRITE_SCOPE}

    @extend_schema(
        operation_id="templates_retrieve",
        responses={200: TemplateDetailSerializer, 404: _NOT_FOUND},
        tags=["templates"],
    )
    def get(self, request, template_id):
        template = selectors.template_get(tenant=request.tenant, template_id=template_id)
        return Response(TemplateDetailSerializer(template).data)

    @extend_schema(
        operation_id="templates_update",
        request=TemplateUpdateSerializer,
        responses={200: TemplateDetailSerializer, 404: _NOT_FOUND, 409: _NAME_TAKEN},
        tags=["templates"],
        description="Save one language (added when new) and optionally the name or description. "
        "Campaigns keep the version frozen when they were submitted.",
    )
    def patch(self, request, template_id):
        template = selectors.template_get(tenant=request.tenant, template_id=template_id)
        incoming = TemplateUpdateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        template_services.template_update(
            tenant=request.tenant,
            actor=Actor.for_api_key(request.auth),
            template=template,
            content=incoming.content(),
            name=data.get("name"),
            description=data.get("description"),
            make_default=data["make_default"],
        )
        return Response(_template_detail(request, template))

    @extend_schema(
        operation_id="templates_destroy",
        request=None,
        responses={204: None, 404: _NOT_FOUND, 409: _IN_USE},
        tags=["templates"],
        description="Remove a template nothing uses. One never frozen is deleted; one with frozen "
        "versions is archived (they are evidence of what was sent): it leaves the lists, answers 404 "
        "by id and cannot be used again, while its versions stay readable under /template-versions.",
    )
    @idempotent
    def delete(self, request, template_id):
        template = selectors.template_get(tenant=request.tenant, template_id=template_id)
        template_lifecycle.template_remove(
            tenant=request.tenant, actor=Actor.for_api_key(request.auth), template=template
        )
        return Response(status=204)


class TemplateLanguageItem(APIView):
    required_scopes = {"DELETE": WRITE_SCOPE}

    @extend_schema(
        operation_id="templates_languages_destroy",
        request=None,
        responses={
            204: None,
            404: OpenApiResponse(description="No such template, or it has no such language."),
            409: OpenApiResponse(
                description="The default language cannot be removed (language_is_default); make "
                "another one the default first (PATCH with make_default)."
            ),
        },
        tags=["templates"],
        description="Remove one language of the template. Frozen versions keep theirs.",
    )
    @idempotent
    def delete(self, request, template_id, language):
        template = selectors.template_get(tenant=request.tenant, template_id=template_id)
        template_services.template_language_remove(
            tenant=request.tenant, actor=Actor.for_api_key(request.auth), template=template, language=language
        )
        return Response(status=204)
