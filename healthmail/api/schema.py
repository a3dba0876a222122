"""OpenAPI generation: the Bearer scheme, problem+json error responses and Idempotency-Key, so the
schema tells integrators what every operation can answer without each view repeating it."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ComponentRegistry
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import Direction, OpenApiParameter, OpenApiResponse
from rest_framework.serializers import Serializer

from .errors import PROBLEM
from .idempotency import MAX_KEY_LENGTH, is_idempotent
from .serializers import ProblemSerializer

_BODY_METHODS = {"POST", "PUT", "PATCH"}
_IDEMPOTENT_METHODS = {"POST", "DELETE"}  # where a handler may declare Idempotency-Key (idempotency.py)
# Sent on every answer that passed the rate limit (authenticated calls); see throttling.py.
_RATE_LIMIT_HEADERS = {
    "RateLimit-Limit": "Requests allowed per window for this API key.",
    "RateLimit-Remaining": "Requests left in the current window.",
    "RateLimit-Reset": (
        "Seconds until the quota resets: the oldest request in the window leaves it and a slot frees "
        "up (at least 1, also while requests remain; equal to Retry-After on a 429)."
    ),
}
# An override parameter, as AutoSchema.get_override_parameters declares it.
Parameter = OpenApiParameter | Serializer[Any] | type[Serializer[Any]]


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "healthmail.api.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "hm_<prefix>_<secret>",
            "description": "An API key created by a tenant admin (shown once). Send "
            "`Authorization: Bearer <key>`. Each operation also needs the scopes it lists.",
        }


class ProblemAutoSchema(AutoSchema):
    def _handler(self) -> object:
        return getattr(self.view, self.method.lower(), None)

    def get_operation(
        self, path: str, path_regex: str, path_prefix: str, method: str, registry: ComponentRegistry
    ) -> dict[str, Any] | None:
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        scopes = getattr(self.view, "required_scopes", {}).get(self.method)
        if operation is not None and scopes is not None:
            # Machine-readable for tools and tests (tests/api/test_scope_enforcement.py); OpenAPI 3.0
            # keeps the scopes of a bearer scheme's security requirement empty.
            operation["x-required-scopes"] = list(scopes)
        return operation

    # drf-spectacular's AutoSchema drops the arguments of DRF's get_description (and ignores it too).
    def get_description(self) -> str:  # type: ignore[override]
        description = super().get_description()
        scopes = getattr(self.view, "required_scopes", {}).get(self.method)
        if scopes is None:
            return description
        needed = ", ".join(f"`{scope}`" for scope in scopes) or "none (any valid key)"
        return f"{description}\n\nRequired scopes: {needed}.".strip()

    def get_override_parameters(self) -> list[Parameter]:
        parameters = list(super().get_override_parameters())
        parameters.append(
            OpenApiParameter(
                "Retry-After",
                OpenApiTypes.INT,
                OpenApiParameter.HEADER,
                response=[429, 503],
                required=True,  # every 429 and 503 carries it (throttling.py, healthmail/outages.py)
                description="Seconds to wait before retrying.",
            )
        )
        parameters += [
            OpenApiParameter(
                name,
                OpenApiTypes.INT,
                OpenApiParameter.HEADER,
                response=True,
                required=False,
                description=description,
            )
            for name, description in _RATE_LIMIT_HEADERS.items()
        ]
        if self.method in _IDEMPOTENT_METHODS and is_idempotent(self._handler()):
            parameters += [
                OpenApiParameter(
                    "Idempotency-Key",
                    OpenApiTypes.STR,
                    OpenApiParameter.HEADER,
                    pattern=rf"^[\x21-\x7e]{{1,{MAX_KEY_LENGTH}}}$",
                    description="Repeat a write safely: the same key and body within 24 hours replay "
                    "the first answer; the same key with another body answers 422.",
                ),
                OpenApiParameter(
                    "Idempotent-Replayed",
                    OpenApiTypes.STR,
                    OpenApiParameter.HEADER,
                    response=[200, 201, 202, 204],
                    enum=["true"],
                    description="Present when this answer is a replay.",
                ),
            ]
        return parameters

    def _error_responses(self) -> dict[int, str]:
        errors = {
            401: "The API key is missing, malformed, unknown, revoked or expired, or its organization "
            "is suspended.",
            403: "The API key lacks a scope this operation needs.",
            429: "Too many requests for this API key; see Retry-After.",
            500: "Unexpected error; the body holds only the request id.",
            503: "A service behind the API (the database, the message broker) is briefly unreachable; "
            "nothing went wrong on your side: retry after Retry-After.",
        }
        if "{" in self.path:
            errors[404] = "No such object in your organization."
        if self.method == "GET" and self._get_paginator() is not None and self._is_list_view():
            errors[422] = "A query parameter is invalid (`page_size` out of range, a `cursor` not given out)."
        if self.method in _BODY_METHODS:
            errors |= {
                400: "The body is not valid JSON (or a header is malformed).",
                413: "The body is too large.",
                415: "The body is not application/json.",
                422: "Some fields are invalid; see `errors`.",
            }
        if self.method in _IDEMPOTENT_METHODS and is_idempotent(self._handler()):
            errors.setdefault(400, "The Idempotency-Key header is malformed.")
            errors[409] = "A request with this Idempotency-Key is still in progress."
            errors[422] = "Some fields are invalid, or the Idempotency-Key was used with another body."
        return errors

    def _get_response_bodies(self, direction: Direction = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        errors = {str(code): description for code, description in self._error_responses().items()}
        # Every error answers problem+json (healthmail/api/errors.py), whatever a view declared for it:
        # a view's own description of an error code is kept, its body shape is not.
        for code in sorted(errors.keys() | {code for code in responses if code[0] in "45"}):
            description = responses.get(code, {}).get("description") or errors.get(code, "")
            problem = OpenApiResponse(ProblemSerializer, description=description)
            responses[code] = self._get_response_for_code(problem, code, [PROBLEM], direction)
        return responses
