"""Staff pages for the secure portal: which portal messages exist, whether they were read, the
recipients' replies (a PHI read, audited) and recall. Lists show ids and dates only (no PHI)."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.db.models import Count, Q
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from healthmail.accounts.requests import TenantRequest
from healthmail.accounts.views.access import actor_of, require_permission
from healthmail.errors import NotFound

from ..models import PortalMessage
from . import services

PERMISSION = "contacts.view_phi"  # replies are PHI; recall acts on a patient's message


def _portal_message_or_404(request: TenantRequest, portal_message_id: uuid.UUID) -> PortalMessage:
    try:
        return services.portal_message_get(tenant=request.tenant, portal_message_id=portal_message_id)
    except NotFound as error:
        raise Http404(error.message) from error


@require_permission(PERMISSION)
def portal_message_list(request: TenantRequest) -> HttpResponse:
    rows = (
        PortalMessage.objects.for_tenant(request.tenant)
        .annotate(
            reply_count=Count("replies"),
            unread_count=Count("replies", filter=Q(replies__staff_read_at__isnull=True)),
        )
        .order_by("-created_at")[:200]
    )
    context = {
        "portal_messages": rows,
        "unread_replies": services.portal_replies_unread(tenant=request.tenant),
    }
    return render(request, "delivery/portal/staff_list.html", context)


@require_permission(PERMISSION)
def portal_message_detail(request: TenantRequest, portal_message_id: uuid.UUID) -> HttpResponse:
    portal_message = _portal_message_or_404(request, portal_message_id)
    replies = services.portal_replies_read(
        tenant=request.tenant, actor=actor_of(request), portal_message=portal_message
    )
    context = {"portal_message": portal_message, "replies": replies}
    return render(request, "delivery/portal/staff_detail.html", context)


@require_permission(PERMISSION)
@require_POST
def portal_message_recall(request: TenantRequest, portal_message_id: uuid.UUID) -> HttpResponse:
    portal_message = _portal_message_or_404(request, portal_message_id)
    services.portal_recall(
        tenant=request.tenant,
        actor=actor_of(request),
        portal_message=portal_message,
        reason=request.POST.get("reason", "")[:200],
    )
    messages.success(request, "The message is withdrawn: its link now shows that the sender withdrew it.")
    return redirect("portal_staff:detail", portal_message_id=portal_message.pk)
