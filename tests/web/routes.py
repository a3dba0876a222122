"""The web routes, read from the URL configuration (not a hand-kept list), for generated tests."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver

from healthmail.api_paths import is_api_path

_CONVERTER = re.compile(r"<(?:(?P<kind>[^>:]+):)?(?P<name>[^>]+)>")


@dataclass(frozen=True)
class Route:
    route: str  # "campaigns/<uuid:campaign_id>/", as Django prints it
    name: str  # "campaigns:detail", or the route itself when the pattern has no name
    parameters: tuple[str, ...]

    @property
    def is_api(self) -> bool:
        return is_api_path("/" + self.route)

    def path(self, **values: object) -> str:
        return "/" + _CONVERTER.sub(lambda match: str(values[match.group("name")]), self.route)


def _walk(patterns, prefix: str, namespace: str):
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _walk(pattern.url_patterns, route, inner)
        elif isinstance(pattern, URLPattern):
            name = f"{namespace}{pattern.name}" if pattern.name else route
            yield Route(route, name, tuple(m.group("name") for m in _CONVERTER.finditer(route)))


def all_routes() -> list[Route]:
    return list(_walk(get_resolver().url_patterns, "", ""))
