""" "Every access to this patient" is one indexed query, complete over every path that reads PHI.

The paths are enumerated twice on purpose: PHI_READ_PATHS below drives each one for a patient, and
`test_every_phi_read_call_site_is_in_the_registry` scans the source for every call of `phi_access`
or `contact_records`. A new reading path without a driver here fails that test.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from audit.models import AuditEvent
from audit.selectors import EventFilter, event_search
from healthmail.tenants.context import tenant_context
from retention import disposal
from tests.audit import phi_read_drivers as drive

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
READERS = {"phi_access", "contact_records"}
# contact_records is the one pass-through: its callers are the paths.
PASS_THROUGH = {"contacts.selectors:contact_records"}


PHI_READ_PATHS = [
    drive.ReadPath(
        "contacts.views:contact_list", "list", drive.contact_list, "contact list", "contacts.contact"
    ),
    drive.ReadPath(
        "contacts.views:contact_detail", "detail", drive.contact_detail, "contact detail", "contacts.contact"
    ),
    drive.ReadPath(
        "contacts.views:contact_detail", "break-glass", drive.break_glass, "break-glass", "contacts.contact"
    ),
    drive.ReadPath(
        "contacts.selectors:contact_unmasked_read", "unmask", drive.unmask, "unmask", "contacts.contact"
    ),
    drive.ReadPath(
        "contacts.views:contact_unmask",
        "unmask refused",
        drive.unmask_refused,
        "masked detail",
        "contacts.contact",
    ),
    drive.ReadPath(
        "contacts.api:ContactCollection.get", "API list", drive.api_list, "api", "contacts.contact"
    ),
    drive.ReadPath("contacts.api:ContactItem.get", "API detail", drive.api_detail, "api", "contacts.contact"),
    drive.ReadPath(
        "segmentation.views:segment_members",
        "segment members",
        drive.segment_members,
        "segment member review",
        "contacts.contact",
    ),
    drive.ReadPath(
        "contacts.exports:contact_export_lines",
        "contact export",
        drive.contact_export,
        "contact export",
        "contacts.contact",
    ),
    drive.ReadPath(
        "contacts.imports.preview:import_preview",
        "import preview",
        drive.import_preview,
        "import preview",
        "contacts.importjob",
    ),
    drive.ReadPath(
        "delivery.engine.selectors:masked_address",
        "message search",
        drive.message_search,
        "message search",
        "delivery.message",
    ),
    drive.ReadPath(
        "delivery.portal.verification:_code_issue",
        "portal code",
        drive.portal_recipient,
        "portal one-time code",
        "delivery.message",
    ),
    drive.ReadPath(
        "delivery.portal.services:portal_open", "portal open", drive.portal_recipient, "portal open", ""
    ),
    drive.ReadPath(
        "delivery.portal.services:portal_replies_read",
        "portal replies",
        drive.portal_replies,
        "portal reply",
        "delivery.portalreply",
    ),
    drive.ReadPath(
        "campaigns.transactional:transactional_send",
        "transactional API",
        drive.transactional_api,
        "transactional message",
        "contacts.contact",
    ),
    drive.ReadPath(
        "campaigns.services.contact_preview:_reader.person_values",
        "template preview with a contact",
        drive.template_contact_preview,
        "api template preview",
        "contacts.contact",
    ),
    drive.ReadPath(
        "retention.exports:_contacts",
        "evidence export",
        drive.evidence_export,
        "evidence export",
        "contacts.contact",
    ),
    drive.ReadPath(
        "retention.exports:_messages",
        "evidence export",
        drive.evidence_export,
        "evidence export",
        "delivery.message",
    ),
    drive.ReadPath(
        "retention.exports:_archived",
        "evidence export",
        drive.evidence_export,
        "evidence export",
        "retention.archivedrecord",
    ),
    drive.ReadPath(
        "retention.archive.search:archive_retrieve",
        "archive retrieval",
        drive.archive_retrieve,
        "Patient access request",
        "retention.archivedrecord",
    ),
    drive.ReadPath(
        "campaigns.transactional_api:MessageItem.get",
        "message status API",
        drive.message_status_api,
        "api message status",
        "delivery.message",
    ),
    drive.ReadPath(
        "consent.authorizations_api:ContactAuthorizations.get",
        "authorization API, none signed",
        drive.authorizations_none_signed_api,
        "api authorizations",
        "contacts.contact",
    ),
    drive.ReadPath(
        "consent.authorizations_api:AuthorizationItem.get",
        "authorization API",
        drive.authorization_api,
        "api authorization",
        "consent.authorization",
    ),
    drive.ReadPath(
        "consent.authorizations_api:ContactAuthorizations.get",
        "authorization API",
        drive.authorization_api,
        "api authorizations",
        "consent.authorization",
    ),
    drive.ReadPath(
        "consent.api:ContactConsent.get",
        "consent API",
        drive.consent_api,
        "api consent state",
        "contacts.contact",
    ),
    drive.ReadPath(
        "campaigns.transactional_api:MessageCollection.get",
        "message list API",
        drive.message_list_api,
        "api message list",
        "delivery.message",
    ),
    drive.ReadPath(
        "consent.copies:authorization_copy_text",
        "authorization copy",
        drive.authorization_copy,
        "copy of a signed authorization",
        "consent.authorization",
    ),
    drive.ReadPath(
        "consent.mailbox:contact_address",
        "mailbox address",
        drive.mailbox_address,
        "confirmation of a settings change",
        "contacts.contact",
    ),
    drive.ReadPath(
        "fhir_api.api:_patient_record",
        "FHIR Patient",
        drive.fhir_patient,
        "fhir patient read",
        "contacts.contact",
    ),
    drive.ReadPath(
        "fhir_api.api:_communication",
        "FHIR Communication",
        drive.fhir_communication,
        "fhir communication read",
        "delivery.message",
    ),
    drive.ReadPath(
        "fhir_api.consent_api:_authorization_resources",
        "FHIR Consent (authorization)",
        drive.fhir_consent,
        "fhir consent read",
        "consent.authorization",
    ),
    drive.ReadPath(
        "fhir_api.consent_api:_event_resources",
        "FHIR Consent (marketing decision)",
        drive.fhir_consent,
        "fhir consent search",
        "consent.consentevent",
    ),
    drive.ReadPath(
        "incidents.access_requests:package_build",
        "access package",
        drive.access_package,
        "right of access package",
        "contacts.contact",
    ),
    drive.ReadPath(
        "incidents.access_requests:_messages",
        "access package",
        drive.access_package,
        "right of access package",
        "delivery.message",
    ),
    drive.ReadPath(
        "incidents.notices:_addresses",
        "breach notice",
        drive.incident_notice,
        "breach notification to the individual",
        "contacts.contact",
    ),
    drive.ReadPath(
        "incidents.audience_notices:_identification",
        "covered entity notice",
        drive.covered_entity_letter,
        "business associate notice to the covered entity",
        "contacts.contact",
    ),
    drive.ReadPath(
        "incidents.access_denials:_send",
        "written denial of access",
        drive.access_denial,
        "written denial of access",
        "contacts.contact",
    ),
    drive.ReadPath(
        "delivery.authorization_copies:authorization_copy_by_portal",
        "authorization copy",
        drive.authorization_copy,
        "send the individual a copy",
        "contacts.contact",
    ),
    drive.ReadPath(
        "journeys.selectors:contact_history_read",
        "journey history",
        drive.journey_history,
        "contact journey history",
        "journeys.position",
    ),
]


def _call_sites() -> set[str]:
    found = set()
    for path in ROOT.rglob("*.py"):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in (".venv", "tests", "bench") or "migrations" in relative.parts:
            continue
        module = ".".join(relative.with_suffix("").parts)

        def visit(node: ast.AST, stack: list[str], module: str = module) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    visit(child, [*stack, child.name])
                    continue
                if isinstance(child, ast.Call):
                    func = child.func
                    name = getattr(func, "id", None) or getattr(func, "attr", None)
                    if name in READERS:
                        found.add(f"{module}:{'.'.join(stack)}")
                visit(child, stack)

        visit(ast.parse(path.read_text()), [])
    return found - PASS_THROUGH


def test_every_phi_read_call_site_is_in_the_registry():
    assert _call_sites() == {p.call_site for p in PHI_READ_PATHS}


@pytest.fixture
def world(tenant_a, member_client, api, issue_key, monkeypatch, settings):
    monkeypatch.setattr(disposal, "enqueue", lambda task, **kwargs: None)
    return drive.World(
        tenant=tenant_a,
        patient=drive.patient(tenant_a, "searched.patient@example.org", "MRN-4711"),
        other=drive.patient(tenant_a, "someone.else@example.org", "MRN-0815"),
        member_client=member_client,
        api=api,
        issue_key=issue_key,
    )


@pytest.mark.parametrize("path", PHI_READ_PATHS, ids=lambda p: f"{p.name}:{p.call_site}")
def test_every_phi_read_path_appears_in_the_patients_search(world, path):
    with tenant_context(world.tenant):
        before = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    path.drive(world)
    with tenant_context(world.tenant):
        reads = [
            e
            for e in AuditEvent.objects.filter(action="phi.read", id__gt=before)
            if path.purpose.lower() in e.details["purpose"].lower()
            and (not path.model or e.target_type == path.model)
        ]
        found = set(
            event_search(tenant=world.tenant, filters=EventFilter(contact=world.patient.pk)).values_list(
                "id", flat=True
            )
        )
        others = set(
            event_search(tenant=world.tenant, filters=EventFilter(contact=world.other.pk)).values_list(
                "id", flat=True
            )
        )
    assert reads, (
        f"{path.name}: no PHI read with purpose {path.purpose!r} on {path.model or 'any'} was recorded"
    )
    assert {e.id for e in reads} <= found, f"{path.name}: the patient's search misses its read"
    for event in reads:
        assert world.patient.pk in event.contact_ids
    # A read that did not include the other patient is not in their search.
    assert not {e.id for e in reads if world.other.pk not in e.contact_ids} & others


def test_patient_search_is_a_gin_indexable_query(world):
    """One indexed query: the filter is `contact_ids @> ARRAY[id]`, an operator the GIN index on
    contact_ids serves (the planner prefers other indexes on a table this small, so the catalog and
    the SQL are checked rather than a plan)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'audit_contact_ids'")
        (definition,) = cursor.fetchone()
    assert "USING gin (contact_ids)" in definition
    query = event_search(tenant=world.tenant, filters=EventFilter(contact=world.patient.pk))
    sql = str(query.query)
    assert '"audit_auditevent"."contact_ids" @> ' in sql
    assert "details" not in sql.split("WHERE", 1)[1]
