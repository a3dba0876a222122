"""Errors services raise with a message safe to show the user (no PHI, no internals).

One DRF exception handler (healthmail.api.errors) and the web views turn them into answers.
"""

from typing import Any


class ApplicationError(Exception):
    status_code = 400
    title = "Request refused"

    def __init__(self, message: str, *, code: str = "", extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.__class__.__name__
        self.extra = extra or {}


class NotFound(ApplicationError):
    status_code = 404
    title = "Not found"


class PermissionRefused(ApplicationError):
    status_code = 403
    title = "Not allowed"


class PhiFlowRefused(ApplicationError):
    """PHI may not flow for this tenant and service (no active BAA in scope, or suspended)."""

    status_code = 403
    title = "PHI flow refused"


class Conflict(ApplicationError):
    status_code = 409
    title = "Conflict"
