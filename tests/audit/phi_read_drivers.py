"""The drivers of tests/audit/test_patient_search.py: one function per path that reads PHI, each
doing what a person or a client does on that path for the searched patient (World.patient)."""

from __future__ import annotations

import datetime
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from audit.break_glass import break_glass_open
from contacts.models import Contact
from contacts.services import ContactInput, contact_upsert_many
from delivery.models import PortalMessage
from delivery.outbox import message_content
from delivery.portal import services as portal
from healthmail.accounts.roles import Role
from healthmail.actors import Actor
from healthmail.tenants.context import tenant_context
from retention import archive
from retention.exports import ExportScope, evidence_export_create
from retention.models import ArchivedRecord
from segmentation.services import segment_create
from tests.campaigns.conftest import template, verified_domain
from tests.delivery.outbox_helpers import make_message
from tests.factories import MembershipFactory
from tests.retention.helpers import YEAR, new_messages


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


def patient(tenant, email: str, mrn: str) -> Contact:
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


def contact_list(world: World) -> None:
    assert (
        world.member_client(Role.COMPLIANCE_OFFICER).get(reverse("contacts:contact_list")).status_code == 200
    )


def contact_detail(world: World) -> None:
    url = reverse("contacts:contact_detail", args=[world.patient.pk])
    assert world.member_client(Role.COMPLIANCE_OFFICER).get(url).status_code == 200


def break_glass(world: World) -> None:
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


def unmask(world: World) -> None:
    url = reverse("contacts:contact_unmask", args=[world.patient.pk])
    response = world.member_client(Role.TENANT_ADMIN).post(
        url, {"reason": "Patient asked to fix their address"}
    )
    assert response.status_code == 200


def unmask_refused(world: World) -> None:
    url = reverse("contacts:contact_unmask", args=[world.patient.pk])
    assert world.member_client(Role.TENANT_ADMIN).post(url, {"reason": "curious"}).status_code == 400


def api_list(world: World) -> None:
    client = world.api(world.issue_key(scopes=["contacts:read"]))
    assert client.get("/api/v1/contacts").status_code == 200


def api_detail(world: World) -> None:
    client = world.api(world.issue_key(scopes=["contacts:read", "contacts:phi"]))
    assert client.get(f"/api/v1/contacts/{world.patient.pk}").status_code == 200


def segment_members(world: World) -> None:
    definition = {"all": [{"field": "state", "op": "eq", "value": "TX"}]}
    segment = segment_create(
        tenant=world.tenant, actor=Actor.system("tests"), name="Texas", definition=definition
    )
    response = world.member_client(Role.COMPLIANCE_OFFICER).get(f"/segments/{segment.pk}/members/")
    assert response.status_code == 200


def contact_export(world: World) -> None:
    response = world.member_client(Role.COMPLIANCE_OFFICER).get(
        reverse("contacts:contact_export"), {"identifying": "1"}
    )
    assert b"searched.patient@example.org" in b"".join(response.streaming_content)


def import_preview(world: World) -> None:
    client = world.member_client(Role.MARKETER)
    content = b"Email,First name\nsearched.patient@example.org,Synthetic\n"
    upload = SimpleUploadedFile("people.csv", content, content_type="text/csv")
    location = client.post(reverse("contact_imports:upload"), {"file": upload})["Location"]
    assert b'data-testid="import-preview"' in client.get(location).content


def message_search(world: World) -> None:
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


def portal_recipient(world: World) -> None:
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


def portal_replies(world: World) -> None:
    portal_message, _ = _portal_message(world)
    with tenant_context(world.tenant):
        portal.portal_reply(portal_message=portal_message, body="Please call me.")
    url = reverse("portal_staff:detail", args=[portal_message.pk])
    assert world.member_client(Role.COMPLIANCE_OFFICER).get(url).status_code == 200


def transactional_api(world: World) -> None:
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


def template_contact_preview(world: World) -> None:
    marketer = MembershipFactory(tenant=world.tenant, role=Role.MARKETER).user
    greeting = template(
        world.tenant, Actor.for_user(marketer), name="Greeting", html="<p>Hello {{ contact.first_name }}</p>"
    )
    client = world.api(world.issue_key(scopes=["campaigns:read", "contacts:phi"]))
    body = json.dumps({"contact_id": str(world.patient.pk)})
    response = client.post(f"/api/v1/templates/{greeting.pk}/preview", body)
    assert response.status_code == 200, response.content
    assert "Hello Synthetic" in response.json()["rendered"]["html"]


def _archived_entry(world: World) -> ArchivedRecord:
    new_messages(world.tenant, 1, age=3 * YEAR, contact=world.patient)
    archive.archive_due(tenant=world.tenant)
    with tenant_context(world.tenant):
        return ArchivedRecord.objects.filter(contact_id=world.patient.pk).first()


