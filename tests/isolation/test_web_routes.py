"""Generated foreign-tenant tests for the web (RELIABILITY S1 for pages), the API's BOLA harness'
counterpart (tests/api/test_bola.py): every URL pattern with an object id, read from the URL
configuration, is opened by each tenant role with another tenant's object and with an id that does
not exist. Both must answer alike and never 200: a page must not tell "not yours" from "no such".

A new route fails `test_every_id_bearing_route_is_covered` until each of its parameters has an
object factory below (or is listed in NOT_OBJECT_IDS / PENDING with the reason).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from django.test import Client

from healthmail.accounts.roles import Role
from tests.api import objects as api
from tests.conftest import sign_in
from tests.factories import MembershipFactory
from tests.web.routes import Route, all_routes

pytestmark = pytest.mark.django_db

Factory = Callable[[object], dict[str, object]]  # tenant -> the route parameters naming its object


def _one(name: str, make: Callable[..., object]) -> Factory:
    return lambda tenant: {name: make(tenant, None)}


def _membership(tenant) -> dict[str, object]:
    return {"membership_id": MembershipFactory(tenant=tenant, role=Role.MARKETER).pk}


def _authorization(tenant) -> dict[str, object]:
    from consent.models import Authorization
    from healthmail.tenants.context import tenant_context

    authorization_id = api.authorization_id(tenant, None)
    with tenant_context(tenant):
        contact_id = Authorization.objects.get(pk=authorization_id).contact_id
    return {"authorization_id": authorization_id, "contact_id": contact_id}


def _system():
    from healthmail.actors import Actor

    return Actor.system("tests")


def _api_key(tenant) -> dict[str, object]:
    from healthmail.accounts.api_keys import api_key_create

    issued = api_key_create(actor=_system(), tenant=tenant, name="Isolation", scopes=["contacts:read"])
    return {"api_key_id": issued.api_key.pk}


def _smart_client(tenant) -> dict[str, object]:
    from healthmail.accounts.models import SmartClient
    from healthmail.tenants.context import tenant_context
    from tests.fhir.smart import register

    backend = register(tenant, scopes=["contacts:read"])
    with tenant_context(tenant):
        return {"smart_client_id": SmartClient.objects.get(client_id=backend.client_id).pk}


def _authorization_text(tenant) -> dict[str, object]:
    from tests.consent.conftest import new_text

    return {"text_id": new_text(tenant).pk}


def _custom_field(tenant) -> dict[str, object]:
    from contacts.services import custom_field_create
    from healthmail.crypto.fields import PhiClass

    key = f"isolation_{uuid.uuid4().hex[:6]}"
    field = custom_field_create(
        tenant=tenant,
        actor=_system(),
        key=key,
        label="Isolation",
        field_type="text",
        phi_class=PhiClass.DEMOGRAPHIC,
    )
    return {"field_id": field.pk}


def _sender_domain(tenant) -> dict[str, object]:
    from tests.campaigns.conftest import verified_domain

    return {"sender_domain_id": verified_domain(tenant, f"mail-{uuid.uuid4().hex[:6]}.example.org").pk}


def _legal_hold(tenant) -> dict[str, object]:
    from retention import holds
    from tests.retention.helpers import officer

    contact_id = api.contact_id(tenant, None)
    hold = holds.hold_create(
        tenant=tenant,
        actor=officer(tenant),
        matter="Synthetic matter",
        reason="Litigation",
        counsel="Counsel",
        scope=holds.HoldScope(contact_ids=(contact_id,)),
    )
    return {"hold_id": hold.pk}


def _incident(tenant) -> dict[str, object]:
    from tests.incidents.helpers import new_incident, officer

    return {"incident_id": new_incident(tenant, officer(tenant)).pk}


def _access_request(tenant) -> dict[str, object]:
    from django.utils import timezone

    from healthmail.accounts.roles import Role
    from incidents.access_requests import access_request_record
    from tests.incidents.helpers import officer

    request = access_request_record(
        tenant=tenant,
        user=officer(tenant),
        role=Role.COMPLIANCE_OFFICER,
        contact_id=api.contact_id(tenant, None),
        received_on=timezone.localdate(),
    )
    return {"request_id": request.pk}


def _audit_event(tenant) -> dict[str, object]:
    from audit import services as audit

    return {"event_id": audit.record(actor=_system(), action="isolation.probe", tenant=tenant).pk}


def _alert(tenant) -> dict[str, object]:
    from audit.models import Alert
    from healthmail.tenants.context import tenant_context

    with tenant_context(tenant):
        alert = Alert.objects.create(tenant=tenant, rule="mass_export", severity="warning", summary="Probe")
    return {"alert_id": alert.pk}


def _break_glass_grant(tenant) -> dict[str, object]:
    from audit.break_glass import break_glass_open
    from healthmail.tenants.context import tenant_context
    from tests.testapp.models import SecretNote

    with tenant_context(tenant):
        note = SecretNote.objects.create(tenant=tenant, body="Synthetic Patient Zed")
    grant = break_glass_open(
        user=MembershipFactory(tenant=tenant, role=Role.CLINICAL_REVIEWER).user,
        role=Role.CLINICAL_REVIEWER,
        tenant=tenant,
        target_type="testapp.secretnote",
        target_id=str(note.pk),
        reason="Patient in ER, chart needed now",
    )
    return {"grant_id": grant.pk}


def _portal_message(tenant) -> dict[str, object]:
    from delivery.models import PortalMessage
    from delivery.outbox import message_content
    from delivery.portal.services import portal_deliver
    from healthmail.tenants.context import tenant_context
    from tests.delivery.outbox_helpers import make_message

    message = make_message(tenant)
    with tenant_context(tenant):
        portal_deliver(message, message_content(message))
        return {"portal_message_id": PortalMessage.objects.get(message_id=message.pk).pk}


def _import_job(tenant) -> dict[str, object]:
    from tests.contacts.import_helpers import upload

    return {"job_id": upload(tenant, "email\nprobe@example.org\n").pk}


def _dkim_key(tenant) -> dict[str, object]:
    from delivery.models import DkimKey
    from delivery.sender_domains.services import sender_domain_add
    from healthmail.tenants.context import tenant_context

    with tenant_context(tenant):
        domain = sender_domain_add(
            tenant=tenant, actor=_system(), domain=f"mail-{uuid.uuid4().hex[:6]}.example.org"
        )
        key = DkimKey.objects.get(sender_domain=domain)
    return {"sender_domain_id": domain.pk, "key_id": key.pk}


def _domain_pause(tenant) -> dict[str, object]:
    import datetime

    from django.utils import timezone

    from delivery.inbound.models import DomainPause
    from healthmail.tenants.context import tenant_context

    with tenant_context(tenant):
        pause = DomainPause.objects.create(
            tenant=tenant,
            stream="marketing",
            receiving_domain="patients.example",
            paused_until=timezone.now() + datetime.timedelta(hours=1),
            reason="Probe",
        )
    return {**_sender_domain(tenant), "pause_id": pause.pk}


def _source(tenant) -> dict[str, object]:
    from tests.delivery.outbox_helpers import make_message

    source_id = str(uuid.uuid4())
    make_message(tenant, source_type="campaign", source_id=source_id)
    return {"source_type": "campaign", "source_id": source_id}


def _retention_policy(tenant) -> dict[str, object]:
    from retention import policies
    from tests.retention.helpers import officer

    policies.policies_ensure_defaults(tenant=tenant)
    current = policies.policy_in_force(tenant=tenant, category="message_content")
    data = policies.PolicyInput(
        min_retention_days=current.min_retention_days,
        max_retention_days=current.max_retention_days,
        action=current.action,
        approval_required=current.approval_required,
        rationale="Probe",
        reason="Probe",
        legal_basis=current.legal_basis,
    )
    proposed = policies.policy_propose(
        tenant=tenant, actor=officer(tenant), category="message_content", data=data
    )
    return {"policy_id": proposed.pk}


def _disposal_run(tenant) -> dict[str, object]:
    from retention import disposal
    from tests.retention.helpers import YEAR, new_messages, officer

    new_messages(tenant, 1, age=8 * YEAR)
    (run,) = disposal.disposal_plan(tenant=tenant, actor=officer(tenant))
    return {"run_id": run.pk}


def _retention_exception(tenant) -> dict[str, object]:
    import datetime

    from django.utils import timezone

    from retention.services import exception_request
    from tests.retention.helpers import YEAR, new_messages, officer

    (message,) = new_messages(tenant, 1, age=8 * YEAR)
    exception = exception_request(
        tenant=tenant,
        actor=officer(tenant),
        category="message_metadata",
        record_ids=[str(message.pk)],
        reason="Audit by payer",
        extend_until=timezone.localdate() + datetime.timedelta(days=30),
    )
    return {"exception_id": exception.pk}


def _archived_record(tenant) -> dict[str, object]:
    from healthmail.tenants.context import tenant_context
    from retention.archive.due import archive_due
    from retention.models import ArchivedRecord
    from tests.retention.helpers import YEAR, new_messages

    (message,) = new_messages(tenant, 1, age=3 * YEAR)
    archive_due(tenant=tenant)
    with tenant_context(tenant):
        return {
            "archived_id": ArchivedRecord.objects.get(
                record_id=str(message.pk), category="message_metadata"
            ).pk
        }


def _evidence_export(tenant) -> dict[str, object]:
    import datetime

    from tests.retention.helpers import new_contact, new_export, officer

    export_id = new_export(tenant, officer(tenant), age=datetime.timedelta(0), contact=new_contact(tenant))
    return {"export_id": export_id}


def _content_block(tenant) -> dict[str, object]:
    from campaigns.services.templates import block_save

    block = block_save(
        tenant=tenant, actor=_system(), key=f"probe_{uuid.uuid4().hex[:6]}", name="Probe", html="<p>Hi</p>"
    )
    return {"block_id": block.pk}


def _access_review(tenant) -> dict[str, object]:
    from healthmail.accounts.roles import Role
    from healthmail.tenants.context import tenant_context
    from incidents import access_reviews

    admin = MembershipFactory(tenant=tenant, role=Role.TENANT_ADMIN)
    with tenant_context(tenant):
        members = access_reviews.members_now(tenant=tenant)
    review = access_reviews.access_review_complete(
        tenant=tenant,
        user=admin.user,
        role=Role.TENANT_ADMIN,
        decisions={m.pk: access_reviews.Decision("keep") for m in members},
    )
    return {"review_id": review.pk}


def _policy_version(tenant) -> dict[str, object]:
    from healthmail.accounts.roles import Role
    from incidents.policies import policy_publish

    admin = MembershipFactory(tenant=tenant, role=Role.TENANT_ADMIN)
    version = policy_publish(
        tenant=tenant,
        user=admin.user,
        role=Role.TENANT_ADMIN,
        title=f"Acceptable use {uuid.uuid4().hex[:6]}",
        text="Use the platform only for the organization's patients.",
    )
    return {"version_id": version.pk}


def _tenant(tenant) -> dict[str, object]:
    """The platform pages' tenant: every tenant role is refused it as it is refused a missing one."""
    return {"tenant_id": tenant.pk}


