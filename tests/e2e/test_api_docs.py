"""The API reference page works offline: Redoc comes from our own static files, and the page asks
nothing of any other host (before, its script came from a CDN and the page was blank offline)."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_api_docs_render_with_no_request_leaving_the_server(page, live_server_url):
    outside: list[str] = []

    def only_our_server(route):
        if route.request.url.startswith(live_server_url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_our_server)
    page.goto("/api/docs/")
    expect(page.get_by_role("heading", name="HealthMail API", level=1)).to_be_visible(
        timeout=30_000
    )  # a 1 MB script on a busy machine
    expect(page.get_by_text("Create or update one contact", exact=False).first).to_be_attached()
    assert outside == []
