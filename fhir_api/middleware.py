"""Every error under the FHIR base is an OperationOutcome, including the ones no FHIR view answers.

The FHIR views re-dress their own problems (outcomes.fhir_exception_handler), but some answers are
made before or around a view by the API's shared handlers (healthmail/api/errors.py): the 503 of a
database or Redis outage (raised while the request's transaction opens, outside DRF), a 500, and
Django's 400 and 403. Those are problem+json; this middleware turns any problem+json answer under
the FHIR base into the OperationOutcome saying the same thing, keeping the status and every header
(Retry-After, RateLimit-*, X-Request-ID), so a FHIR client never has to parse a second error format.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from healthmail.api.errors import PROBLEM

from .outcomes import FHIR_JSON, outcome_of_problem

# The canonical base (every URL the server gives out) and the one the EHR standards name, which
# serves the same views (healthmail/urls.py).
FHIR_BASE = "/api/fhir/r4/"
FHIR_BASES = (FHIR_BASE, "/fhir/r4/")


class FhirOutcomeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path.startswith(FHIR_BASES) or response.streaming:
            return response
        if response.get("Content-Type", "").split(";")[0].strip() != PROBLEM:
            return response
        try:
            problem = json.loads(response.content)
        except ValueError:
            return response
        if not isinstance(problem, dict) or "status" not in problem or "detail" not in problem:
            return response
        problem.setdefault("code", "error")
        response.content = json.dumps(outcome_of_problem(problem)).encode()
        response["Content-Type"] = FHIR_JSON
        if response.has_header("Content-Length"):  # set by CommonMiddleware, below this one
            response["Content-Length"] = str(len(response.content))
        return response