def _baa(tenant) -> dict[str, object]:
    from healthmail.tenants.context import tenant_context
    from healthmail.tenants.models import BusinessAssociateAgreement

    with tenant_context(tenant):
        baa = BusinessAssociateAgreement.objects.for_tenant(tenant).get()  # the fixture's BAA
    return {"tenant_id": tenant.pk, "baa_id": baa.pk}


FACTORIES: dict[str, Factory] = {
    "tenant_id": _tenant,
    "baa_id": _baa,
    "event_id": _audit_event,
    "alert_id": _alert,
    "grant_id": _break_glass_grant,
    "portal_message_id": _portal_message,
    "job_id": _import_job,
    "key_id": _dkim_key,
    "pause_id": _domain_pause,
    "source_type": _source,
    "source_id": _source,
    "policy_id": _retention_policy,
    "run_id": _disposal_run,
    "exception_id": _retention_exception,
    "archived_id": _archived_record,
    "export_id": _evidence_export,
    "block_id": _content_block,
    "review_id": _access_review,
    "version_id": _policy_version,
    "incident_id": _incident,
    "request_id": _access_request,
    "journey_id": _one("journey_id", api.journey_id),
    "api_key_id": _api_key,
    "smart_client_id": _smart_client,
    "text_id": _authorization_text,
    "field_id": _custom_field,
    "sender_domain_id": _sender_domain,
    "hold_id": _legal_hold,
    "membership_id": _membership,
    "contact_id": _one("contact_id", api.contact_id),
    "authorization_id": _authorization,
    "segment_id": _one("segment_id", api.segment_id),
    "suppression_id": _one("suppression_id", api.suppression_id),
    "endpoint_id": _one("endpoint_id", api.webhook_endpoint_id),
    "message_id": _one("message_id", api.message_id),
    "campaign_id": _one("campaign_id", api.campaign_id),
    "template_id": _one("template_id", api.template_id),
}

