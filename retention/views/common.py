"""What every retention page shares: refusals, and turning a service refusal into a message."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from healthmail.errors import ApplicationError


def attempt(
    request: HttpRequest, action: Callable[[], object], success: str, back: str, **kwargs
) -> HttpResponse:
    """Run a service call; report its refusal (a user-facing message) or its success; redirect."""
    try:
        action()
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, success)
    return redirect(back, **kwargs)


def download(content: bytes, filename: str, content_type: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
