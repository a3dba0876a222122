"""Secure portal: the notice carries no PHI, the link reveals nothing until the reader proves they hold
the address, codes are throttled, every open is audited, replies are sealed, recall and expiry work."""

from __future__ import annotations

import re
import uuid

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from delivery.models import PortalMessage, PortalReply
from delivery.outbox import message_content
from delivery.portal import services
from delivery.portal.services import Attachment, portal_deliver
from healthmail.actors import Actor
from healthmail.crypto.objects import shred
from healthmail.tenants.context import tenant_context

from .outbox_helpers import PHI_BODY, PHI_SUBJECT, content, make_message
from .patient_mail import patient_mail, patient_sender

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _sender_domain(tenant_a):
    """Codes leave from the tenant's verified sender domain (delivery.patient_mail)."""
    patient_sender(tenant_a)


@pytest.fixture(autouse=True)
def _own_address(client):
    """Per-address counters live in the shared Redis: each test comes from its own address."""
    client.defaults["REMOTE_ADDR"] = (
        f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    )


def _deliver(tenant, **kwargs):
    message = make_message(tenant, address="zeb@patients.example")
    with tenant_context(tenant):
        notice = portal_deliver(message, message_content(message), **kwargs)
    return message, notice


def _path(notice) -> str:
    return notice.portal_url.split("://", 1)[1].split("/", 1)[1].join(["/", ""])


def _portal_message(tenant, message) -> PortalMessage:
    with tenant_context(tenant):
        return PortalMessage.objects.get(message_id=message.pk)


def _code_from_outbox() -> str:
    return re.search(r"\b(\d{6})\b", patient_mail()[-1].body).group(1)


def _verify(client, path: str) -> None:
    client.post(path + "code/")
    response = client.post(path + "verify/", {"code": _code_from_outbox()})
    assert response.status_code == 302


def test_notice_carries_no_phi_and_a_link(tenant_a):
    _message, notice = _deliver(tenant_a)
    for part in (notice.subject, notice.text, notice.html):
        assert "HbA1c" not in part
        assert "Zebediah" not in part
        assert "zeb@" not in part
    assert notice.portal_url in notice.text
    assert tenant_a.name in notice.subject


def test_portal_copy_has_its_own_key_so_shredding_is_independent(tenant_a):
    message, _notice = _deliver(tenant_a)
    portal_message = _portal_message(tenant_a, message)
    assert portal_message.content_key_id != message.content_key_id
    with tenant_context(tenant_a):
        shred(message.content_key, actor=Actor.system("tests"), reason="retention")
        assert services.portal_open(portal_message=portal_message).subject == PHI_SUBJECT


def test_redelivery_keeps_one_copy_and_both_links_work(client, tenant_a):
    message, first = _deliver(tenant_a)
    with tenant_context(tenant_a):
        second = portal_deliver(message, content())
        assert PortalMessage.objects.filter(message_id=message.pk).count() == 1
    assert first.portal_url != second.portal_url
    assert client.get(_path(first)).status_code == 200
    assert client.get(_path(second)).status_code == 200


def test_link_reveals_nothing_before_verification(client, tenant_a):
    _message, notice = _deliver(tenant_a)
    page = client.get(_path(notice))
    body = page.content.decode()
    assert page.status_code == 200
    assert tenant_a.name in body
    for secret in (PHI_SUBJECT, "HbA1c", "Zebediah", "zeb@patients.example"):
        assert secret not in body
    assert page["Cache-Control"] == "no-store"


def test_code_flow_opens_the_message_and_audits_every_open(client, tenant_a):
    message, notice = _deliver(tenant_a)
    path = _path(notice)
    client.post(path + "code/")
    code_mail = patient_mail()[-1]
    assert code_mail.to == ["zeb@patients.example"]
    assert "HbA1c" not in code_mail.subject + code_mail.body
    response = client.post(path + "verify/", {"code": _code_from_outbox()})
    assert response.status_code == 302
    page = client.get(path)
    assert PHI_SUBJECT in page.content.decode()
    client.get(path)
    portal_message = _portal_message(tenant_a, message)
    assert portal_message.read_count == 2
    assert portal_message.first_read_at is not None
    with tenant_context(tenant_a):
        actor_id = str(portal_message.pk)
        opens = AuditEvent.objects.filter(action="portal.open", actor_type="recipient", actor_id=actor_id)
        reads = AuditEvent.objects.filter(
            action="phi.read", actor_id=actor_id, target_type="delivery.portalmessage"
        )
        assert opens.count() == 2
        assert reads.count() == 2
        assert AuditEvent.objects.filter(action="portal.verify", outcome="success").count() == 1


def test_verified_session_covers_only_that_message(client, tenant_a):
    _, first = _deliver(tenant_a)
    _, second = _deliver(tenant_a)
    _verify(client, _path(first))
    assert PHI_SUBJECT in client.get(_path(first)).content.decode()
    assert PHI_SUBJECT not in client.get(_path(second)).content.decode()


def test_wrong_codes_burn_the_code_and_brute_force_gets_429(client, tenant_a, settings):
    settings.PORTAL_FAILURES_PER_LINK = 6
    _, notice = _deliver(tenant_a)
    path = _path(notice)
    client.post(path + "code/")
    real = _code_from_outbox()
    wrong = "000000" if real != "000000" else "111111"
    for _ in range(services.CODE_MAX_ATTEMPTS):
        assert client.post(path + "verify/", {"code": wrong}).status_code == 400
    # The code is burnt after the maximum attempts: even the right one no longer works.
    assert client.post(path + "verify/", {"code": real}).status_code == 400
    refused = client.post(path + "verify/", {"code": real})
    assert refused.status_code == 429
    assert "Too many attempts" in refused.content.decode()


