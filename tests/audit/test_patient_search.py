""" "Every access to this patient" is one indexed query, complete over every path that reads PHI.

The paths are enumerated twice on purpose: PHI_READ_PATHS below drives each one for a patient, and
`test_every_phi_read_call_site_is_in_the_registry` scans the source for every call of `phi_access`
or `contact_records`. A new reading path without a driver here fails that test.
"""

from __future__ import annotations

import ast
import datetime
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from audit.break_glass import break_glass_open
from audit.models import AuditEvent
from audit.selectors import EventFilter, event_search
from contacts.models import Contact
from contacts.services import ContactInput, contact_upsert_many
from delivery.models import PortalMessage
from delivery.outbox import message_content
from delivery.portal import services as portal
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from retention import archive, disposal
from retention.exports import ExportScope, evidence_export_create
from retention.models import ArchivedRecord
from segmentation.services import segment_create
from tests.campaigns.conftest import template, verified_domain
from tests.delivery.outbox_helpers import make_message
from tests.factories import MembershipFactory
from tests.retention.helpers import YEAR, new_messages

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
READERS = {"phi_access", "contact_records"}
# contact_records is the one pass-through: its callers are the paths.
PASS_THROUGH = {"contacts.selectors:contact_records"}


@dataclass
class World:
    tenant: object
    patient: Contact
    other: Contact
    member_client: Callable
    api: Callable
    issue_key: Callable

    def officer(self) -> Actor:
        return Actor.for_user(MembershipFactory(tenant=self.tenant, role=Role.COMPLIANCE_OFFICER).user)


def _patient(tenant, email: str, mrn: str) -> Contact:
    (result,) = contact_upsert_many(
        tenant=tenant,
        actor=Actor.system("tests"),
        inputs=[
            ContactInput(
                email=email,
                first_name="Synthetic",
                last_name="Searched",
                phone="555-010-4711",
                external_ids={"mrn": mrn},
                postal_address={"line1": "1 Test Way", "city": "Austin", "state": "TX", "zip": "75001"},
                birth_date=datetime.date(1980, 5, 17),
            )
        ],
        source="test",
    )
    with tenant_context(tenant):
        return Contact.objects.get(pk=result.contact_id)


# --- Drivers: each reads the patient's PHI through one product path, as a user or client would --------


def _list(world: World) -> None:
    assert (
        world.member_client(Role.COMPLIANCE_OFFICER).get(reverse("contacts:contact_list")).status_code == 200
    )


def _detail(world: World) -> None:
    url = reverse("contacts:contact_detail", args=[world.patient.pk])
    assert world.member_client(Role.COMPLIANCE_OFFICER).get(url).status_code == 200


def _break_glass(world: World) -> None:
    client = world.member_client(Role.CLINICAL_REVIEWER)
    break_glass_open(
        user=client.membership.user,
        role=Role.CLINICAL_REVIEWER,
        tenant=world.tenant,
        target_type="contacts.contact",
        target_id=str(world.patient.pk),
        reason="Patient unconscious in the emergency room",
        minutes=5,
    )
    assert client.get(reverse("contacts:contact_detail", args=[world.patient.pk])).status_code == 200


def _unmask(world: World) -> None:
    url = reverse("contacts:contact_unmask", args=[world.patient.pk])
    response = world.member_client(Role.TENANT_ADMIN).post(
        url, {"reason": "Patient asked to fix their address"}
    )
    assert response.status_code == 200


def _unmask_refused(world: World) -> None:
    url = reverse("contacts:contact_unmask", args=[world.patient.pk])
    assert world.member_client(Role.TENANT_ADMIN).post(url, {"reason": "curious"}).status_code == 400


def _api_list(world: World) -> None:
    client = world.api(world.issue_key(scopes=["contacts:read"]))
    assert client.get("/api/v1/contacts").status_code == 200


def _api_detail(world: World) -> None:
    client = world.api(world.issue_key(scopes=["contacts:read", "contacts:phi"]))
    assert client.get(f"/api/v1/contacts/{world.patient.pk}").status_code == 200


