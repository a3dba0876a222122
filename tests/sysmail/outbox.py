"""Run the system-mail outbox in the test's own process, as the Celery task and the sweep would."""

from __future__ import annotations

from aiosmtpd.controller import Controller

from healthmail.sysmail import services
from healthmail.tenants.models import Tenant
from tests.delivery.servers import LOOPBACK, Behaviour, CapturingHandler, free_port


def sent_mail(*, to: str = "") -> list:
    """Django's test outbox after the system-mail outbox ran once for every tenant (what the worker
    does a moment after the request): codes and confirmations are there to read. `to`: only the mail
    to that address (tests on committed data share the outbox with other tenants' mail)."""
    from django.core import mail

    deliver_system_mail()
    return [m for m in mail.outbox if not to or m.to == [to]]


def deliver_system_mail(*tenants) -> list[str | None]:
    """One attempt at every due row (of the given tenants, default all); returns the new states."""
    tenant_ids = [t.pk for t in tenants] or list(Tenant.objects.values_list("pk", flat=True))
    states = []
    for tenant_id in tenant_ids:
        for mail_id in services.system_mail_sweep_tenant(tenant_id=tenant_id):
            states.append(services.system_mail_send(tenant_id=tenant_id, mail_id=mail_id))
    return states


class Receiver:
    """An SMTP server on a port chosen up front, so it can be down first and come up later."""

    def __init__(self, behaviour: Behaviour | None = None):
        self.port = free_port()
        self.handler = CapturingHandler(behaviour or Behaviour())
        self.controller: Controller | None = None

    def up(self) -> None:
        self.controller = Controller(self.handler, hostname=LOOPBACK, port=self.port)
        self.controller.start()

    def down(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def recipients(self) -> list[str]:
        return [rcpt for message in self.handler.messages for rcpt in message.rcpt_tos]
