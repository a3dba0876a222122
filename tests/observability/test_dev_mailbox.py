"""The dev mailbox page reads the SMTP sink's Maildir; never renders message HTML."""

import mailbox
from email.message import EmailMessage

import pytest
from django.urls import reverse

from healthmail.accounts.roles import Role

pytestmark = pytest.mark.django_db


def _message(subject, date, *, html=None, text="Your appointment is confirmed.") -> bytes:
    message = EmailMessage()
    message["From"] = "Synthetic Clinic <no-reply@clinic.example>"
    message["To"] = "synthetic.patient@example.org"
    message["Subject"] = subject
    message["Date"] = date
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message.as_bytes()


@pytest.fixture
def maildir(tmp_path, settings):
    path = tmp_path / "mail"
    settings.DEV_MAILBOX_DIR = str(path)
    box = mailbox.Maildir(str(path), create=True)
    return box


def test_absent_without_dev_mailbox_dir(member_client, settings):
    settings.DEV_MAILBOX_DIR = ""
    client = member_client(Role.MARKETER)
    assert client.get(reverse("dev_mailbox")).status_code == 404
    assert client.get(reverse("dev_mailbox_message", kwargs={"key": "anything"})).status_code == 404


def test_requires_a_signed_in_user(client, maildir):
    response = client.get(reverse("dev_mailbox"))
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_empty_when_the_sink_has_not_started(member_client, tmp_path, settings):
    settings.DEV_MAILBOX_DIR = str(tmp_path / "not-yet")
    response = member_client(Role.MARKETER).get(reverse("dev_mailbox"))
    assert response.status_code == 200
    assert "No mail yet." in response.content.decode()


def test_lists_newest_first(member_client, maildir):
    maildir.add(_message("Second", "Tue, 02 Jun 2026 09:00:00 +0000"))
    maildir.add(_message("Third", "Wed, 03 Jun 2026 09:00:00 +0000"))
    maildir.add(_message("First", "Mon, 01 Jun 2026 09:00:00 +0000"))
    response = member_client(Role.MARKETER).get(reverse("dev_mailbox"))
    assert response.status_code == 200
    shown = response.context["messages_shown"]
    assert [m.subject for m in shown] == ["Third", "Second", "First"]
    assert shown[0].to == "synthetic.patient@example.org"
    assert "Synthetic Clinic" in shown[0].sender
    assert shown[0].date.day == 3


def test_message_shows_text_and_escapes_html(member_client, maildir):
    html = '<p onclick="x()">Hello</p><script>alert("owned")</script>'
    key = maildir.add(_message("Lab result ready", "Mon, 01 Jun 2026 09:00:00 +0000", html=html))
    response = member_client(Role.MARKETER).get(reverse("dev_mailbox_message", kwargs={"key": key}))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Your appointment is confirmed." in body
    assert "<script>alert" not in body
    assert "&lt;script&gt;alert(&quot;owned&quot;)&lt;/script&gt;" in body
    assert ("Subject", "Lab result ready") in response.context["detail"].headers


def test_html_only_message_shows_source(member_client, maildir):
    message = EmailMessage()
    message["Subject"] = "HTML only"
    message.set_content("<b>bold</b>", subtype="html")
    key = maildir.add(message.as_bytes())
    detail = (
        member_client(Role.MARKETER)
        .get(reverse("dev_mailbox_message", kwargs={"key": key}))
        .context["detail"]
    )
    assert detail.text == ""
    assert "<b>bold</b>" in detail.html_source


def test_unknown_message_is_404(member_client, maildir):
    client = member_client(Role.MARKETER)
    assert (
        client.get(reverse("dev_mailbox_message", kwargs={"key": "1700000000.M1P1Q1.nohost"})).status_code
        == 404
    )
    assert client.get("/dev/mailbox/..%2F..%2Fetc%2Fpasswd/").status_code == 404


