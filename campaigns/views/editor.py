"""The block email editor (GrapesJS with its MJML plugin) and the preview frame it shows.

The page only edits: the MJML it posts is rendered by mrml on the server and saved through the
template service (campaigns/services/editor.py), so lint, sandbox and versions work as for any template.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import escape
from django.views.decorators.http import require_GET

from healthmail.accounts.requests import TenantRequest
from healthmail.accounts.views.access import actor_of, require_permission
from healthmail.content_policy import block_editor_policy
from healthmail.errors import ApplicationError

from ..forms import DesignForm, TestSendForm
from ..models import Template
from ..services import editor as design_services
from ..services import previews
from ..services import templates as services
from ..templating.lint import findings_from_dicts
from .common import template_or_404
from .templates import EDIT

# The frame holds a rendered email only: no script runs, nothing loads but our inline styles and
# https images, and it cannot reach the page that embeds it (a unique origin).
PREVIEW_FRAME_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src https: data:"


def _merge_fields(request: TenantRequest, kind: str) -> list[dict]:
    field_set = services.field_set_for(tenant=request.tenant, kind=kind)
    return [
        {"name": f.name, "label": f.label, "phi": f.phi}
        for f in sorted(field_set.fields.values(), key=lambda f: f.name)
    ]


def _footer_preview(request: TenantRequest) -> str:
    """What the locked footer placeholder says; the real one is rendered per message."""
    sender = services.branding_get(tenant=request.tenant).sender_name or request.tenant.name
    address = " ".join(request.tenant.postal_address.split())
    return f"{sender} · {address} · Unsubscribe · Email preferences (added to every message)"


def _context(request: TenantRequest, template: Template | None, form: DesignForm, language: str) -> dict:
    kind = template.kind if template else Template.Kind.MARKETING
    return {
        "template": template,
        "form": form,
        "language": language,
        "merge_fields": _merge_fields(request, kind),
        "mjml": form["mjml"].value() or "",
        "findings": findings_from_dicts(template.lint.get("findings", [])) if template else [],
        "footer_preview": _footer_preview(request),
        "test_form": TestSendForm(initial={"address": request.user.email, "language": language}),
    }


def _saved_note(saved: design_services.DesignSaved) -> str:
    if saved.version is not None:
        return f"Saved as version {saved.version.number}; the compliance check found no errors."
    return (
        f"Saved. The compliance check found {len(saved.lint.errors)} error(s): "
        "campaigns cannot use it until they are fixed."
    )


@require_permission(EDIT)
@block_editor_policy
def template_design(request: TenantRequest, template_id=None) -> HttpResponse:
    template = template_or_404(request, template_id) if template_id is not None else None
    language = (request.POST.get("language") or request.GET.get("language") or "").lower()
    if template is not None:
        language = language or template.default_language
        current = services.template_content_get(template=template, language=language)
        initial = {"name": template.name, "kind": template.kind, "language": language}
        if current is not None:
            initial |= {"subject": current.subject, "preheader": current.preheader, "mjml": current.mjml}
    else:
        language = language or "en"
        initial = {"language": language}
    form = DesignForm(request.POST or None, initial=initial)
    if template is not None:
        form.fields["name"].disabled = form.fields["kind"].disabled = True
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            saved = design_services.template_design_save(
                tenant=request.tenant,
                actor=actor_of(request),
                template=template,
                name=data["name"],
                kind=data["kind"],
                design=design_services.DesignInput(
                    data["language"], data["subject"], data["preheader"], data["mjml"]
                ),
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, _saved_note(saved))
            url = reverse("campaigns:template_design", kwargs={"template_id": saved.template.pk})
            return redirect(f"{url}?language={data['language'].lower()}")
    return render(
        request,
        "campaigns/template_design.html",
        _context(request, template, form, language),
        status=400 if form.is_bound else 200,
    )


@require_GET
@require_permission(EDIT)
def template_preview_frame(request: TenantRequest, template_id) -> HttpResponse:
    """The rendered email alone (synthetic contact), for the preview frames of the editor."""
    template = template_or_404(request, template_id)
    shown = previews.template_preview(
        tenant=request.tenant, template=template, language=request.GET.get("language", "")
    )
    body = shown.rendered.html if shown.rendered else f"<p>{escape(shown.error)}</p>"
    response = HttpResponse(body, content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = PREVIEW_FRAME_CSP
    response["X-Frame-Options"] = "SAMEORIGIN"
    return response
