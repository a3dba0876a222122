"""The Content-Security-Policy (healthmail/content_policy.py): every page answers with it, templates
carry nothing it would block, and only the pages that show an email in a frame widen it (style)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings

from healthmail.accounts.roles import Role
from tests.web.routes import all_routes

pytestmark = pytest.mark.django_db

STRICT = {
    "default-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
    "style-src": "'self'",
}


def directives(header: str) -> dict[str, str]:
    parts = (part.strip().split(None, 1) for part in header.split(";") if part.strip())
    return {part[0]: part[1] if len(part) > 1 else "" for part in parts}


def assert_strict(response) -> None:
    assert "Content-Security-Policy" in response, response.request["PATH_INFO"]
    policy = directives(response["Content-Security-Policy"])
    for name, value in STRICT.items():
        assert policy.get(name) == value, (response.request["PATH_INFO"], name, policy.get(name))
    script = policy["script-src"].split()
    assert script[0] == "'self'"
    assert "'unsafe-inline'" not in script
    assert "'unsafe-eval'" not in script


def test_every_page_without_an_id_answers_with_the_strict_policy(member_client):
    """Generated from the URL configuration: each HTML page a tenant admin can open (GET, no id)."""
    client = member_client(Role.TENANT_ADMIN)
    seen = 0
    for route in all_routes():
        if route.parameters or route.is_api or route.route in {"healthz", "metrics", "favicon.ico"}:
            continue
        response = client.get(route.path())
        if not response.get("Content-Type", "").startswith("text/html"):
            continue
        assert_strict(response)
        seen += 1
    assert seen >= 20  # the walk found the pages (a broken walk must not pass quietly)


# Pages that widen the policy on purpose (healthmail/content_policy.py): an email shown in the page,
# the block editor, and the sandboxed frame of an email alone. Scripts stay as strict everywhere.
WIDENED = {
    "campaigns:campaign_detail",
    "campaigns:template_preview",
    "campaigns:template_design",
    "campaigns:template_preview_frame",
}


def _id_pages():
    from tests.isolation.test_web_routes import _covered, _id_routes

    return [route for route in _id_routes() if _covered(route)]


def test_the_id_page_walk_finds_the_pages():
    assert len(_id_pages()) >= 30  # a broken walk must not pass quietly


@pytest.mark.parametrize("route", _id_pages(), ids=lambda route: route.name)
def test_every_page_with_an_id_answers_with_the_policy(route, member_client, tenant_a):
    """Generated like the isolation test (tests/isolation/test_web_routes.py, whose object factories
    it borrows): each id-bearing page opened by a tenant admin on the tenant's own objects."""
    from tests.isolation.test_web_routes import FACTORIES

    values: dict[str, object] = {}
    for name in reversed(route.parameters):  # the innermost factory may name its parents too
        if name not in values:
            values.update(FACTORIES[name](tenant_a))
    response = member_client(Role.TENANT_ADMIN).get(route.path(**values))
    assert "Content-Security-Policy" in response, response.status_code
    if route.name not in WIDENED:
        assert_strict(response)
        return
    policy = directives(response["Content-Security-Policy"])
    script = policy.get("script-src", policy["default-src"]).split()
    assert "'unsafe-inline'" not in script
    assert "'unsafe-eval'" not in script


@pytest.mark.parametrize("path", ["/login/", "/no-such-page/", "/p/preferences/not-a-token/"])
def test_signed_out_and_error_pages_answer_with_the_strict_policy(client, path):
    assert_strict(client.get(path))


def test_the_api_reference_keeps_its_own_policy(client):
    policy = directives(client.get("/api/docs/")["Content-Security-Policy"])
    assert policy["default-src"] == "'self'"
    assert policy["style-src"] == "'self' 'unsafe-inline'"  # Redoc styles itself inline
    assert policy["frame-ancestors"] == "'none'"


def test_email_preview_pages_widen_style_and_images_only(client, settings):
    from healthmail.content_policy import email_preview_policy

    def view(request):
        from django.http import HttpResponse

        return HttpResponse("<p>preview</p>")

    from csp.middleware import CSPMiddleware
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    middleware = CSPMiddleware(lambda request: email_preview_policy(view)(request))
    policy = directives(middleware(request)["Content-Security-Policy"])
    assert policy["style-src"] == "'self' 'unsafe-inline'"
    assert policy["img-src"] == "'self' data: https:"
    assert policy["script-src"].split()[0] == "'self'"
    assert "'unsafe-inline'" not in policy["script-src"]
    assert policy["object-src"] == "'none'"


TEMPLATE_DIRS = [Path(settings.BASE_DIR) / "templates", *Path(settings.BASE_DIR).glob("*/templates")]
DJANGO_COMMENT = re.compile(r"{#.*?#}|{% comment %}.*?{% endcomment %}", re.S)
INLINE = [
    ("inline <script> block", re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)),
    ("inline event handler", re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I)),
    ("style attribute", re.compile(r"<[a-z][^>]*\sstyle\s*=", re.I)),
    ("<style> element", re.compile(r"<style[\s>]", re.I)),
    ("javascript: URL", re.compile(r"""(?:href|src|action)\s*=\s*["']\s*javascript:""", re.I)),
]


def test_templates_carry_nothing_the_policy_blocks():
    """JavaScript and CSS live in static files; a nonce is the only way to keep a script inline."""
    found = []
    for directory in TEMPLATE_DIRS:
        for template in directory.rglob("*.html"):
            # Django comments are blanked (line numbers kept): they never reach the browser.
            text = DJANGO_COMMENT.sub(
                lambda m: re.sub(r"[^\n]", " ", m.group(0)), template.read_text("utf-8")
            )
            for label, pattern in INLINE:
                for match in pattern.finditer(text):
                    if label == "inline <script> block" and "csp_nonce" in match.group(0):
                        continue
                    line = text.count("\n", 0, match.start()) + 1
                    found.append(f"{template.relative_to(settings.BASE_DIR)}:{line}: {label}")
    assert not found, "\n".join(found)


def test_the_block_editor_page_allows_inline_style_and_nothing_else_more():
    from healthmail.content_policy import block_editor_policy

    def view(request):
        from django.http import HttpResponse

        return HttpResponse("<p>editor</p>")

    from csp.middleware import CSPMiddleware
    from django.test import RequestFactory

    middleware = CSPMiddleware(lambda request: block_editor_policy(view)(request))
    policy = directives(middleware(RequestFactory().get("/"))["Content-Security-Policy"])
    assert policy["style-src"] == "'self' 'unsafe-inline'"
    assert policy["img-src"] == "'self' data:"
    assert "'unsafe-inline'" not in policy["script-src"]
    assert policy["object-src"] == "'none'"