def _delivered(tenant, *, receiver="tls", tls="TLSv1.3 TLS_AES_256_GCM_SHA384", subject="Hello", text=None):
    """A message as the dev receivers store it: trace headers above the engine's message."""
    message = EmailMessage()
    message["From"] = "Demo Health <news@mail.demo-health.test>"
    message["To"] = "synthetic.patient.1@patients.test"
    message["Subject"] = subject
    message["Date"] = "Mon, 01 Jun 2026 09:00:00 +0000"
    message["List-Unsubscribe"] = "<http://testserver/p/u/token123/>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["DKIM-Signature"] = "v=1; a=rsa-sha256; d=mail.demo-health.test; s=hm1; b=abc"
    message["Feedback-ID"] = f"campaign-1:campaign:{tenant.pk.hex[:12]}:hm-marketing"
    message.set_content(text or "Flu shots are here.")
    trace = (
        "Return-Path: <bounce-m+1@mail.demo-health.test>\r\n"
        "Delivered-To: synthetic.patient.1@patients.test\r\n"
        f"X-Dev-Receiver: {receiver}; host=mx.patients.test; port=2525\r\n"
        f"X-Dev-TLS: {tls}\r\n"
    )
    return trace.encode() + message.as_bytes()


def test_shows_envelope_transport_and_delivery_headers(member_client, maildir, tenant_a, settings):
    settings.PUBLIC_BASE_URL = "http://testserver"
    key = maildir.add(_delivered(tenant_a))
    client = member_client(Role.MARKETER)
    [row] = client.get(reverse("dev_mailbox")).context["messages_shown"]
    assert row.transport == "Verified TLS"
    detail = client.get(reverse("dev_mailbox_message", kwargs={"key": key})).context["detail"]
    assert detail.envelope_from == "bounce-m+1@mail.demo-health.test"
    assert detail.envelope_to == ["synthetic.patient.1@patients.test"]
    assert [name for name, _ in detail.delivery_headers] == [
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "DKIM-Signature",
        "Feedback-ID",
    ]
    assert detail.unsubscribe_url == "http://testserver/p/u/token123/"
    plain = maildir.add(_delivered(tenant_a, receiver="plain", tls="none"))
    assert (
        client.get(reverse("dev_mailbox_message", kwargs={"key": plain}))
        .context["detail"]
        .summary.transport.startswith("Plain")
    )


def test_portal_notice_links_to_the_portal_page(member_client, maildir, tenant_a, settings):
    settings.PUBLIC_BASE_URL = "http://testserver"
    text = "To read it, open:\nhttp://testserver/p/portal/abc.def/\n\nWe will send a one-time code."
    key = maildir.add(_delivered(tenant_a, subject="You have a secure message from Demo", text=text))
    client = member_client(Role.MARKETER)
    [row] = client.get(reverse("dev_mailbox")).context["messages_shown"]
    assert row.is_portal_notice
    response = client.get(reverse("dev_mailbox_message", kwargs={"key": key}))
    assert response.context["detail"].portal_links == ["http://testserver/p/portal/abc.def/"]
    assert 'href="http://testserver/p/portal/abc.def/"' in response.content.decode()


def test_another_tenants_mail_is_hidden_and_404(member_client, maildir, tenant_a, tenant_b):
    theirs = maildir.add(_delivered(tenant_b, subject="Theirs"))
    maildir.add(_delivered(tenant_a, subject="Ours"))
    maildir.add(_message("System mail", "Mon, 01 Jun 2026 09:00:00 +0000"))  # no tenant: shown to all
    client = member_client(Role.MARKETER)
    shown = {m.subject for m in client.get(reverse("dev_mailbox")).context["messages_shown"]}
    assert shown == {"Ours", "System mail"}
    assert client.get(reverse("dev_mailbox_message", kwargs={"key": theirs})).status_code == 404


def test_platform_admin_sees_every_tenant(platform_admin_client, maildir, tenant_a, tenant_b):
    maildir.add(_delivered(tenant_a, subject="A"))
    maildir.add(_delivered(tenant_b, subject="B"))
    shown = {m.subject for m in platform_admin_client.get(reverse("dev_mailbox")).context["messages_shown"]}
    assert shown == {"A", "B"}
