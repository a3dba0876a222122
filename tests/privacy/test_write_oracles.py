"""Writes are not oracles: a writer without PHI access gets the same answer whether the contact it
wrote existed or not, and whether the PHI it wrote was the stored value or not.

Existence: half the planted addresses are patients of the tenant (the hidden bit), the other half
are not. The attacker writes to each address (a guessed diagnosis, as an integration would) through
every write path it holds, and reads the answer: created or updated, a 201 or a 200, an import's
"Created" or "Updated", the contact id of a suppression, when the record last changed. Each attack
also runs with its defence switched off and must then succeed.
"""

from __future__ import annotations

import io
import re

import pytest
from django.urls import reverse

from consent import api as consent_api
from contacts import api as contacts_api
from contacts import selectors as contact_selectors
from contacts.imports import services, storage
from contacts.imports import services as import_services
from contacts.imports.services import ImportOptions
from contacts.models import ImportJob
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from tests.factories import MembershipFactory

from .conftest import CHANCE, MARGIN, PLANTED, email, hidden_bits, plant

pytestmark = pytest.mark.django_db
FILE = (
    "Email,First name,DOB,Conditions\n"
    "guess.one@example.org,One,1980-02-03,E11.9\n"
    "guess.two@example.org,Two,1984-02-29,I10\n"
)
DEFENCE = pytest.mark.parametrize("defended", [True, False], ids=["defended", "defence-off"])
GUESSED = {"conditions": ["E11.9"]}


def _import(tenant, actor: Actor, content: str = FILE, *, dry_run: bool = False) -> ImportJob:
    from contacts.imports import mapping as mapping_module

    with tenant_context(tenant):
        job = services.import_upload(
            tenant=tenant, actor=actor, file_name="p.csv", stream=io.BytesIO(content.encode())
        )
        headers = storage.job_headers(job)
        mapping = mapping_module.suggest(headers, mapping_module.targets_for(tenant=tenant))
        assert "clinical.conditions" in mapping.values()
        job = services.import_job_start(
            tenant=tenant, actor=actor, job=job, options=ImportOptions(mapping=mapping, dry_run=dry_run)
        )
    while True:
        with tenant_context(tenant):
            if not services.import_job_run_slice(job_id=job.pk):
                break
    with tenant_context(tenant):
        return ImportJob.objects.get(pk=job.pk)


@pytest.mark.parametrize(
    ("role", "told"),
    [("marketer", (0, 0, 0, 2)), ("compliance_officer", (2, 0, 0, 0))],
)
def test_importing_tells_a_member_without_phi_access_neither_new_nor_unchanged(tenant_a, role, told):
    actor = Actor.for_user(MembershipFactory(tenant=tenant_a, role=role).user)
    first = _import(tenant_a, actor)
    assert (first.created_count, first.updated_count, first.unchanged_count, first.accepted_count) == told
    again = _import(tenant_a, actor)
    created, _, _, accepted = told
    # The same file again: the member with PHI access is told the truth (nothing changed).
    assert (again.created_count, again.updated_count, again.unchanged_count, again.accepted_count) == (
        0,
        0,
        created,
        accepted,
    )


# --- Existence oracles ---------------------------------------------------------------------------


@pytest.fixture
def patients(tenant_a) -> list[int]:
    """Half the planted addresses are patients (bit 1); the others were never written."""
    bits = hidden_bits()
    plant(tenant_a, [index for index, bit in enumerate(bits) if bit], bits)
    return bits


def _judge(guesses: list[int], bits: list[int], defended: bool) -> None:
    rate = sum(guess == bit for guess, bit in zip(guesses, bits, strict=True)) / len(bits)
    if defended:
        assert rate <= CHANCE + MARGIN, f"the attacker told {rate:.0%} of patients from strangers"
    else:
        assert rate >= 0.95, f"with the defence off the attack should work, got {rate:.0%}"


def _no_phi_writer(monkeypatch, module, defended: bool) -> None:
    if not defended:
        monkeypatch.setattr(module, "_reads_phi", lambda request: True)


@DEFENCE
def test_upsert_answer_does_not_tell_whether_an_address_was_a_patients(
    patients, api, issue_key, defended, monkeypatch
):
    _no_phi_writer(monkeypatch, contacts_api, defended)
    client = api(issue_key(scopes=["contacts:write"]))
    guesses = []
    for index in range(PLANTED):
        answer = client.post(
            "/api/v1/contacts",
            {"email": email(index), "clinical": GUESSED},
            HTTP_IDEMPOTENCY_KEY=f"exists-{index}",
        )
        assert answer.status_code in (200, 201), answer.content
        guesses.append(int(answer.status_code == 200 and answer.json()["status"] != "created"))
    _judge(guesses, patients, defended)