# Route parameters that do not name a tenant's object by id, and why they are not tried here.
NOT_OBJECT_IDS: dict[str, str] = {
    "token": "a signed token (portal, tracking, public consent pages): forged or foreign tokens are "
    "refused by signature, tested with each page",
    "uidb64": "with `token`, a signed invitation link",
    "index": "a position inside the object the token names",
    "fingerprint": "a public signing key's fingerprint: public by design",
    "key": "a file of the development mailbox (development only, tests/observability)",
    "category": "a record category of the platform's registry, the same for every tenant",
}

# Tenant objects whose factory is still to write. Routes with these parameters keep their
# hand-written foreign-tenant tests until then; the list may only shrink.
PENDING: dict[str, str] = {}

ROLES = [Role.TENANT_ADMIN, Role.MARKETER, Role.COMPLIANCE_OFFICER, Role.CLINICAL_REVIEWER]


def _id_routes() -> list[Route]:
    return [route for route in all_routes() if route.parameters and not route.is_api]


def _covered(route: Route) -> bool:
    return all(name in FACTORIES for name in route.parameters)


def _missing_values(route: Route) -> dict[str, object]:
    return {name: 2_000_000_000 if name == "event_id" else uuid.uuid4() for name in route.parameters}


def test_every_id_bearing_route_is_covered():
    known = FACTORIES.keys() | NOT_OBJECT_IDS.keys() | PENDING.keys()
    unknown = sorted(
        f"{route.name} ({name})" for route in _id_routes() for name in route.parameters if name not in known
    )
    assert not unknown, "register an object factory (or say why not) for: " + ", ".join(unknown)
    assert not (FACTORIES.keys() & PENDING.keys()), "a parameter with a factory is no longer pending"
    assert len([r for r in _id_routes() if _covered(r)]) >= 30


