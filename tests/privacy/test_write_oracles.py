"""Writes are not oracles: re-importing a guessed diagnosis tells a member without PHI access
nothing ("updated", never "unchanged"); a member who may read PHI is told the truth (the control
that shows the tally would otherwise answer)."""

from __future__ import annotations

import io

import pytest

from audit.actors import Actor
from contacts.imports import services, storage
from contacts.imports.services import ImportOptions
from contacts.models import ImportJob
from healthmail.tenants.context import tenant_context
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db
FILE = (
    "Email,First name,DOB,Conditions\n"
    "guess.one@example.org,One,1980-02-03,E11.9\n"
    "guess.two@example.org,Two,1984-02-29,I10\n"
)


def _import(tenant, actor: Actor) -> ImportJob:
    from contacts.imports import mapping as mapping_module

    with tenant_context(tenant):
        job = services.import_upload(
            tenant=tenant, actor=actor, file_name="p.csv", stream=io.BytesIO(FILE.encode())
        )
        headers = storage.job_headers(job)
        mapping = mapping_module.suggest(headers, mapping_module.targets_for(tenant=tenant))
        assert "clinical.conditions" in mapping.values()
        job = services.import_job_start(
            tenant=tenant, actor=actor, job=job, options=ImportOptions(mapping=mapping)
        )
    while True:
        with tenant_context(tenant):
            if not services.import_job_run_slice(job_id=job.pk):
                break
    with tenant_context(tenant):
        return ImportJob.objects.get(pk=job.pk)


@pytest.mark.parametrize(("role", "unchanged"), [("marketer", 0), ("compliance_officer", 2)])
def test_reimporting_a_guessed_diagnosis_confirms_nothing_without_phi_access(tenant_a, role, unchanged):
    actor = Actor.for_user(MembershipFactory(tenant=tenant_a, role=role).user)
    first = _import(tenant_a, actor)
    assert first.created_count == 2
    again = _import(tenant_a, actor)
    assert (again.unchanged_count, again.updated_count) == (unchanged, 2 - unchanged)
