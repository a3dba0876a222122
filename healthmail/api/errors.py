"""problem+json (RFC 9457) for every API error. Never a stack trace, never PHI."""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from healthmail.errors import ApplicationError

PROBLEM = "application/problem+json"


def problem(status_code: int, title: str, detail: str, **extra) -> Response:
    body = {"type": "about:blank", "title": title, "status": status_code, "detail": detail, **extra}
    return Response(body, status=status_code, content_type=PROBLEM)


def problem_exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        return problem(exc.status_code, exc.title, exc.message, code=exc.code, **exc.extra)
    if isinstance(exc, Http404):
        return problem(status.HTTP_404_NOT_FOUND, "Not found", "No such object.")
    if isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None
    detail = response.data
    if isinstance(detail, dict) and set(detail) == {"detail"}:
        detail = detail["detail"]
    title = getattr(exc, "default_detail", "Error")
    if isinstance(detail, str):
        body = {"type": "about:blank", "title": str(title), "status": response.status_code, "detail": detail}
    else:
        body = {
            "type": "about:blank",
            "title": "Invalid request",
            "status": response.status_code,
            "detail": "Some fields are invalid.",
            "errors": detail,
        }
    response.data = body
    response.content_type = PROBLEM
    return response