def _answer(client: Client, path: str, values: dict[str, object]) -> tuple[int, str]:
    """Status and redirect target (ids blanked, so a foreign and a missing id compare equal)."""
    response = client.get(path)
    if response.status_code == 405:  # a form's target: what matters is the object lookup behind POST
        response = client.post(path, {})
    location = response.get("Location", "")
    for value in values.values():
        location = location.replace(str(value), "<id>")
    return response.status_code, location


@pytest.mark.parametrize("route", [r for r in _id_routes() if _covered(r)], ids=lambda route: route.name)
def test_a_foreign_tenants_object_answers_like_a_missing_one(route, tenant_a, tenant_b):
    values: dict[str, object] = {}
    for name in reversed(route.parameters):  # the innermost factory may name its parents too
        if name not in values:
            values.update(FACTORIES[name](tenant_b))
    missing = _missing_values(route)
    for role in ROLES:
        client = sign_in(Client(), MembershipFactory(tenant=tenant_a, role=role).user, tenant=tenant_a)
        answers = (
            _answer(client, route.path(**values), values),
            _answer(client, route.path(**missing), missing),
        )
        assert answers[0] == answers[1], (route.route, role, answers)
        status, location = answers[0]
        # 404 (or 403 for a role the page refuses); a form that refuses the empty POST before any
        # lookup redirects both alike, but never to the sign-in page (the test must be signed in).
        assert status in (403, 404) or (status == 302 and not location.startswith("/login")), answers
