"""A tenant admin registers a SMART backend client by pasting its public JWK Set, reads the
client_id the system needs, and revokes it."""

import json

import pytest
from joserfc.jwk import KeySet
from playwright.sync_api import expect

from healthmail.accounts.models import SmartClient
from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context
from tests.fhir.smart import new_key

from .conftest import browser_sign_in, screenshot

pytestmark = pytest.mark.browser


def test_admin_registers_and_revokes_a_smart_client(page, make_person):
    admin = make_person(Role.TENANT_ADMIN)
    public = json.dumps(KeySet([new_key("ES384")]).as_dict(private=False))

    browser_sign_in(page, admin)
    page.get_by_role("link", name="SMART clients").first.click()
    page.get_by_role("link", name="Register a SMART client").click()
    page.get_by_label("Name").fill("Epic production")
    page.get_by_label("JWK Set (inline)").fill(public)
    page.get_by_label("contacts:read", exact=False).first.check()
    page.get_by_role("button", name="Register").click()

    with tenant_context(admin.tenant):
        client = SmartClient.objects.get(tenant=admin.tenant)
    expect(page.get_by_role("status")).to_contain_text(client.client_id)
    row = page.get_by_role("row", name="Epic production")
    expect(row).to_contain_text("Active")
    screenshot(page, "smart-clients")

    row.get_by_role("button", name="Revoke Epic production").click()
    expect(page.get_by_role("row", name="Epic production")).to_contain_text("Revoked")
    with tenant_context(admin.tenant):
        assert SmartClient.objects.get(pk=client.pk).revoked_at is not None
