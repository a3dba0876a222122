"""Every page outside the short open list requires a signed-in, MFA-verified session. URL patterns are
read from the resolver, so a page added anywhere in the project is covered without editing this test."""

import re
import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RoutePattern

from healthmail.api_paths import API_PREFIXES
from tests.factories import UserFactory, confirmed_totp

from .conftest import password_only

pytestmark = pytest.mark.django_db

# Reachable without MFA: sign-in itself, the MFA steps, sign-out, invitations, health and metrics,
# static files, the API (API keys), public patient pages, tracking pixels/redirects, the favicon.
EXEMPT = (
    "/login/",
    "/mfa/",
    "/logout/",
    "/invite/",
    "/healthz",
    "/metrics",
    "/static/",
    *API_PREFIXES,
    "/p/",
    "/t/",
    "/favicon.ico",
)
_CONVERTER = re.compile(r"<(?:(\w+):)?\w+>")
_SAMPLES = {"uuid": str(uuid.UUID(int=1)), "int": "1", "slug": "sample", "str": "sample", "path": "sample"}


def _concrete(route: str) -> str:
    return _CONVERTER.sub(lambda m: _SAMPLES.get(m.group(1) or "str", "sample"), route)


def _walk(patterns, prefix: str = ""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + _route(entry))
        elif isinstance(entry, URLPattern):
            yield prefix + _route(entry)


def _route(entry) -> str:
    if isinstance(entry.pattern, RoutePattern):
        return _concrete(str(entry.pattern))
    regex = str(entry.pattern).lstrip("^").rstrip("$").replace("\\Z", "")
    return regex  # checked below: a regex page must live under an exempt prefix


def _paths() -> list[str]:
    paths = sorted({"/" + p for p in _walk(get_resolver().url_patterns)})
    return [p for p in paths if not p.startswith(EXEMPT)]


def test_regex_routes_are_only_used_under_exempt_prefixes():
    for path in _paths():
        assert not re.search(r"[\\()\[\]?*+|]", path), (
            f"{path}: give it a path() route so this test covers it"
        )


def test_the_enumeration_sees_the_project_pages():
    paths = _paths()
    assert "/" in paths
    assert "/members/" in paths
    assert f"/api-keys/{uuid.UUID(int=1)}/revoke/" in paths


@pytest.mark.parametrize("path", _paths())
def test_unverified_session_is_sent_to_mfa(client, path):
    user = UserFactory()
    confirmed_totp(user)
    password_only(client, user)
    for method in (client.get, client.post):
        response = method(path)
        assert response.status_code == 302, (path, response.status_code)
        assert response.url == "/mfa/verify/", path


@pytest.mark.parametrize("path", _paths())
def test_anonymous_request_is_sent_to_sign_in(client, path):
    response = client.get(path)
    assert response.status_code == 302, path
    assert response.url.startswith("/login/?next="), path
