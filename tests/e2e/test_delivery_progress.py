"""A compliance officer opens a sending campaign and watches its counts move without reloading the page.

An officer reads PHI, so the counts are exact (from 11 up); marketers and tenant admins (masked by
default) see them through the disclosure policy (noisy, rounded: tests/privacy), which a live-update
test cannot pin down."""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from delivery.models import Message
from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context
from tests.delivery.engine_support import enqueue, verified_sender_domain

from .conftest import browser_sign_in, screenshot

pytestmark = pytest.mark.browser


def test_officer_follows_sending_progress_live(page, make_person):
    admin = make_person(Role.COMPLIANCE_OFFICER)
    tenant = admin.tenant
    sender = verified_sender_domain(tenant, f"mail.{tenant.slug}.test")[0]
    messages = enqueue(
        tenant,
        [f"p{i}@good.test" for i in range(24)],
        sender_domain=sender,
        stream="marketing",
        source_id="6a3f0e1c-0000-4000-8000-000000000001",
        content=None,
    )

    browser_sign_in(page, admin)
    page.get_by_role("link", name="Sending").first.click()
    page.get_by_role("link", name="Campaign (not found)").click()  # named, never its id
    expect(page.get_by_role("heading", name="Sending…")).to_be_visible()
    expect(page.get_by_test_id("pending")).to_have_text("24")
    screenshot(page, "delivery-progress-sending")

    with tenant_context(tenant):  # two are delivered, then the rest, as a worker would record them
        Message.objects.filter(pk__in=[m.pk for m in messages[:12]]).update(
            state=Message.State.DELIVERED_TLS, finished_at=timezone.now()
        )
    expect(page.get_by_test_id("delivered")).to_have_text("12", timeout=10_000)
    expect(page.get_by_test_id("pending")).to_have_text("12")
    with tenant_context(tenant):
        Message.objects.filter(pk__in=[m.pk for m in messages[12:]]).update(
            state=Message.State.BOUNCED, finished_at=timezone.now()
        )
    expect(page.get_by_role("heading", name="Finished")).to_be_visible(timeout=10_000)
    expect(page.get_by_test_id("percent-done")).to_have_text("100%")
    expect(page.get_by_test_id("not-delivered")).to_have_text("12")
    screenshot(page, "delivery-progress-finished")
