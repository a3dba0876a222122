"""What every retention page shares: refusals, and turning a service refusal into a message."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpResponse
from django.shortcuts import redirect

from contacts.selectors import contact_lookup_many
from healthmail.accounts.requests import TenantRequest
from healthmail.accounts.views.access import actor_of
from healthmail.errors import ApplicationError
from healthmail.web.actions import service_run


def attempt(
    request: TenantRequest, action: Callable[[], object], success: str, back: str, **kwargs
) -> HttpResponse:
    """Run a service call; report its refusal (a user-facing message) or its success; redirect."""
    service_run(request, action, success)
    return redirect(back, **kwargs)


def download(content: bytes, filename: str, content_type: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def contacts_named(request: TenantRequest, form, *, purpose: str) -> tuple | None:
    """The form's contact ids plus the patients found by exact identifier; None (and the error on
    the form) when an identifier finds nobody or several people."""
    data = form.cleaned_data
    try:
        found = contact_lookup_many(
            tenant=request.tenant, actor=actor_of(request), identifiers=data["patients"], purpose=purpose
        )
    except ApplicationError as error:
        form.add_error("patients", error.message)
        return None
    return tuple(dict.fromkeys((*data["contact_ids"], *found)))
