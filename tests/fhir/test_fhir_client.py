"""The integrator's whole path, through a real FHIR client library (fhirclient, SMART on FHIR) over
HTTP against a live server: register a SMART backend client with a generated key pair, obtain a
token with a signed assertion, upsert a Patient, post a CommunicationRequest, let the engine deliver
it to the loopback mail server, and read back the Communication with its delivery evidence.

The same client records, reads, searches and revokes a HIPAA authorization as a FHIR Consent.

The server thread opens its own connections, so the data is committed (a tenant of its own)."""

from __future__ import annotations

import datetime
import email
import email.policy
import uuid
from collections.abc import Iterator

import pytest
from fhirclient.models.communication import Communication
from fhirclient.models.communicationrequest import CommunicationRequest
from fhirclient.models.consent import Consent
from fhirclient.models.patient import Patient

from campaigns.models import Template
from delivery.engine.worker import drain
from delivery.models import Message, Stream
from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context
from tests.campaigns.conftest import person, template
from tests.delivery.conftest import kit, smtp_kit, transport  # noqa: F401 (fixtures)
from tests.delivery.engine_support import dependencies, verified_sender_domain
from tests.factories import BaaFactory, TenantFactory
from tests.live_server import served_over_http

from .examples import communication_request, us_patient
from .smart import delivery_attempt, fhir_client, register


@pytest.fixture(scope="module")
def server_url(django_db_setup, django_db_blocker) -> Iterator[str]:
    with served_over_http(django_db_blocker) as url:
        yield url


def test_smart_backend_to_delivered_communication(committed_db, server_url, kit, transport):  # noqa: F811
    tenant = TenantFactory(name=f"FHIR clinic {uuid.uuid4().hex[:6]}", slug=f"fhir-{uuid.uuid4().hex[:10]}")
    BaaFactory(tenant=tenant)
    sender_domain, _ = verified_sender_domain(tenant)
    reminder = template(
        tenant,
        person(tenant, Role.MARKETER).actor,
        name="Reminder",
        subject="Appointment reminder",
        html="<p>Hello {{ contact.first_name }}, your appointment is on {{ data.appointment_time }}.</p>",
        text="",
        kind=Template.Kind.TRANSACTIONAL,
    )
    backend = register(
        tenant,
        scopes=["contacts:read", "contacts:write", "contacts:phi", "messages:send", "messages:read"],
        alg="ES384",
    )
    client = fhir_client(server_url, backend)
    assert client.server.auth.access_token.startswith("hm_")
    server = client.server

    created = Patient(us_patient(mrn="MRN-7", email="peter.chalmers@good.test")).create(server)
    patient = Patient.read(created["id"], server)
    assert patient.name[0].family == "Chalmers"
    assert patient.telecom[0].value == "peter.chalmers@good.test"
    patient.telecom = patient.telecom[:1]  # an update replaces: the phone left out is cleared
    patient.gender = "other"
    patient.update(server)
    patient = Patient.read(created["id"], server)
    assert [(t.system, t.value) for t in patient.telecom] == [("email", "peter.chalmers@good.test")]
    assert patient.gender == "other"

    wanted = communication_request(patient_id=patient.id, template_id=reminder.pk, identifier="APPT-7")
    accepted = CommunicationRequest(wanted).create(server)
    assert CommunicationRequest(wanted).create(server)["id"] == accepted["id"]  # a retry: same request

    report = drain(tenant_id=tenant.pk, stream=Stream.TRANSACTIONAL, deps=dependencies(kit, transport))
    assert report.states == {Message.State.DELIVERED_TLS: 1}

    search = Communication.where(struct={"based-on": f"CommunicationRequest/{accepted['id']}"})
    [communication] = search.perform_resources(server)
    assert communication.status == "completed"
    assert communication.subject.reference == f"Patient/{patient.id}"
    attempt = delivery_attempt(communication)
    assert attempt["mx_host"].valueString == "mx.good.test"
    assert attempt["smtp_code"].valueInteger == 250

    [received] = kit["good"].messages
    assert received.rcpt_tos == ["peter.chalmers@good.test"]
    mail = email.message_from_bytes(received.content, policy=email.policy.SMTP)
    assert mail["Message-ID"] == communication.identifier[0].value
    assert "Monday 9:00" in mail.get_body(("html", "plain")).get_content()
    with tenant_context(tenant):
        assert Message.objects.get(pk=communication.id).sender_domain_id == sender_domain.pk


