"""A Python client generated from the schema the live server serves (openapi-python-client, as an
integrator would generate one) creates and reads a contact and sends and reads a message.

The generator runs with --fail-on-warning: a schema it cannot turn into code (a default outside its
enum, a dangling reference) fails here. The generated package lives in a temporary directory and is
never committed."""

from __future__ import annotations

import importlib
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from healthmail.accounts.api_keys import api_key_create
from healthmail.actors import Actor
from tests.delivery.engine_support import verified_sender_domain
from tests.factories import BaaFactory, TenantFactory
from tests.live_server import served_over_http

PACKAGE = "healthmail_api_client"
SCOPES = ["contacts:read", "contacts:write", "contacts:phi", "messages:send", "messages:read"]


@pytest.fixture(scope="module")
def server_url(django_db_setup, django_db_blocker) -> Iterator[str]:
    with served_over_http(django_db_blocker) as url:
        yield url


@pytest.fixture(scope="module")
def generated(server_url, tmp_path_factory, django_db_blocker) -> Iterator[object]:
    """The client package, generated from GET /api/schema/ of the running server."""
    workdir = tmp_path_factory.mktemp("generated-client")
    with (
        django_db_blocker.unblock(),  # the server's request opens a transaction
        urllib.request.urlopen(f"{server_url}/api/schema/?format=json", timeout=30) as answer,  # noqa: S310
    ):
        (workdir / "schema.json").write_bytes(answer.read())
    # No post hooks: the generator would run ruff over the code; we only import it.
    (workdir / "config.yaml").write_text(f"package_name_override: {PACKAGE}\npost_hooks: []\n")
    arguments = [
        "--path",
        "schema.json",
        "--output-path",
        PACKAGE,
        "--meta",
        "none",
        "--config",
        "config.yaml",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", *arguments, "--fail-on-warning"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(workdir))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(workdir))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _module(name: str):
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_generated_client_creates_and_reads_a_contact_and_a_message(committed_db, server_url, generated):
    tenant = TenantFactory(name=f"SDK clinic {uuid.uuid4().hex[:6]}", slug=f"sdk-{uuid.uuid4().hex[:10]}")
    BaaFactory(tenant=tenant)
    verified_sender_domain(tenant)
    key = api_key_create(actor=Actor.system("tests"), tenant=tenant, name="SDK", scopes=SCOPES).plaintext
    client = generated.AuthenticatedClient(base_url=server_url, token=key)
    models = _module("models")
    address = f"sdk.{uuid.uuid4().hex[:8]}@patients.example.org"

    upsert = _module("api.contacts.contacts_upsert").sync_detailed(
        client=client, body=models.ContactInput(email=address, first_name="Synthetic", last_name="Sdk")
    )
    assert upsert.status_code == 201, upsert.content
    contact_id = upsert.parsed.id
    contact = _module("api.contacts.contacts_retrieve").sync(client=client, contact_id=contact_id)
    assert isinstance(contact, models.ContactDetail), contact
    assert (contact.id, contact.email, contact.masked) == (contact_id, address, False)
    assert "Synthetic" in contact.name

    request = models.MessageRequest(
        recipient=models.Recipient(contact_id=contact_id),
        purpose=models.TransactionalPurposeEnum.TREATMENT,
        content=models.InlineContent(subject="Your appointment", html="<p>See you on Monday.</p>"),
    )
    sent = _module("api.messages.messages_send").sync_detailed(client=client, body=request)
    assert sent.status_code == 202, sent.content
    accepted = sent.parsed
    assert isinstance(accepted, models.Accepted)
    status = _module("api.messages.messages_retrieve").sync(client=client, message_id=accepted.id)
    assert isinstance(status, models.MessageStatus), status
    assert (status.id, status.message_id, status.purpose) == (accepted.id, accepted.message_id, "treatment")
    assert status.to_domain == "patients.example.org"
