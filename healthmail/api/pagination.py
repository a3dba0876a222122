from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rest_framework import exceptions, pagination
from rest_framework.settings import api_settings

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView


class CursorPagination(pagination.CursorPagination):
    """DRF's cursor pages, strict: a `page_size` that is not a whole number in range and a cursor
    this API did not give out answer 422 (DRF would silently use the default size, or answer 404
    as if the list itself did not exist)."""

    page_size_query_param = "page_size"
    max_page_size = 500
    ordering = "-created_at"

    def get_page_size(self, request: Request) -> int | None:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= self.max_page_size:
            raise exceptions.ValidationError(
                {self.page_size_query_param: [f"Must be a whole number from 1 to {self.max_page_size}."]}
            )
        return int(raw)

    def decode_cursor(self, request: Request) -> pagination.Cursor | None:
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound as exc:
            raise exceptions.ValidationError(
                {self.cursor_query_param: ["Not a cursor this API gave out; use `next` or `previous`."]}
            ) from exc

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] |= {
                    "minimum": 1,
                    "maximum": self.max_page_size,
                    "default": api_settings.PAGE_SIZE,
                }
        return parameters
