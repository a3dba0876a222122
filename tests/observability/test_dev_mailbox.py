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