def test_smart_backend_records_reads_and_revokes_an_authorization(committed_db, server_url):
    """Consent through fhirclient: an EHR records a signed HIPAA authorization, reads and searches
    it, revokes it with an update to `inactive`, and PHI marketing is refused from that moment."""
    from consent.authorization_records import tenant_today
    from consent.gate import may_send
    from consent.services import topic_by_key
    from contacts.models import Contact

    from .examples import hipaa_authorization, marketing_consent

    tenant = TenantFactory(name=f"FHIR consent {uuid.uuid4().hex[:6]}", slug=f"fhirc-{uuid.uuid4().hex[:10]}")
    BaaFactory(tenant=tenant)
    backend = register(
        tenant, scopes=["contacts:read", "contacts:write", "contacts:phi", "consent:read", "consent:write"]
    )
    client = fhir_client(server_url, backend, scope="system/Patient.rs system/Patient.cu system/Consent.crus")
    server = client.server
    patient_id = Patient(us_patient(mrn="MRN-C1", email="c1@patients.test")).create(server)["id"]
    Consent(marketing_consent(patient_id=patient_id, provision="permit")).create(server)

    today = tenant_today(tenant)
    signed = hipaa_authorization(
        patient_id=patient_id,
        signed_on=today - datetime.timedelta(days=2),
        expires_on=today + datetime.timedelta(days=90),
    )
    created = Consent(signed).create(server)
    consent = Consent.read(created["id"], server)
    assert (consent.status, consent.performer[0].display) == ("active", "Peter James Chalmers")
    assert consent.provision.period.end.as_json() == str(today + datetime.timedelta(days=90))
    [found] = Consent.where(
        struct={"patient": f"Patient/{patient_id}", "category": "http://loinc.org|64292-6"}
    ).perform_resources(server)
    assert found.id == consent.id

    topic = topic_by_key(tenant=tenant, key="marketing_newsletters")
    with tenant_context(tenant):
        contact = Contact.objects.get(pk=patient_id)
    assert may_send(contact=contact, purpose="marketing", uses_phi=True, topic=topic).allowed

    consent.status = "inactive"
    revoked = consent.update(server)
    assert revoked["status"] == "inactive"
    decision = may_send(contact=contact, purpose="marketing", uses_phi=True, topic=topic)
    assert (decision.allowed, decision.code) == (False, "authorization_revoked")
    assert Consent.read(consent.id, server).status == "inactive"


def test_a_fhir_client_at_the_fhir_r4_base(committed_db, server_url):
    """The base the EHR standards name: discovery, token, create, update and read through it; the
    server still names the canonical base in what it gives out."""
    tenant = TenantFactory(name=f"FHIR base {uuid.uuid4().hex[:6]}", slug=f"fhir-{uuid.uuid4().hex[:10]}")
    BaaFactory(tenant=tenant)
    backend = register(tenant, scopes=["contacts:read", "contacts:write", "contacts:phi"])
    client = fhir_client(server_url, backend, scope="system/Patient.rs system/Patient.cu", base="/fhir/r4/")
    server = client.server
    assert server.capabilityStatement.implementation.url == f"{server_url}/api/fhir/r4/"
    created = Patient(us_patient(mrn="MRN-8", email="alias@patients.test")).create(server)
    patient = Patient.read(created["id"], server)
    patient.birthDate = None
    patient.update(server)
    assert Patient.read(created["id"], server).birthDate is None