def test_code_sends_are_rate_limited_per_link(client, tenant_a, settings):
    settings.PORTAL_CODE_SENDS_PER_LINK = 2
    _, notice = _deliver(tenant_a)
    path = _path(notice)
    assert client.post(path + "code/").status_code == 302
    assert client.post(path + "code/").status_code == 302
    assert client.post(path + "code/").status_code == 429
    assert len(patient_mail()) == 2


def test_code_sends_are_rate_limited_per_address(client, tenant_a, settings):
    settings.PORTAL_CODE_SENDS_PER_IP = 2
    paths = [_path(_deliver(tenant_a)[1]) for _ in range(3)]
    assert [client.post(p + "code/").status_code for p in paths] == [302, 302, 429]


def test_expired_code_is_refused(client, tenant_a):
    message, notice = _deliver(tenant_a)
    path = _path(notice)
    client.post(path + "code/")
    with tenant_context(tenant_a):
        _portal_message(tenant_a, message).codes.update(expires_at=timezone.now())
    assert client.post(path + "verify/", {"code": _code_from_outbox()}).status_code == 400


def test_unknown_and_malformed_links_show_nothing(client, tenant_a):
    _, notice = _deliver(tenant_a)
    path = _path(notice)
    forged = path[:-10] + ("A" * 9) + "/"
    for bad in (forged, "/p/portal/not-a-token/", "/p/portal/" + "x" * 200 + "/"):
        response = client.get(bad)
        assert response.status_code == 404
        assert tenant_a.name not in response.content.decode()


def test_recall_and_expiry_show_clear_pages(client, tenant_a):
    message, notice = _deliver(tenant_a)
    portal_message = _portal_message(tenant_a, message)
    with tenant_context(tenant_a):
        services.portal_recall(
            tenant=tenant_a,
            actor=Actor.system("tests"),
            portal_message=portal_message,
            reason="wrong patient",
        )
    response = client.get(_path(notice))
    assert response.status_code == 410
    assert "withdrew" in response.content.decode()

    message, notice = _deliver(tenant_a)
    with tenant_context(tenant_a):
        PortalMessage.objects.filter(message_id=message.pk).update(expires_at=timezone.now())
    response = client.get(_path(notice))
    assert response.status_code == 410
    assert "expired" in response.content.decode()


def test_default_expiry_is_thirty_days(tenant_a):
    message, _ = _deliver(tenant_a)
    left = _portal_message(tenant_a, message).expires_at - timezone.now()
    assert 29 < left.total_seconds() / 86400 <= 30


def test_reply_is_sealed_and_readable_by_staff(client, tenant_a):
    message, notice = _deliver(tenant_a)
    path = _path(notice)
    _verify(client, path)
    client.post(path + "reply/", {"body": "Can I get a follow-up appointment?"})
    portal_message = _portal_message(tenant_a, message)
    with tenant_context(tenant_a):
        reply = PortalReply.objects.get(portal_message=portal_message)
        assert b"follow-up" not in bytes(reply.body)
        [(_found, text)] = services.portal_replies_read(
            tenant=tenant_a, actor=Actor.system("tests"), portal_message=portal_message
        )
        assert text == "Can I get a follow-up appointment?"


def test_reply_needs_verification(client, tenant_a):
    _message, notice = _deliver(tenant_a)
    client.post(_path(notice) + "reply/", {"body": "hello"})
    with tenant_context(tenant_a):
        assert not PortalReply.objects.exists()


def test_passphrase_replaces_the_code_next_time(client, tenant_a):
    _, notice = _deliver(tenant_a)
    path = _path(notice)
    _verify(client, path)
    client.post(path + "passphrase/", {"passphrase": "correct horse battery"})
    client.cookies.clear()
    page = client.get(path).content.decode()
    assert "Or use your passphrase" in page
    assert PHI_SUBJECT not in page
    assert client.post(path + "verify/", {"passphrase": "wrong passphrase!!"}).status_code == 400
    assert client.post(path + "verify/", {"passphrase": "correct horse battery"}).status_code == 302
    assert PHI_SUBJECT in client.get(path).content.decode()


def test_attachments_download_after_verification_only(client, tenant_a):
    _, notice = _deliver(
        tenant_a, attachments=(Attachment("result.pdf", "application/pdf", b"%PDF-1.4 lab"),)
    )
    path = _path(notice)
    assert client.get(path + "attachments/0/").status_code == 302
    _verify(client, path)
    response = client.get(path + "attachments/0/")
    assert response.content == b"%PDF-1.4 lab"
    assert response["Content-Disposition"] == 'attachment; filename="result.pdf"'
    assert client.get(path + "attachments/5/").status_code == 404


def test_shredded_portal_message_reads_as_expired(client, tenant_a):
    message, notice = _deliver(tenant_a)
    portal_message = _portal_message(tenant_a, message)
    with tenant_context(tenant_a):
        shred(portal_message.content_key, actor=Actor.system("tests"), reason="retention")
    assert client.get(_path(notice)).status_code == 410


def test_link_of_one_tenant_never_opens_in_another(client, tenant_a, tenant_b):
    _, notice = _deliver(tenant_a)
    token = _path(notice).rstrip("/").rsplit("/", 1)[1]
    import base64

    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    swapped = base64.urlsafe_b64encode(tenant_b.pk.bytes + raw[16:]).decode().rstrip("=")
    assert client.get(reverse("portal:landing", args=[swapped])).status_code == 404


def test_body_phi_never_in_notice_even_for_html(tenant_a):
    _, notice = _deliver(tenant_a)
    assert PHI_BODY not in notice.html
