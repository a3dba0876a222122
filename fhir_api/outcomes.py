"""FHIR answers: the JSON media type and OperationOutcome for every error.

The error semantics have one home, the API's problem handler (healthmail/api/errors.py): each
exception becomes the same status, sentence and stable code there, and this module only re-dresses
that problem document as an OperationOutcome, so the FHIR interface never says something the REST
API would not.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import renderers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response

from healthmail.api.errors import problem_body, problem_exception_handler
from healthmail.api.parsers import StrictJSONParser

FHIR_JSON = "application/fhir+json"

# HTTP status → OperationOutcome issue type (http://hl7.org/fhir/issue-type).
_ISSUE_TYPES = {
    400: "structure",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "processing",
    429: "throttled",
    503: "transient",
}


class FhirJSONRenderer(renderers.JSONRenderer):
    media_type = FHIR_JSON
    format = "json"


class FhirJSONParser(StrictJSONParser):
    media_type = FHIR_JSON


class PlainJSONParser(StrictJSONParser):
    """Many clients post resources as application/json; the body is the same."""


class AlwaysFhirJSON(BaseContentNegotiation):
    """One representation only: FHIR JSON whatever Accept says (XML is not offered; the
    CapabilityStatement says so), instead of a 406 for `Accept: application/fhir+xml, */*`."""

    def select_parser(self, request, parsers):
        for parser in parsers:
            if request.content_type.split(";")[0].strip() == parser.media_type:
                return parser
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def issue(severity: str, code: str, diagnostics: str, *, details: str = "", expression: str = "") -> dict:
    found: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if details:
        found["details"] = {"text": details}
    if expression:
        found["expression"] = [expression]
    return found


def operation_outcome(issues: list[dict], *, request_id: str = "") -> dict:
    outcome: dict[str, Any] = {"resourceType": "OperationOutcome", "issue": issues}
    if request_id:
        outcome["id"] = request_id
    return outcome


def _fhir_path(path: str) -> str:
    """A problem's field path (`$.a[0].b` or `name`) as a FHIRPath-like expression."""
    return path.removeprefix("$.").removeprefix("$") or "resource"


def outcome_of_problem(body: dict) -> dict:
    """The OperationOutcome saying what a problem+json document says (its id is the request id)."""
    status = int(body["status"])
    code = _ISSUE_TYPES.get(status, "exception")
    severity = "error" if status < 500 else "fatal"
    issues = [issue(severity, code, body["detail"], details=body["code"])]
    for field, messages in (body.get("errors") or {}).items():
        for message in messages if isinstance(messages, list) else [messages]:
            text = message if isinstance(message, str) else str(message)
            issues.append(issue("error", "invalid", text, details=body["code"], expression=_fhir_path(field)))
    return operation_outcome(issues, request_id=body.get("request_id", ""))


def fhir_exception_handler(exc, context) -> Response:
    """DRF exception handler of the FHIR views: the API's problem, as an OperationOutcome."""
    problem = problem_exception_handler(exc, context)
    problem.data = outcome_of_problem(problem.data)
    problem.content_type = FHIR_JSON
    return problem


def information(detail: str, *, code: str) -> dict:
    return operation_outcome([issue("information", "informational", detail, details=code)])


@csrf_exempt
def fhir_not_found(request: HttpRequest, *args, **kwargs) -> JsonResponse:
    """Any other URL under the FHIR base: an OperationOutcome 404."""
    body = outcome_of_problem(problem_body(404, "This FHIR server has no such endpoint.", code="not_found"))
    return JsonResponse(body, status=404, content_type=FHIR_JSON)
