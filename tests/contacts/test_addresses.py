"""One address rule at every intake (API, import) and in the engine: `user@localhost` is refused with
422 when it arrives, not accepted with 202 and failed later."""

from __future__ import annotations

import pytest

from contacts.addresses import address_problem
from tests.api.conftest import assert_problem

ACCEPTED = [
    "pat@example.org",
    "pat.o'neil+clinic@mail.example.co.uk",
    "pat@xn--bcher-kva.example",  # IDN, as punycode
    "p@patients.test",  # the dev mail world's domain: .test is reserved but used on purpose
]
REFUSED = {
    "user@localhost": "has a domain without a dot, which cannot receive mail from the internet",
    "user@intranet": "has a domain without a dot, which cannot receive mail from the internet",
    "user@portal.localhost": "has a special-use domain that never receives internet mail",
    "user@printer.local": "has a special-use domain that never receives internet mail",
    "user@nowhere.invalid": "has a special-use domain that never receives internet mail",
    "user@[192.0.2.1]": "names an IP address instead of a domain",
    '"john doe"@example.org': "has a quoted local part, which we do not accept",
    f"{'a' * 65}@example.org": "has a part before the @ longer than 64 characters",
    f"pat@{'a' * 250}.org": "is longer than 254 characters",
    "pat@@example.org": "is not a valid email address",
    "pat example@example.org": "is not a valid email address",
    "no-at-sign.example.org": "is not a valid email address",
}


@pytest.mark.parametrize("address", ACCEPTED)
def test_deliverable_addresses_pass(address):
    assert address_problem(address) is None


@pytest.mark.parametrize(("address", "problem"), REFUSED.items())
def test_undeliverable_addresses_are_refused_with_the_reason(address, problem):
    assert address_problem(address) == problem


@pytest.mark.django_db
def test_contact_api_refuses_localhost_with_422(api, issue_key):
    response = api(issue_key()).post("/api/v1/contacts", {"email": "user@localhost"})
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"] == {"email": [REFUSED["user@localhost"]]}


@pytest.mark.django_db
def test_message_api_refuses_localhost_with_422_instead_of_202(api, issue_key):
    response = api(issue_key()).post(
        "/api/v1/messages",
        {
            "recipient": {"address": "user@localhost"},
            "purpose": "operations",
            "content": {"subject": "Notice", "html": "<p>Your appointment moved.</p>"},
        },
    )
    body = assert_problem(response, 422, "validation_failed")
    assert "localhost" not in response.content.decode()  # the reason, never the address
    assert body["errors"]["recipient"]["address"] == [f"The address {REFUSED['user@localhost']}."]


@pytest.mark.django_db
def test_import_refuses_the_same_addresses_as_row_errors(tenant_a):
    from tests.contacts.import_helpers import contacts, import_file, row_errors

    refused = ["user@localhost", "user@[192.0.2.1]", "user@printer.local"]
    rows = "".join(f"{address},Ada\n" for address in ["pat@example.org", *refused])
    job = import_file(tenant_a, f"Email,First name\n{rows}")

    assert (job.created_count, job.error_count) == (1, len(refused))
    errors = row_errors(job)
    assert [row for row, _column, _message in errors] == [3, 4, 5]
    for (_row, _column, message), address in zip(errors, refused, strict=True):
        assert REFUSED[address] in message
    assert len(contacts(tenant_a)) == 1
