"""Template versions and previews over the API. A version is a template frozen (every language and
every included block), as a campaign's submission freezes it; what a campaign was approved with is
exactly what goes out. Reads need campaigns:read, freezing a new version templates:write.

A preview renders through the one rendering path (the Jinja2 sandbox of templating/, the editor's
and the sender's) with the synthetic contact of the template preview page: no person's data is read,
so a preview carries no PHI whatever the key's scopes. The lint of the same content comes with it.
A POST names a contact instead (services/contact_preview.py): that needs contacts:phi and is an
audited PHI read."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from healthmail.actors import Actor
from healthmail.api.idempotency import idempotent
from healthmail.api.pagination import CursorPagination

from . import selectors
from .api import TemplateContentSerializer
from .models import TemplateVersion
from .serializers import StrictSerializer
from .services import contact_preview, previews
from .services import templates as template_services
from .templating import lint as linting

READ = ["campaigns:read"]
WRITE = ["templates:write"]
# A preview with a real contact's values reads PHI.
PREVIEW_WITH_CONTACT = ["campaigns:read", "contacts:phi"]
_TAGS = ["templates"]
_NOT_FOUND = OpenApiResponse(description="No such object in your organization.")


class TemplateVersionSerializer(serializers.ModelSerializer):
    template_id = serializers.UUIDField()
    languages = serializers.SerializerMethodField()
    merge_fields = serializers.ListField(
        source="fields", child=serializers.CharField(), help_text="Merge fields the content uses."
    )
    phi_fields = serializers.ListField(child=serializers.CharField(), help_text="Those that are PHI.")

    class Meta:
        model = TemplateVersion
        fields = ["id", "template_id", "number", "kind", "default_language", "languages", "merge_fields"]
        fields += ["phi_fields", "created_at"]

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_languages(self, version: TemplateVersion) -> list[str]:
        return sorted(version.contents)


class TemplateVersionDetailSerializer(TemplateVersionSerializer):
    contents = serializers.SerializerMethodField()
    blocks = serializers.SerializerMethodField()

    class Meta(TemplateVersionSerializer.Meta):
        fields = [*TemplateVersionSerializer.Meta.fields, "contents", "blocks"]

    @extend_schema_field(TemplateContentSerializer(many=True, help_text="One per language, as frozen."))
    def get_contents(self, version: TemplateVersion) -> list[dict]:
        return [
            {"language": language, **parts.as_dict()}
            for language, parts in sorted(template_services.version_contents(version).items())
        ]

    @extend_schema_field(
        serializers.ListField(
            child=serializers.CharField(), help_text="The keys of the reusable blocks frozen with it."
        )
    )
    def get_blocks(self, version: TemplateVersion) -> list[str]:
        return sorted(version.blocks)


class FindingSerializer(serializers.Serializer):
    code = serializers.CharField()
    severity = serializers.ChoiceField(choices=[linting.ERROR, linting.WARNING])
    message = serializers.CharField()
    where = serializers.CharField()
    line = serializers.IntegerField(allow_null=True)
    column = serializers.IntegerField(allow_null=True)


class LintSerializer(serializers.Serializer):
    findings = FindingSerializer(many=True)
    merge_fields = serializers.ListField(child=serializers.CharField(), help_text="Merge fields used.")
    phi_fields = serializers.ListField(child=serializers.CharField(), help_text="PHI merge fields used.")


class RenderedSerializer(serializers.Serializer):
    subject = serializers.CharField()
    preheader = serializers.CharField()
    html = serializers.CharField()
    text = serializers.CharField()


class PreviewSerializer(serializers.Serializer):
    language = serializers.CharField(help_text="The language rendered (the default when not given).")
    rendered = RenderedSerializer(allow_null=True, help_text="null when the content cannot be rendered.")
    error = serializers.CharField(help_text="Why it cannot be rendered; empty when it was.")
    synthetic = serializers.BooleanField(
        help_text="True: rendered for a synthetic contact; false: with the values of the contact asked for."
    )
    lint = LintSerializer()


class PreviewQuerySerializer(serializers.Serializer):
    language = serializers.CharField(
        max_length=12, required=False, allow_blank=True, help_text="e.g. es; default: the template's."
    )


class ContactPreviewSerializer(StrictSerializer):
    contact_id = serializers.UUIDField(help_text="A contact of your organization whose values are rendered.")
    language = serializers.CharField(
        max_length=12,
        required=False,
        allow_blank=True,
        help_text="e.g. es; default: the contact's when the content has it, else the template's.",
    )


def _preview_body(shown: previews.Preview, lint: linting.TemplateLint, *, synthetic: bool = True) -> dict:
    rendered = shown.rendered
    return {
        "language": shown.language,
        "rendered": None
        if rendered is None
        else {
            "subject": rendered.subject,
            "preheader": rendered.preheader,
            "html": rendered.html,
            "text": rendered.text,
        },
        "error": shown.error,
        "synthetic": synthetic,
        "lint": {
            "findings": [finding.as_dict() for finding in lint.findings],
            "merge_fields": sorted(lint.fields),
            "phi_fields": sorted(lint.phi_fields),
        },
    }


def _language(request) -> str:
    query = PreviewQuerySerializer(data=request.query_params.dict())
    query.is_valid(raise_exception=True)
    return query.validated_data.get("language", "")


class TemplateVersionCollection(APIView):
    required_scopes = {"GET": READ, "POST": WRITE}
    pagination_class = CursorPagination

    @extend_schema(
        operation_id="template_versions_list",
        responses={200: TemplateVersionSerializer(many=True), 404: _NOT_FOUND},
        tags=_TAGS,
        description="The template's frozen versions, newest first.",
    )
    def get(self, request, template_id):
        template = selectors.template_get(tenant=request.tenant, template_id=template_id)
        paginator = self.pagination_class()
        versions = selectors.template_versions(tenant=request.tenant, template=template)
        page = paginator.paginate_queryset(versions, request, view=self)
        return paginator.get_paginated_response(TemplateVersionSerializer(page, many=True).data)

    @extend_schema(
        operation_id="template_versions_create",
        request=None,
        responses={
            201: TemplateVersionDetailSerializer,
            200: OpenApiResponse(
                TemplateVersionDetailSerializer,
                description="Nothing changed since the latest version: that version.",
            ),
            404: _NOT_FOUND,
            422: OpenApiResponse(description="The template has compliance errors (template_has_errors)."),
        },
        tags=_TAGS,
        description="Freeze the template's content as it is now (every language and the blocks it "
        "includes), as submitting a campaign does. Refused while the lint finds errors.",
    )
    @idempotent
    def post(self, request, template_id):
        template = selectors.template_get(tenant=request.tenant, template_id=template_id)
        version, created = template_services.template_version_create(
            tenant=request.tenant, actor=Actor.for_api_key(request.auth), template=template
        )
        return Response(TemplateVersionDetailSerializer(version).data, status=201 if created else 200)


class TemplateVersionItem(APIView):
    required_scopes = {"GET": READ}

    @extend_schema(
        operation_id="template_versions_retrieve",
        responses={200: TemplateVersionDetailSerializer, 404: _NOT_FOUND},
        tags=_TAGS,
    )
    def get(self, request, version_id):
        version = selectors.template_version_get(tenant=request.tenant, version_id=version_id)
        return Response(TemplateVersionDetailSerializer(version).data)


def _contact_preview_query(request) -> dict:
    incoming = ContactPreviewSerializer(data=request.data)
    incoming.is_valid(raise_exception=True)
    return incoming.validated_data


_CONTACT_PREVIEW = (
    "Rendered with the values of one contact of your organization (needs contacts:phi): only the "
    "contact fields the content uses are read, recorded as a PHI read (purpose `api template preview`). "
    "Links and the footer stay the synthetic recipient's. A contact of another organization, or a "
    "deleted one, answers 404."
)


class TemplateVersionPreview(APIView):
    required_scopes = {"GET": READ, "POST": PREVIEW_WITH_CONTACT}

    @extend_schema(
        operation_id="template_versions_preview",
        parameters=[PreviewQuerySerializer],
        responses={200: PreviewSerializer, 404: _NOT_FOUND},
        tags=_TAGS,
        description="The version rendered for a synthetic contact (never a real person's data), "
        "with the lint of the version.",
    )
    def get(self, request, version_id):
        version = selectors.template_version_get(tenant=request.tenant, version_id=version_id)
        language = _language(request)
        shown = previews.version_preview(tenant=request.tenant, version=version, language=language)
        lint = template_services.version_lint(tenant=request.tenant, version=version)
        return Response(PreviewSerializer(_preview_body(shown, lint)).data)

    @extend_schema(
        operation_id="template_versions_preview_contact",
        request=ContactPreviewSerializer,
        responses={200: PreviewSerializer, 404: _NOT_FOUND},
        tags=_TAGS,
        description=f"The version as this contact would receive it. {_CONTACT_PREVIEW}",
    )
    def post(self, request, version_id):
        version = selectors.template_version_get(tenant=request.tenant, version_id=version_id)
        query = _contact_preview_query(request)
        shown = contact_preview.version_contact_preview(
            tenant=request.tenant,
            actor=Actor.for_api_key(request.auth),
            version=version,
            contact_id=query["contact_id"],
            language=query.get("language", ""),
        )
        lint = template_services.version_lint(tenant=request.tenant, version=version)
        return Response(PreviewSerializer(_preview_body(shown, lint, synthetic=False)).data)


class TemplatePreview(APIView):
    required_scopes = {"GET": READ, "POST": PREVIEW_WITH_CONTACT}

    @extend_schema(
        operation_id="templates_preview",
        parameters=[PreviewQuerySerializer],
        responses={200: PreviewSerializer, 404: _NOT_FOUND},
        tags=_TAGS,
        description="The template's current content (not yet frozen) rendered for a synthetic contact, "
        "as the editor's preview shows it, with its lint.",
    )
    def get(self, request, template_id):
        template = selectors.template_get(tenant=request.tenant, template_id=template_id)
        language = _language(request)
        shown = previews.template_preview(tenant=request.tenant, template=template, language=language)
        lint = template_services.template_lint(tenant=request.tenant, template=template)
        return Response(PreviewSerializer(_preview_body(shown, lint)).data)

    @extend_schema(
        operation_id="templates_preview_contact",
        request=ContactPreviewSerializer,
        responses={200: PreviewSerializer, 404: _NOT_FOUND},
        tags=_TAGS,
        description=f"The template's current content as this contact would receive it. {_CONTACT_PREVIEW}",
    )
    def post(self, request, template_id):
        template = selectors.template_get(tenant=request.tenant, template_id=template_id)
        query = _contact_preview_query(request)
        shown = contact_preview.template_contact_preview(
            tenant=request.tenant,
            actor=Actor.for_api_key(request.auth),
            template=template,
            contact_id=query["contact_id"],
            language=query.get("language", ""),
        )
        lint = template_services.template_lint(tenant=request.tenant, template=template)
        return Response(PreviewSerializer(_preview_body(shown, lint, synthetic=False)).data)