def _segment_members(world: World) -> None:
    definition = {"all": [{"field": "state", "op": "eq", "value": "TX"}]}
    segment = segment_create(
        tenant=world.tenant, actor=Actor.system("tests"), name="Texas", definition=definition
    )
    response = world.member_client(Role.COMPLIANCE_OFFICER).get(f"/segments/{segment.pk}/members/")
    assert response.status_code == 200


def _contact_export(world: World) -> None:
    response = world.member_client(Role.COMPLIANCE_OFFICER).get(
        reverse("contacts:contact_export"), {"identifying": "1"}
    )
    assert b"searched.patient@example.org" in b"".join(response.streaming_content)


def _import_preview(world: World) -> None:
    client = world.member_client(Role.MARKETER)
    content = b"Email,First name\nsearched.patient@example.org,Synthetic\n"
    upload = SimpleUploadedFile("people.csv", content, content_type="text/csv")
    location = client.post(reverse("contact_imports:upload"), {"file": upload})["Location"]
    assert b'data-testid="import-preview"' in client.get(location).content


def _message_search(world: World) -> None:
    message = make_message(world.tenant, contact_id=world.patient.pk)
    response = world.member_client(Role.TENANT_ADMIN).get(
        reverse("sending:message_search"), {"q": str(message.pk)}
    )
    assert response.status_code == 200


def _portal_message(world: World) -> tuple[PortalMessage, str]:
    message = make_message(world.tenant, contact_id=world.patient.pk, address="searched@patients.example")
    with tenant_context(world.tenant):
        notice = portal.portal_deliver(message, message_content(message))
        portal_message = PortalMessage.objects.get(message_id=message.pk)
    path = notice.portal_url.split("://", 1)[1].split("/", 1)[1].join(["/", ""])
    return portal_message, path


def _portal_recipient(world: World) -> None:
    """The patient asks for a code, proves the address and opens the message."""
    from django.test import Client

    from tests.delivery.patient_mail import patient_mail, patient_sender

    patient_sender(world.tenant)  # the code leaves from the tenant's verified domain
    _, path = _portal_message(world)
    client = Client(REMOTE_ADDR=f"10.9.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}")
    client.post(path + "code/")
    code = re.search(r"\b(\d{6})\b", patient_mail(to="searched@patients.example")[-1].body).group(1)
    assert client.post(path + "verify/", {"code": code}).status_code == 302
    assert client.get(path).status_code == 200


def _portal_replies(world: World) -> None:
    portal_message, _ = _portal_message(world)
    with tenant_context(world.tenant):
        portal.portal_reply(portal_message=portal_message, body="Please call me.")
    url = reverse("portal_staff:detail", args=[portal_message.pk])
    assert world.member_client(Role.COMPLIANCE_OFFICER).get(url).status_code == 200


def _transactional_api(world: World) -> None:
    verified_domain(world.tenant)
    marketer = MembershipFactory(tenant=world.tenant, role=Role.MARKETER).user
    reminder = template(
        world.tenant,
        Actor.for_user(marketer),
        name="Reminder",
        subject="Appointment reminder",
        html="<p>Hello {{ contact.first_name }}</p>",
        text="",
        kind="transactional",
    )
    body = {
        "recipient": {"contact_id": str(world.patient.pk)},
        "purpose": "treatment",
        "template_id": str(reminder.pk),
        "data": {},
    }
    client = world.api(world.issue_key(scopes=["messages:send"]))
    response = client.post("/api/v1/messages", json.dumps(body))
    assert response.status_code == 202, response.content


def _archived_entry(world: World) -> ArchivedRecord:
    new_messages(world.tenant, 1, age=3 * YEAR, contact=world.patient)
    archive.archive_due(tenant=world.tenant)
    with tenant_context(world.tenant):
        return ArchivedRecord.objects.filter(contact_id=world.patient.pk).first()


def _evidence_export(world: World) -> None:
    _archived_entry(world)
    make_message(world.tenant, contact_id=world.patient.pk)
    evidence_export_create(
        tenant=world.tenant,
        actor=world.officer(),
        purpose="Subpoena 24-117",
        recipient="Counsel",
        scope=ExportScope(contact_ids=(world.patient.pk,)),
    )