def evidence_export(world: World) -> None:
    _archived_entry(world)
    make_message(world.tenant, contact_id=world.patient.pk)
    evidence_export_create(
        tenant=world.tenant,
        actor=world.officer(),
        purpose="Subpoena 24-117",
        recipient="Counsel",
        scope=ExportScope(contact_ids=(world.patient.pk,)),
    )


def archive_retrieve(world: World) -> None:
    entry = _archived_entry(world)
    archive.archive_retrieve(
        tenant=world.tenant, actor=world.officer(), archived_id=entry.pk, reason="Patient access request"
    )


@dataclass(frozen=True)
class ReadPath:
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


def authorization_api(world: World) -> None:
    client, authorization = _recorded_authorization(world)
    assert client.get(f"/api/v1/authorizations/{authorization.pk}").status_code == 200
    assert client.get(f"/api/v1/contacts/{world.patient.pk}/authorizations").status_code == 200


def consent_api(world: World) -> None:
    client = world.api(world.issue_key(tenant=world.tenant, scopes=["consent:read"]))
    assert client.get(f"/api/v1/contacts/{world.patient.pk}/consent").status_code == 200


def message_list_api(world: World) -> None:
    make_message(world.tenant, contact_id=world.patient.pk, address="searched@patients.example")
    client = world.api(world.issue_key(tenant=world.tenant, scopes=["messages:read"]))
    response = client.get(f"/api/v1/messages?contact_id={world.patient.pk}")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 1


def message_status_api(world: World) -> None:
    message = make_message(world.tenant, contact_id=world.patient.pk, address="searched@patients.example")
    client = world.api(world.issue_key(tenant=world.tenant, scopes=["messages:read"]))
    assert client.get(f"/api/v1/messages/{message.pk}").status_code == 200


def authorizations_none_signed_api(world: World) -> None:
    """A contact who signed no authorization: where they stand is still read about them."""
    client = world.api(world.issue_key(tenant=world.tenant, scopes=["consent:read"]))
    response = client.get(f"/api/v1/contacts/{world.patient.pk}/authorizations")
    assert response.status_code == 200
    assert response.json()["authorizations"] == []


def access_package(world: World) -> None:
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


def incident_notice(world: World) -> None:
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


def covered_entity_letter(world: World) -> None:
    """A business associate's notice to the covered entity identifies each individual (164.410(c))."""
    from incidents import audience_notices
    from tests.incidents.helpers import decided_breach, officer

    incident = decided_breach(world.tenant, [world.patient], business_associate=True)
    with tenant_context(world.tenant):
        audience_notices.audience_letter(
            tenant=world.tenant, user=officer(world.tenant), incident=incident, audience="covered_entity"
        )


def access_denial(world: World) -> None:
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


def authorization_copy(world: World) -> None:
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


def fhir_patient(world: World) -> None:
    client = world.api(world.issue_key(scopes=["contacts:read", "contacts:phi"]))
    assert client.get(f"/api/fhir/r4/Patient/{world.patient.pk}").status_code == 200


def fhir_communication(world: World) -> None:
    message = make_message(world.tenant, contact_id=world.patient.pk, address="searched@patients.example")
    client = world.api(world.issue_key(scopes=["messages:read"]))
    assert client.get(f"/api/fhir/r4/Communication/{message.pk}").status_code == 200


def fhir_consent(world: World) -> None:
    """An EHR reads the patient's authorization and searches their consents over FHIR."""
    from consent import services as consent_services

    _, authorization = _recorded_authorization(world)
    consent_services.consent_grant(
        tenant=world.tenant,
        contact=world.patient,
        topic=consent_services.topic_by_key(tenant=world.tenant, key="marketing_newsletters"),
        evidence=consent_services.Evidence(source="api", actor=Actor.system("tests")),
    )
    reader = world.api(world.issue_key(scopes=["consent:read"]))
    assert reader.get(f"/api/fhir/r4/Consent/{authorization.pk}").status_code == 200
    found = reader.get(f"/api/fhir/r4/Consent?patient=Patient/{world.patient.pk}")
    assert found.status_code == 200
    assert found.json()["total"] == 2


def mailbox_address(world: World) -> None:
    """The preference center reads the address to send a code or a confirmation to."""
    from consent import mailbox

    address = mailbox.contact_address(
        tenant=world.tenant, contact=world.patient, purpose="confirmation of a settings change"
    )
    assert address == world.patient.email


def journey_history(world: World) -> None:
    """The contact page lists the journeys the patient is in (a read of PHI, masked or not)."""
    from journeys.services import enrolment
    from tests.journeys.conftest import active_journey

    journey = active_journey(world.tenant)
    enrolment.journey_enrol(
        tenant=world.tenant, actor=Actor.system("tests"), journey=journey, contact=world.patient
    )
    url = reverse("contacts:contact_detail", args=[world.patient.pk])
    assert world.member_client(Role.COMPLIANCE_OFFICER).get(url).status_code == 200
