"""Template pages: the list, the editor (one language at a time, lint on every save), the preview at
desktop and phone widths with a synthetic contact, test sends, reusable blocks and branding."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from healthmail.accounts.requests import TenantRequest
from healthmail.accounts.views.access import actor_of, require_permission
from healthmail.content_policy import email_preview_policy
from healthmail.errors import ApplicationError, NotFound

from .. import selectors
from ..forms import BlockForm, BrandingForm, TemplateForm, TestSendForm
from ..services import previews
from ..services import templates as services
from ..templating import fields as merge_fields
from ..templating.lint import RULES, findings_from_dicts
from .common import template_or_404

EDIT = "templates.edit"


@require_GET
@require_permission(EDIT)
def template_list(request: TenantRequest) -> HttpResponse:
    return render(
        request, "campaigns/template_list.html", {"templates": selectors.template_list(tenant=request.tenant)}
    )


def _editor_context(request: TenantRequest, template, form, language: str) -> dict:
    field_set = services.field_set_for(tenant=request.tenant, kind=template.kind if template else "marketing")
    return {
        "template": template,
        "form": form,
        "language": language,
        "languages": sorted(services.template_contents(template=template)) if template else [],
        "findings": findings_from_dicts(template.lint.get("findings", [])) if template else [],
        "merge_fields": sorted(field_set.fields.values(), key=lambda f: f.name),
        "allow_data": field_set.allow_data,
        "rules": RULES,
        "blocks": selectors.block_list(tenant=request.tenant),
        "test_form": TestSendForm(initial={"address": request.user.email, "language": language}),
        "data_prefix": merge_fields.DATA_PREFIX,
    }


@require_permission(EDIT)
def template_new(request: TenantRequest) -> HttpResponse:
    form = TemplateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            template = services.template_create(
                tenant=request.tenant,
                actor=actor_of(request),
                name=data["name"],
                kind=data["kind"],
                description=data["description"],
                content=services.ContentInput(
                    data["language"], data["subject"], data["preheader"], data["html"], data["text"]
                ),
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, f"Template “{template.name}” saved. {_lint_note(template)}")
            return redirect("campaigns:template_edit", template_id=template.pk)
    status = 400 if form.is_bound else 200
    return render(
        request, "campaigns/template_edit.html", _editor_context(request, None, form, "en"), status=status
    )


def _lint_note(template) -> str:
    findings = findings_from_dicts(template.lint.get("findings", []))
    errors = sum(1 for f in findings if f.severity == "error")
    if errors:
        return f"The compliance check found {errors} error(s): campaigns cannot use it until they are fixed."
    return "The compliance check found no errors."


@require_permission(EDIT)
def template_edit(request: TenantRequest, template_id) -> HttpResponse:
    template = template_or_404(request, template_id)
    contents = services.template_contents(template=template)
    language = (
        request.POST.get("language") or request.GET.get("language") or template.default_language
    ).lower()
    current = contents.get(language)
    initial = {
        "name": template.name,
        "kind": template.kind,
        "description": template.description,
        "language": language,
        "make_default": language == template.default_language,
        **(current.as_dict() if current else {}),
    }
    form = TemplateForm(request.POST or None, initial=initial)
    form.fields["kind"].disabled = True
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.template_update(
                tenant=request.tenant,
                actor=actor_of(request),
                template=template,
                name=data["name"],
                description=data["description"],
                make_default=data["make_default"],
                content=services.ContentInput(
                    data["language"], data["subject"], data["preheader"], data["html"], data["text"]
                ),
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            template = template_or_404(request, template_id)
            messages.success(request, f"Saved. {_lint_note(template)}")
            return redirect(f"{request.path}?language={data['language']}")
    status = 400 if form.is_bound else 200
    return render(
        request,
        "campaigns/template_edit.html",
        _editor_context(request, template, form, language),
        status=status,
    )


@email_preview_policy
@require_GET
@require_permission(EDIT)
def template_preview(request: TenantRequest, template_id) -> HttpResponse:
    template = template_or_404(request, template_id)
    shown = previews.template_preview(
        tenant=request.tenant, template=template, language=request.GET.get("language", "")
    )
    return render(request, "campaigns/template_preview.html", {"template": template, "preview": shown})


@require_POST
@require_permission(EDIT)
def template_test_send(request: TenantRequest, template_id) -> HttpResponse:
    template = template_or_404(request, template_id)
    form = TestSendForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give an email address.")
    else:
        try:
            previews.template_test_send(
                tenant=request.tenant,
                actor=actor_of(request),
                template=template,
                address=form.cleaned_data["address"],
                language=form.cleaned_data["language"],
            )
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, "A test message with synthetic data is on its way.")
    if request.POST.get("return_to") == "design":
        return redirect("campaigns:template_design", template_id=template.pk)
    return redirect("campaigns:template_edit", template_id=template.pk)


@require_GET
@require_permission(EDIT)
def block_list(request: TenantRequest) -> HttpResponse:
    return render(
        request, "campaigns/block_list.html", {"blocks": selectors.block_list(tenant=request.tenant)}
    )


@require_permission(EDIT)
def block_edit(request: TenantRequest, block_id=None) -> HttpResponse:
    block = None
    if block_id is not None:
        try:
            block = selectors.block_get(tenant=request.tenant, block_id=block_id)
        except NotFound:
            raise Http404("No such block.") from None
    initial = {"key": block.key, "name": block.name, "html": block.html} if block else {}
    form = BlockForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            block = services.block_save(
                tenant=request.tenant, actor=actor_of(request), block=block, **form.cleaned_data
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            messages.success(
                request, f"Block “{block.name}” saved; templates that include it were checked again."
            )
            return redirect("campaigns:block_list")
    return render(
        request,
        "campaigns/block_edit.html",
        {"form": form, "block": block},
        status=400 if form.is_bound else 200,
    )


@require_permission(EDIT)
def branding_edit(request: TenantRequest) -> HttpResponse:
    branding = services.branding_get(tenant=request.tenant)
    initial = {name: getattr(branding, name) for name in BrandingForm.base_fields}
    form = BrandingForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.branding_update(tenant=request.tenant, actor=actor_of(request), values=form.cleaned_data)
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, "Branding saved.")
            return redirect("campaigns:branding")
    return render(request, "campaigns/branding.html", {"form": form}, status=400 if form.is_bound else 200)