def _archive_retrieve(world: World) -> None:
    entry = _archived_entry(world)
    archive.archive_retrieve(
        tenant=world.tenant, actor=world.officer(), archived_id=entry.pk, reason="Patient access request"
    )


@dataclass(frozen=True)
class Path_:
    call_site: str  # module:qualname of the phi_access / contact_records call
    name: str
    drive: Callable[[World], None]
    purpose: str  # the read's recorded purpose (contains)
    model: str  # the read's object type


def _recorded_authorization(world: World):
    from consent.models import Authorization
    from tests.consent.test_authorizations_api import _body

    client = world.api(world.issue_key(scopes=["consent:write", "consent:read"]))
    response = client.post("/api/v1/authorizations", _body(world.patient))
    assert response.status_code == 201, response.content
    with tenant_context(world.tenant):
        return client, Authorization.objects.get(pk=response.json()["id"])


def _authorization_api(world: World) -> None:
    client, authorization = _recorded_authorization(world)
    assert client.get(f"/api/v1/authorizations/{authorization.pk}").status_code == 200
    assert client.get(f"/api/v1/contacts/{world.patient.pk}/authorizations").status_code == 200


def _consent_api(world: World) -> None:
    client = world.api(world.issue_key(tenant=world.tenant, scopes=["consent:read"]))
    assert client.get(f"/api/v1/contacts/{world.patient.pk}/consent").status_code == 200


def _message_list_api(world: World) -> None:
    make_message(world.tenant, contact_id=world.patient.pk, address="searched@patients.example")
    client = world.api(world.issue_key(tenant=world.tenant, scopes=["messages:read"]))
    response = client.get(f"/api/v1/messages?contact_id={world.patient.pk}")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 1


def _access_package(world: World) -> None:
    """The patient's right of access package: their record and their messages are read to assemble it."""
    from incidents import access_requests
    from tests.delivery.patient_mail import patient_sender
    from tests.incidents.helpers import officer

    patient_sender(world.tenant)
    make_message(world.tenant, contact_id=world.patient.pk, address=world.patient.email)
    user = officer(world.tenant)
    who = {"tenant": world.tenant, "user": user, "role": Role.COMPLIANCE_OFFICER}
    request = access_requests.access_request_record(
        contact_id=world.patient.pk, received_on=timezone.localdate(), **who
    )
    access_requests.access_request_deliver(request=request, **who)


def _incident_notice(world: World) -> None:
    """A breach notice to the patient: the address is read to queue the portal message."""
    from incidents import affected, notices, services
    from tests.delivery.patient_mail import patient_sender
    from tests.incidents.helpers import FACTORS, LETTER, new_incident, officer, read_event

    patient_sender(world.tenant)
    first, second = officer(world.tenant), officer(world.tenant)
    read_event(world.tenant, Actor.system("relay"), [world.patient])
    incident = new_incident(world.tenant, first)
    now, role = timezone.now(), Role.COMPLIANCE_OFFICER
    hour = datetime.timedelta(hours=1)
    who = {"tenant": world.tenant, "role": role, "incident": incident}
    affected.affected_derive(user=first, since=now - hour, until=now + hour, **who)
    services.risk_assess(user=first, factors=FACTORS, probability="not_low", **who)
    services.decision_propose(
        user=first, decision="breach", reason="Viewed by an unauthorized person.", **who
    )
    services.decision_sign_off(user=second, **who)
    services.letter_content_set(user=first, content=LETTER, **who)
    assert notices.individual_notices_send(user=first, **who).portal == 1


def _covered_entity_letter(world: World) -> None:
    """A business associate's notice to the covered entity identifies each individual (164.410(c))."""
    from incidents import audience_notices
    from tests.incidents.helpers import decided_breach, officer

    incident = decided_breach(world.tenant, [world.patient], business_associate=True)
    with tenant_context(world.tenant):
        audience_notices.audience_letter(
            tenant=world.tenant, user=officer(world.tenant), incident=incident, audience="covered_entity"
        )