@DEFENCE
def test_bulk_upsert_answer_does_not_tell_whether_an_address_was_a_patients(
    patients, api, issue_key, defended, monkeypatch
):
    _no_phi_writer(monkeypatch, contacts_api, defended)
    client = api(issue_key(scopes=["contacts:write"]))
    batch = [{"email": email(index), "clinical": GUESSED} for index in range(PLANTED)]
    answer = client.post("/api/v1/contacts/bulk", {"contacts": batch}, HTTP_IDEMPOTENCY_KEY="bulk")
    assert answer.status_code == 200, answer.content
    results = answer.json()["results"]
    _judge([int(result["status"] != "created") for result in results], patients, defended)


@DEFENCE
def test_suppressing_an_address_does_not_tell_whether_it_was_a_patients(
    patients, api, issue_key, defended, monkeypatch
):
    _no_phi_writer(monkeypatch, consent_api, defended)
    client = api(issue_key(scopes=["consent:write"]))
    guesses = []
    for index in range(PLANTED):
        answer = client.post(
            "/api/v1/suppressions",
            {"email": email(index), "reason": "manual"},
            HTTP_IDEMPOTENCY_KEY=f"suppress-{index}",
        )
        assert answer.status_code == 201, answer.content
        guesses.append(int(answer.json()["contact_id"] is not None))
    _judge(guesses, patients, defended)


_SHOWN = re.compile(r'data-testid="(created|updated|accepted)">([0-9]+)<')


@DEFENCE
def test_import_report_does_not_tell_whether_an_address_was_a_patients(
    patients, member_client, defended, monkeypatch, tenant_a
):
    """A marketer dry-runs a one-row file per address and reads the job page."""
    if not defended:
        monkeypatch.setattr(import_services, "_importer_reads_phi", lambda job: True)
    client = member_client("marketer")
    actor = Actor.for_user(client.membership.user)
    guesses = []
    for index in range(PLANTED):
        row = f"Email,First name,DOB,Conditions\n{email(index)},Planted,1979-05-04,E11.9\n"
        job = _import(tenant_a, actor, row, dry_run=True)
        page = client.get(reverse("contact_imports:job_detail", args=[job.pk]))
        shown = dict(_SHOWN.findall(page.content.decode()))
        # Not created: the address was a patient's (updated, or unchanged and so not shown at all).
        guesses.append(int(shown.get("created") == "0"))
    _judge(guesses, patients, defended)


@DEFENCE
def test_a_contacts_last_change_does_not_confirm_a_guessed_diagnosis(
    patients, api, issue_key, defended, monkeypatch
):
    """A key that may read masked records writes a guessed diagnosis to a patient and reads whether
    the record changed: it did not only if the guess was the stored one."""
    if not defended:
        monkeypatch.setattr(contact_selectors, "_changed_at", lambda contact, scope: contact.updated_at)
    client = api(issue_key(scopes=["contacts:read", "contacts:write"]))
    patient_indexes = [index for index, bit in enumerate(patients) if bit]
    # Everyone planted has diabetes (bit 1) or hypertension (bit 0) in tests/privacy/conftest; here
    # the patients were all planted with diabetes, so re-plant half of them with hypertension.
    diagnosis = {index: position % 2 for position, index in enumerate(patient_indexes)}
    for index, has_diabetes in diagnosis.items():
        if not has_diabetes:
            client.post(
                "/api/v1/contacts",
                {"email": email(index), "clinical": {"conditions": ["I10"]}},
                HTTP_IDEMPOTENCY_KEY=f"setup-{index}",
            )
    guesses, truth = [], []
    for index, has_diabetes in diagnosis.items():
        probe = {"email": email(index), "tags": [f"probe-{index}"]}
        contact_id = client.post("/api/v1/contacts", probe, HTTP_IDEMPOTENCY_KEY=f"id-{index}").json()["id"]
        before = client.get(f"/api/v1/contacts/{contact_id}").json()["updated_at"]
        guess = {"email": email(index), "clinical": GUESSED}
        client.post("/api/v1/contacts", guess, HTTP_IDEMPOTENCY_KEY=f"guess-{index}")
        after = client.get(f"/api/v1/contacts/{contact_id}").json()["updated_at"]
        guesses.append(int(before == after))
        truth.append(has_diabetes)
    _judge(guesses, truth, defended)
