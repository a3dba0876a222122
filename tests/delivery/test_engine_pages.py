"""Delivery pages: who may see progress, search messages and read evidence; masked addresses; another
tenant's ids answer 404; the progress fragment htmx polls."""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from delivery.models import DomainTlsPolicy, Message, MessageAttempt
from healthmail.accounts.roles import Role
from healthmail.tenants.context import tenant_context

from .engine_support import enqueue, verified_sender_domain

pytestmark = pytest.mark.django_db
State = Message.State
ROLES = [Role.TENANT_ADMIN, Role.MARKETER, Role.COMPLIANCE_OFFICER, Role.CLINICAL_REVIEWER]


@pytest.fixture
def sent(tenant_a):
    """Three messages of one campaign: one delivered with evidence, one bounced, one waiting."""
    sender = verified_sender_domain(tenant_a)[0]
    messages = enqueue(
        tenant_a,
        ["zebediah.q@good.test", "b@reject.test", "c@good.test"],
        sender_domain=sender,
        stream="marketing",
        source_id="11111111-2222-3333-4444-555555555555",
        purpose="treatment",
    )
    delivered, bounced, _ = messages
    now = timezone.now()
    tls = {
        "mx": "mx.good.test",
        "port": 25,
        "tls": True,
        "version": "TLSv1.3",
        "cipher": "TLS_AES_256_GCM_SHA384",
        "peer_certificate_sha256": "ab" * 32,
        "verified": True,
        "method": "pkix",
        "policy_source": "mta-sts",
        "requiretls": False,
    }
    evidence = {
        "path": "direct",
        "tls": tls,
        "policy": {
            "source": "mta-sts",
            "mode": "enforce",
            "reason": "MTA-STS enforce (id 1, max_age 86400s)",
        },
    }
    with tenant_context(tenant_a):
        Message.objects.filter(pk=delivered.pk).update(
            state=State.DELIVERED_TLS, evidence=evidence, attempts=1, finished_at=now, path="direct"
        )
        Message.objects.filter(pk=bounced.pk).update(state=State.BOUNCED, state_reason="550 5.1.1 [address]")
        MessageAttempt.objects.create(
            tenant=tenant_a, message_id=delivered.pk, started_at=now, finished_at=now, outcome="delivered",
            smtp_code=250, mx_host="mx.good.test", path="direct",
        )  # fmt: skip
    DomainTlsPolicy.objects.create(
        domain="good.test", source="mta-sts", mode="enforce", verified=None, reason="MTA-STS enforce (id 1)",
        policy={}, resolved_at=now, expires_at=now,
    )  # fmt: skip
    return messages


def _progress_url(source_id="11111111-2222-3333-4444-555555555555"):
    return reverse("sending:source_progress", args=["campaign", source_id])


@pytest.mark.parametrize("role", ROLES)
def test_progress_page_counts_per_state_for_allowed_roles(member_client, sent, role, settings):
    settings.DISCLOSURE_NOISE_SCALE = 0.5  # this test is about roles; tests/privacy tries the noise
    client = member_client(role)

    response = client.get(_progress_url())

    if role == Role.CLINICAL_REVIEWER:
        assert response.status_code == 403
        return
    assert response.status_code == 200
    body = response.content.decode()
    # One message per state: each figure goes through the disclosure policy, so none shows as 1.
    assert 'data-state="delivered_tls">fewer than 11<' in body
    assert 'data-state="bounced">fewer than 11<' in body
    assert 'data-state="queued">fewer than 11<' in body
    assert ">1<" not in body
    assert 'hx-trigger="every 2s"' in body  # still sending: the fragment polls
    assert "zebediah" not in body


def test_progress_fragment_for_htmx_and_stops_polling_when_finished(member_client, sent, tenant_a):
    client = member_client(Role.MARKETER)

    fragment = client.get(_progress_url(), HTTP_HX_REQUEST="true")
    with tenant_context(tenant_a):
        Message.objects.filter(state=State.QUEUED).update(state=State.CANCELLED)
    finished = client.get(_progress_url(), HTTP_HX_REQUEST="true")

    assert fragment.status_code == 200
    assert fragment.content.decode().lstrip().startswith("<section")
    assert "<html" not in fragment.content.decode()
    assert "hx-trigger" not in finished.content.decode()
    assert "Finished" in finished.content.decode()


