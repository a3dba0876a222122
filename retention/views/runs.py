"""Disposal runs: list and plan now, preview and approve, progress (htmx), certificates."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_POST

from healthmail.accounts.requests import TenantRequest
from healthmail.accounts.views.access import actor_of, require_permission
from healthmail.errors import ApplicationError

from .. import certificates, disposal, selectors
from ..forms import ReasonForm
from ..models import DestructionCertificate
from ..registry import category_get
from .common import attempt, download


def _run_or_404(request: TenantRequest, run_id):
    run = selectors.run_get(tenant=request.tenant, run_id=run_id)
    if run is None:
        raise Http404("No such run.")
    return run


def _certificate_or_404(request: TenantRequest, run_id) -> DestructionCertificate:
    run = _run_or_404(request, run_id)
    certificate = DestructionCertificate.objects.filter(tenant=request.tenant, run=run).first()
    if certificate is None:
        raise Http404("This run has no certificate yet.")
    return certificate


@require_permission("retention.manage")
def run_list(request: TenantRequest) -> HttpResponse:
    return render(request, "retention/run_list.html", {"runs": selectors.run_list(tenant=request.tenant)})


@require_POST
@require_permission("retention.manage")
def run_plan(request: TenantRequest) -> HttpResponse:
    try:
        runs = disposal.disposal_plan(tenant=request.tenant, actor=actor_of(request), trigger="manual")
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("retention:run_list")
    if not runs:
        messages.info(request, "Nothing is past its maximum retention (or it is already in an open run).")
        return redirect("retention:run_list")
    messages.success(request, f"{len(runs)} run(s) planned. Review the preview before approving.")
    waiting = next((r for r in runs if r.requires_approval), runs[0])
    return redirect("retention:run_detail", run_id=waiting.pk)


def _preview_rows(run) -> list[dict]:
    rows = []
    for key, numbers in run.preview.items():
        try:
            label = category_get(key).label
        except KeyError:
            label = key
        rows.append({"key": key, "label": label, **numbers})
    return rows


@require_permission("retention.manage")
def run_detail(request: TenantRequest, run_id) -> HttpResponse:
    run = _run_or_404(request, run_id)
    context = {
        "run": run,
        "preview": _preview_rows(run),
        "counts": disposal.candidate_counts(tenant=request.tenant, run=run),
        "certificate": DestructionCertificate.objects.filter(tenant=request.tenant, run=run).first(),
        "cancel_form": ReasonForm(),
    }
    partial = request.htmx and not request.htmx.history_restore_request
    response = render(
        request, "retention/_run_progress.html" if partial else "retention/run_detail.html", context
    )
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_POST
@require_permission("retention.manage")
def run_approve(request: TenantRequest, run_id) -> HttpResponse:
    run = _run_or_404(request, run_id)
    return attempt(
        request,
        lambda: disposal.disposal_approve(
            tenant=request.tenant,
            actor=actor_of(request),
            run=run,
            sole_officer_reason=request.POST.get("sole_officer_reason", ""),
        ),
        "Run approved: destruction starts in the background; held records will be skipped.",
        "retention:run_detail",
        run_id=run.pk,
    )


@require_POST
@require_permission("retention.manage")
def run_cancel(request: TenantRequest, run_id) -> HttpResponse:
    run = _run_or_404(request, run_id)
    return attempt(
        request,
        lambda: disposal.disposal_cancel(
            tenant=request.tenant, actor=actor_of(request), run=run, reason=request.POST.get("reason", "")
        ),
        "Run cancelled: nothing was destroyed.",
        "retention:run_detail",
        run_id=run.pk,
    )


@require_permission("retention.manage")
def certificate_pdf(request: TenantRequest, run_id) -> HttpResponse:
    certificate = _certificate_or_404(request, run_id)
    name, content = certificates.certificate_pdf(
        tenant=request.tenant, actor=actor_of(request), certificate=certificate
    )
    return download(content, name, "application/pdf")


@require_permission("retention.manage")
def certificate_package(request: TenantRequest, run_id) -> HttpResponse:
    certificate = _certificate_or_404(request, run_id)
    name, content = certificates.certificate_package(
        tenant=request.tenant, actor=actor_of(request), certificate=certificate
    )
    return download(content, name, "application/zip")


@require_POST
@require_permission("retention.manage")
def certificate_verify(request: TenantRequest, run_id) -> HttpResponse:
    certificate = _certificate_or_404(request, run_id)
    problems = certificates.certificate_verify(tenant=request.tenant, certificate=certificate)
    if problems:
        messages.error(request, "The certificate does NOT verify: " + "; ".join(problems))
    else:
        messages.success(
            request, "The certificate verifies: signature intact, manifest matches the destroyed records."
        )
    return redirect("retention:run_detail", run_id=certificate.run_id)