def _access_denial(world: World) -> None:
    """A written denial of access goes to the patient through the portal (164.524(d)(2))."""
    from incidents import access_denials, access_requests
    from tests.delivery.patient_mail import patient_sender
    from tests.incidents.helpers import officer

    patient_sender(world.tenant)
    user = officer(world.tenant)
    who = {"tenant": world.tenant, "user": user, "role": Role.COMPLIANCE_OFFICER}
    request = access_requests.access_request_record(
        **who, contact_id=world.patient.pk, received_on=timezone.localdate()
    )
    access_denials.denial_record(
        **who,
        request=request,
        ground="a2i",
        basis="Psychotherapy notes are excepted from the right of access.",
        complaint_contact="Privacy Officer",
        complaint_phone="1-800-555-0100",
    )


def _authorization_copy(world: World) -> None:
    """The patient signs a published text: the copy is rendered and sent through the portal."""
    from consent.copies import authorization_copy_send
    from tests.consent.conftest import new_text
    from tests.consent.test_authorization_records import record
    from tests.delivery.patient_mail import patient_sender

    patient_sender(world.tenant)  # the copy leaves from the tenant's verified domain
    today = timezone.localdate()
    authorization = record(world.tenant, world.patient, text=new_text(world.tenant), signed_on=today)
    with tenant_context(world.tenant):  # as on the signing page
        assert authorization_copy_send(tenant=world.tenant, authorization=authorization)


def _fhir_patient(world: World) -> None:
    client = world.api(world.issue_key(scopes=["contacts:read", "contacts:phi"]))
    assert client.get(f"/api/fhir/r4/Patient/{world.patient.pk}").status_code == 200


def _fhir_communication(world: World) -> None:
    message = make_message(world.tenant, contact_id=world.patient.pk, address="searched@patients.example")
    client = world.api(world.issue_key(scopes=["messages:read"]))
    assert client.get(f"/api/fhir/r4/Communication/{message.pk}").status_code == 200


def _mailbox_address(world: World) -> None:
    """The preference center reads the address to send a code or a confirmation to."""
    from consent import mailbox

    address = mailbox.contact_address(
        tenant=world.tenant, contact=world.patient, purpose="confirmation of a settings change"
    )
    assert address == world.patient.email


def _journey_history(world: World) -> None:
    """The contact page lists the journeys the patient is in (a read of PHI, masked or not)."""
    from journeys.services import enrolment
    from tests.journeys.conftest import active_journey

    journey = active_journey(world.tenant)
    enrolment.journey_enrol(
        tenant=world.tenant, actor=Actor.system("tests"), journey=journey, contact=world.patient
    )
    url = reverse("contacts:contact_detail", args=[world.patient.pk])
    assert world.member_client(Role.COMPLIANCE_OFFICER).get(url).status_code == 200


