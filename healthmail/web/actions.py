"""How a page runs one service for a person: the refusal (an ApplicationError's message, written for
people) or the success is flashed on the page the view returns to. Shared by every app's views."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest

from healthmail.errors import ApplicationError


def service_run(request: HttpRequest, action: Callable[[], Any], success: str | Callable[[Any], str]) -> bool:
    """Run `action`; flash its refusal, or the success message (made from its result when `success`
    is a function). True when the service ran, False when it refused."""
    try:
        result = action()
    except ApplicationError as error:
        messages.error(request, error.message)
        return False
    messages.success(request, success(result) if callable(success) else success)
    return True