def test_sources_of_another_tenant_answer_404(member_client, sent, tenant_b):
    client = member_client(Role.TENANT_ADMIN, tenant=tenant_b)

    assert client.get(_progress_url()).status_code == 404
    assert client.get(_progress_url(str(uuid.uuid4()))).status_code == 404
    assert "1111" not in client.get(reverse("sending:source_list")).content.decode()


@pytest.mark.parametrize("role", ROLES)
def test_message_search_shows_a_masked_address_to_support_roles(member_client, sent, role):
    client = member_client(role)
    delivered = sent[0]

    response = client.get(reverse("sending:message_search"), {"q": str(delivered.pk)})

    if role not in (Role.TENANT_ADMIN, Role.COMPLIANCE_OFFICER):
        assert response.status_code == 403
        return
    body = response.content.decode()
    assert response.status_code == 200
    assert "z***@good.test" in body
    assert "zebediah.q" not in body
    assert "Delivered over verified TLS" in body
    with tenant_context(sent[0].tenant_id):
        event = AuditEvent.objects.filter(action="phi.read").latest("id")
    assert event.details["fields"] == ["to_address"]
    assert event.details["purpose"] == "support: message search"


def test_message_search_by_message_id_header_and_foreign_ids(member_client, sent, tenant_b):
    client = member_client(Role.TENANT_ADMIN)
    delivered = sent[0]

    by_header = client.get(reverse("sending:message_search"), {"q": delivered.message_id})
    without_brackets = client.get(reverse("sending:message_search"), {"q": delivered.message_id.strip("<>")})
    other = member_client(Role.TENANT_ADMIN, tenant=tenant_b)
    foreign = other.get(reverse("sending:message_search"), {"q": str(delivered.pk)})
    missing = other.get(reverse("sending:message_search"), {"q": str(uuid.uuid4())})

    assert by_header.status_code == without_brackets.status_code == 200
    assert str(delivered.pk) in by_header.content.decode()
    assert foreign.status_code == missing.status_code == 404
    assert "No message with this id." in foreign.content.decode()
    assert "z***" not in foreign.content.decode()


@pytest.mark.parametrize("role", ROLES)
def test_evidence_page_for_compliance_and_admins(member_client, sent, role):
    client = member_client(role)
    delivered = sent[0]

    response = client.get(reverse("sending:message_evidence", args=[delivered.pk]))

    if role not in (Role.TENANT_ADMIN, Role.COMPLIANCE_OFFICER):
        assert response.status_code == 403
        return
    body = response.content.decode()
    assert response.status_code == 200
    assert "TLSv1.3" in body
    assert "verified: certificate chain (PKIX)" in body
    assert "ab" * 32 in body
    assert "MTA-STS enforce" in body
    assert "mx.good.test" in body
    assert "z***@good.test" in body
    assert "zebediah.q" not in body


def test_evidence_of_another_tenant_answers_404(member_client, sent, tenant_b):
    client = member_client(Role.COMPLIANCE_OFFICER, tenant=tenant_b)

    foreign = client.get(reverse("sending:message_evidence", args=[sent[0].pk]))
    missing = client.get(reverse("sending:message_evidence", args=[uuid.uuid4()]))

    assert foreign.status_code == missing.status_code == 404
    assert str(sent[0].pk) not in foreign.content.decode()
    assert "z***" not in foreign.content.decode()


def test_domain_table_shows_the_tenants_domains_and_why(member_client, sent, tenant_b):
    response = member_client(Role.COMPLIANCE_OFFICER).get(reverse("sending:domain_table"))
    other = member_client(Role.COMPLIANCE_OFFICER, tenant=tenant_b).get(reverse("sending:domain_table"))
    marketer = member_client(Role.MARKETER).get(reverse("sending:domain_table"))

    body = response.content.decode()
    assert response.status_code == 200
    assert "good.test" in body
    assert "MTA-STS enforce (id 1)" in body
    assert "enforced" in body
    assert "reject.test" in body
    assert "Not looked up yet" in body
    assert "good.test" not in other.content.decode()  # another tenant's recipients are not listed
    assert marketer.status_code == 403