PHI_READ_PATHS = [
    Path_("contacts.views:contact_list", "list", _list, "contact list", "contacts.contact"),
    Path_("contacts.views:contact_detail", "detail", _detail, "contact detail", "contacts.contact"),
    Path_("contacts.views:contact_detail", "break-glass", _break_glass, "break-glass", "contacts.contact"),
    Path_("contacts.selectors:contact_unmasked_read", "unmask", _unmask, "unmask", "contacts.contact"),
    Path_(
        "contacts.views:contact_unmask",
        "unmask refused",
        _unmask_refused,
        "masked detail",
        "contacts.contact",
    ),
    Path_("contacts.api:ContactCollection.get", "API list", _api_list, "api", "contacts.contact"),
    Path_("contacts.api:ContactItem.get", "API detail", _api_detail, "api", "contacts.contact"),
    Path_(
        "segmentation.views:segment_members",
        "segment members",
        _segment_members,
        "segment member review",
        "contacts.contact",
    ),
    Path_(
        "contacts.exports:contact_export_lines",
        "contact export",
        _contact_export,
        "contact export",
        "contacts.contact",
    ),
    Path_(
        "contacts.imports.preview:import_preview",
        "import preview",
        _import_preview,
        "import preview",
        "contacts.importjob",
    ),
    Path_(
        "delivery.engine.selectors:masked_address",
        "message search",
        _message_search,
        "message search",
        "delivery.message",
    ),
    Path_(
        "delivery.portal.verification:_code_issue",
        "portal code",
        _portal_recipient,
        "portal one-time code",
        "delivery.message",
    ),
    Path_("delivery.portal.services:portal_open", "portal open", _portal_recipient, "portal open", ""),
    Path_(
        "delivery.portal.services:portal_replies_read",
        "portal replies",
        _portal_replies,
        "portal reply",
        "delivery.portalreply",
    ),
    Path_(
        "campaigns.transactional:transactional_send",
        "transactional API",
        _transactional_api,
        "transactional message",
        "contacts.contact",
    ),
    Path_(
        "retention.exports:_contacts",
        "evidence export",
        _evidence_export,
        "evidence export",
        "contacts.contact",
    ),
    Path_(
        "retention.exports:_messages",
        "evidence export",
        _evidence_export,
        "evidence export",
        "delivery.message",
    ),
    Path_(
        "retention.exports:_archived",
        "evidence export",
        _evidence_export,
        "evidence export",
        "retention.archivedrecord",
    ),
    Path_(
        "retention.archive.search:archive_retrieve",
        "archive retrieval",
        _archive_retrieve,
        "Patient access request",
        "retention.archivedrecord",
    ),
    Path_(
        "consent.authorizations_api:AuthorizationItem.get",
        "authorization API",
        _authorization_api,
        "api authorization",
        "consent.authorization",
    ),
    Path_(
        "consent.authorizations_api:ContactAuthorizations.get",
        "authorization API",
        _authorization_api,
        "api authorizations",
        "consent.authorization",
    ),
    Path_(
        "consent.api:ContactConsent.get", "consent API", _consent_api, "api consent state", "contacts.contact"
    ),
    Path_(
        "campaigns.transactional_api:MessageCollection.get",
        "message list API",
        _message_list_api,
        "api message list",
        "delivery.message",
    ),
    Path_(
        "consent.copies:authorization_copy_text",
        "authorization copy",
        _authorization_copy,
        "copy of a signed authorization",
        "consent.authorization",
    ),
    Path_(
        "consent.mailbox:contact_address",
        "mailbox address",
        _mailbox_address,
        "confirmation of a settings change",
        "contacts.contact",
    ),
    Path_(
        "fhir_api.api:_patient_record", "FHIR Patient", _fhir_patient, "fhir patient read", "contacts.contact"
    ),
    Path_(
        "fhir_api.api:_communication",
        "FHIR Communication",
        _fhir_communication,
        "fhir communication read",
        "delivery.message",
    ),
    Path_(
        "incidents.access_requests:package_build",
        "access package",
        _access_package,
        "right of access package",
        "contacts.contact",
    ),
    Path_(
        "incidents.access_requests:_messages",
        "access package",
        _access_package,
        "right of access package",
        "delivery.message",
    ),
    Path_(
        "incidents.notices:_addresses",
        "breach notice",
        _incident_notice,
        "breach notification to the individual",
        "contacts.contact",
    ),
    Path_(
        "incidents.audience_notices:_identification",
        "covered entity notice",
        _covered_entity_letter,
        "business associate notice to the covered entity",
        "contacts.contact",
    ),
    Path_(
        "incidents.access_denials:_send",
        "written denial of access",
        _access_denial,
        "written denial of access",
        "contacts.contact",
    ),
    Path_(
        "delivery.authorization_copies:authorization_copy_by_portal",
        "authorization copy",
        _authorization_copy,
        "send the individual a copy",
        "contacts.contact",
    ),
    Path_(
        "journeys.selectors:contact_history_read",
        "journey history",
        _journey_history,
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
    return World(
        tenant=tenant_a,
        patient=_patient(tenant_a, "searched.patient@example.org", "MRN-4711"),
        other=_patient(tenant_a, "someone.else@example.org", "MRN-0815"),
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
