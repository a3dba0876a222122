"""problem+json (RFC 9457) for every API error. Never a stack trace, never PHI.

Every body has `type` (about:blank), `title` (the HTTP status phrase, as RFC 9457 §4.2.1 asks for
about:blank), `status`, `detail` (a sentence for a person), `code` (stable, for programs) and
`request_id` (what support needs to find the log lines). Validation errors add `errors`.

Three ways in: DRF's exception handler (errors inside API views), `problem_response()` for code
that runs outside DRF (middleware, the /api/ catch-all), and the project's handler400/403/404/500,
which answer problem+json under /api/ and a short HTML page elsewhere.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from healthmail.api_paths import is_api_path
from healthmail.errors import ApplicationError
from healthmail.observability import request_meta
from healthmail.outages import OUTAGE_DETAIL, OUTAGE_PAGE, is_outage, log_outage, retry_after_headers

PROBLEM = "application/problem+json"

logger = logging.getLogger("healthmail.api")

# DRF exception class → (stable code, detail we show instead of DRF's wording where it could leak).
_DRF_CODES: dict[type[exceptions.APIException], str] = {
    exceptions.ParseError: "malformed_request",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
    exceptions.ValidationError: "validation_failed",
}


def problem_body(status_code: int, detail: str, *, code: str, **extra: object) -> dict[str, object]:
    return {
        "type": "about:blank",
        "title": HTTPStatus(status_code).phrase,
        "status": status_code,
        "detail": detail,
        "code": code,
        "request_id": request_meta().request_id,
        **extra,
    }


def problem(
    status_code: int, detail: str, *, code: str, headers: Mapping[str, str] | None = None, **extra: object
) -> Response:
    """A problem+json answer from inside a DRF view."""
    body = problem_body(status_code, detail, code=code, **extra)
    return Response(body, status=status_code, content_type=PROBLEM, headers=headers)


def problem_response(status_code: int, detail: str, *, code: str, **extra: object) -> JsonResponse:
    """A problem+json answer from plain Django code (middleware, error handlers)."""
    body = problem_body(status_code, detail, code=code, **extra)
    return JsonResponse(body, status=status_code, content_type=PROBLEM)


def is_api_request(request: HttpRequest) -> bool:
    return is_api_path(request.path)


def _log_unexpected(exc: BaseException) -> None:
    # The traceback's frames name code, not data; the exception's message may quote values (an
    # IntegrityError echoes the conflicting key), so only its class is logged.
    logger.error(
        "api.unhandled_exception",
        extra={
            "exception_type": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "traceback": "".join(traceback.format_tb(exc.__traceback__)),
        },
    )


def _server_error_problem() -> dict[str, object]:
    return problem_body(
        status.HTTP_500_INTERNAL_SERVER_ERROR,
        "Something went wrong on our side. Quote the request id when you contact support.",
        code="server_error",
    )


def _validation_problem(exc: exceptions.ValidationError) -> dict[str, object]:
    errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
    return problem_body(
        status.HTTP_422_UNPROCESSABLE_ENTITY,
        "Some fields are invalid; see `errors`.",
        code="validation_failed",
        errors=errors,
    )


def _detail_text(exc: exceptions.APIException) -> str:
    detail = exc.detail
    if isinstance(exc, exceptions.ParseError) and str(detail).startswith("JSON parse error"):
        # DRF's own text quotes the JSON decoder's message; a fixed sentence is clearer and says enough.
        return "The request body is not valid JSON."
    if isinstance(detail, list | dict):
        return str(exc.default_detail)
    return str(detail)


def _outage_problem() -> Response:
    """PostgreSQL or Redis unreachable (healthmail/outages.py): 503 + Retry-After, never a 500."""
    body = problem_body(503, OUTAGE_DETAIL, code="service_unavailable")
    return Response(body, status=503, content_type=PROBLEM, headers=retry_after_headers())


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER: every exception raised in an API view becomes problem+json."""
    if is_outage(exc):
        log_outage(exc)
        return _outage_problem()
    if isinstance(exc, ApplicationError):
        return problem(exc.status_code, exc.message, code=exc.code, **exc.extra)
    if isinstance(exc, Http404):
        return problem(status.HTTP_404_NOT_FOUND, "No such object.", code="not_found")
    if isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.ValidationError):
        # Parsed but invalid: 422, so that 400 always means "could not read the request at all".
        return Response(_validation_problem(exc), status=422, content_type=PROBLEM)
    response = exception_handler(exc, context)
    # DRF answers only its own exceptions here (Http404 and Django's PermissionDenied were dealt with
    # above), so the isinstance() changes nothing: it tells the type checker what `exc` is below.
    if response is None or not isinstance(exc, exceptions.APIException):
        # Unexpected: log without data, undo the request's writes, answer with the request id only.
        _log_unexpected(exc)
        if transaction.get_connection().in_atomic_block:
            transaction.set_rollback(True)
        return Response(_server_error_problem(), status=500, content_type=PROBLEM)
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
    response.data = problem_body(response.status_code, _detail_text(exc), code=code)
    response.content_type = PROBLEM
    return response


# --- Django error handlers (wired in healthmail/urls.py) -----------------------------------------


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_request(request):
        return problem_response(400, "The request could not be read.", code="bad_request")
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_request(request):
        return problem_response(403, "You may not do this.", code="permission_denied")
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_request(request):
        return api_not_found(request)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    # Django calls this inside its `except`, for errors from views and from middleware alike.
    exc = sys.exc_info()[1]
    if exc is not None and is_outage(exc):
        log_outage(exc)
        return _outage_response(request)
    if is_api_request(request):
        return JsonResponse(_server_error_problem(), status=500, content_type=PROBLEM)
    return defaults.server_error(request)


def _outage_response(request: HttpRequest) -> HttpResponse:
    if is_api_request(request):
        body = problem_body(503, OUTAGE_DETAIL, code="service_unavailable")
        response: HttpResponse = JsonResponse(
            body, status=503, content_type=PROBLEM, headers=retry_after_headers()
        )
    else:
        # A fixed page: a template could reach the database (context processors, the session's user).
        response = HttpResponse(OUTAGE_PAGE, status=503, headers=retry_after_headers())
    # Logged once by log_outage(), as a warning: Django would add a traceback per request of an outage.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


@csrf_exempt  # answers any method with 404; a CSRF refusal here would be an HTML 403 instead
def api_not_found(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
    """The /api/ catch-all: an unknown API URL is a problem+json 404, never an HTML page."""
    return problem_response(404, "There is no API endpoint at this URL.", code="not_found")
