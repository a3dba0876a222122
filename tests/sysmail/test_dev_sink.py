"""The dev SMTP sink keeps every message, whatever state its Maildir folder is in."""

import mailbox
import shutil
import smtplib

from aiosmtpd.controller import Controller

from healthmail.devstack import MaildirSink
from tests.delivery.servers import LOOPBACK, free_port


def _send(port: int, subject: str) -> None:
    with smtplib.SMTP(LOOPBACK, port, timeout=10) as client:
        client.sendmail(
            "system@healthmail.test", ["officer@staff.example.org"], f"Subject: {subject}\r\n\r\nbody\r\n"
        )


def test_sink_accepts_mail_into_a_folder_made_beforehand_or_emptied_while_running(tmp_path):
    maildir = tmp_path / "mail"
    maildir.mkdir()  # an existing, empty folder: the sub-folders are missing
    controller = Controller(MaildirSink(maildir), hostname=LOOPBACK, port=free_port())
    controller.start()
    try:
        _send(controller.port, "first")
        shutil.rmtree(maildir / "tmp")  # e.g. cleaned up by hand
        _send(controller.port, "second")
    finally:
        controller.stop()
    subjects = sorted(message["Subject"] for message in mailbox.Maildir(str(maildir), create=False))
    assert subjects == ["first", "second"]
