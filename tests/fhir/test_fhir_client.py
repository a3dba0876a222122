"""The integrator's whole path, through a real FHIR client library (fhirclient, SMART on FHIR) over
HTTP against a live server: register a SMART backend client with a generated key pair, obtain a
token with a signed assertion, upsert a Patient, post a CommunicationRequest, let the engine deliver
it to the loopback mail server, and read back the Communication with its delivery evidence.

The server thread opens its own connections, so the data is committed (a tenant of its own)."""

from __future__ import annotations

import email
import email.policy
import uuid
from collections.abc import Iterator

import pytest
from fhirclient.models.communication import Communication
from fhirclient.models.communicationrequest import CommunicationRequest
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
