"""Delivery pages: sending progress per source (live), message search for support staff (masked),
delivery evidence per message and the recipient-domain TLS table for compliance."""

from __future__ import annotations

import uuid

from django import forms
from django.http import Http404, HttpResponse
from django.shortcuts import render

from delivery.engine import selectors
from healthmail import labels
from healthmail.accounts.requests import TenantRequest
from healthmail.accounts.roles import role_can
from healthmail.accounts.views.access import actor_of, require_permission
from healthmail.disclosure import Viewer, shows_aggregates
from healthmail.errors import NotFound

POLL_SECONDS = 2
NO_SOURCE_ID = "-"  # the URL of messages without a source id (e.g. API sends without a reference)


class MessageSearchForm(forms.Form):
    q = forms.CharField(
        max_length=300,
        label="Message id",
        help_text="The message's id (a UUID) or its Message-ID header, e.g. <…@mail.example.org>.",
    )


@shows_aggregates
@require_permission("delivery.view_progress")
def source_list(request: TenantRequest) -> HttpResponse:
    viewer = Viewer.of(request)
    found = selectors.source_list(tenant=request.tenant)
    # The campaign's or journey's name, never its id (healthmail/labels.py).
    names = labels.source_names(tenant=request.tenant, sources=[(p.source_type, p.source_id) for p in found])
    sources = [
        (
            progress,
            selectors.source_progress_shown(tenant=request.tenant, viewer=viewer, progress=progress),
            names[(progress.source_type, progress.source_id)],
        )
        for progress in found
    ]
    return render(request, "delivery/engine/source_list.html", {"sources": sources})


@shows_aggregates
@require_permission("delivery.view_progress")
def source_progress(request: TenantRequest, source_type: str, source_id: str) -> HttpResponse:
    source_id = "" if source_id == NO_SOURCE_ID else source_id
    try:
        progress = selectors.source_progress(
            tenant=request.tenant, source_type=source_type, source_id=source_id
        )
    except NotFound as error:
        raise Http404(error.message) from error
    shown = selectors.source_progress_shown(
        tenant=request.tenant, viewer=Viewer.of(request), progress=progress
    )
    name = labels.source_names(tenant=request.tenant, sources=[(source_type, source_id)])
    context = {
        "progress": progress,
        "shown": shown,
        "poll_seconds": POLL_SECONDS,
        "source_name": name[(source_type, source_id)],
    }
    # htmx polls the counts only; a finished source stops polling (no hx-trigger in the fragment).
    template = "delivery/engine/_progress.html" if request.htmx else "delivery/engine/source_progress.html"
    return render(request, template, context)


@require_permission("delivery.search")
def message_search(request: TenantRequest) -> HttpResponse:
    form = MessageSearchForm(request.GET or None)
    context: dict = {"form": form}
    status = 200
    if form.is_valid():
        try:
            message = selectors.message_find(tenant=request.tenant, query=form.cleaned_data["q"])
        except NotFound as error:
            context["not_found"] = error.message
            status = 404
        else:
            context["message"] = message
            context["address"] = selectors.masked_address(
                tenant=request.tenant,
                actor=actor_of(request),
                message=message,
                purpose="support: message search",
            )
            context["can_view_evidence"] = role_can(request.role, "delivery.view_evidence")
            source = (message.source_type, message.source_id)
            context["source_name"] = labels.source_names(tenant=request.tenant, sources=[source])[source]
    return render(request, "delivery/engine/message_search.html", context, status=status)


@require_permission("delivery.view_evidence")
def message_evidence(request: TenantRequest, message_id: uuid.UUID) -> HttpResponse:
    try:
        message = selectors.message_get(tenant=request.tenant, message_id=message_id)
    except NotFound as error:
        raise Http404(error.message) from error
    context = {
        "message": message,
        "address": selectors.masked_address(
            tenant=request.tenant,
            actor=actor_of(request),
            message=message,
            purpose="compliance: delivery evidence",
        ),
        "attempts": selectors.message_attempts(tenant=request.tenant, message=message),
        "tls": (message.evidence or {}).get("tls") or {},
    }
    return render(request, "delivery/engine/message_evidence.html", context)


@require_permission("delivery.view_evidence")
def domain_table(request: TenantRequest) -> HttpResponse:
    rows = selectors.domain_table(tenant=request.tenant)
    return render(request, "delivery/engine/domain_table.html", {"rows": rows})
