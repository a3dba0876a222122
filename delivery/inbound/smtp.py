"""An aiosmtpd handler that accepts reports for our return-path (VERP), feedback-loop and DMARC report
addresses and applies them. It answers 250 for anything it accepted (no backscatter) and refuses other
recipients."""

from __future__ import annotations

import asyncio
import logging

from aiosmtpd.controller import Controller

from .parse import MAX_REPORT_BYTES
from .services import inbound_process
from .verp import dmarc_report_tenant, verp_parse

logger = logging.getLogger(__name__)


class ReportHandler:
    def __init__(
        self, *, accept_locals: tuple[str, ...] = ("fbl", "abuse", "postmaster", "dmarc"), process=None
    ):
        self.accept_locals = accept_locals
        self.process = process or _process_closing

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.rpartition("@")[0].lower()
        ours = verp_parse(address) is not None or dmarc_report_tenant(address) is not None
        if not ours and local not in self.accept_locals:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or envelope.content or b""
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        if len(data) > MAX_REPORT_BYTES:
            return "552 5.3.4 Report too large"
        recipients = list(envelope.rcpt_tos)
        # The ORM is synchronous: run the work in a thread, off the event loop.
        outcome = await asyncio.get_running_loop().run_in_executor(
            None, lambda: self.process(data, recipients)
        )
        logger.info("inbound report", extra={"reports": outcome.reports, "matched": outcome.matched})
        return "250 OK"


def _process_closing(data: bytes, recipients: list[str]):
    from django.db import close_old_connections

    close_old_connections()
    try:
        return inbound_process(data, envelope_recipients=recipients)
    finally:
        close_old_connections()


def inbound_controller(host: str, port: int, *, process=None) -> Controller:
    handler = ReportHandler(process=process)
    return Controller(handler, hostname=host, port=port, data_size_limit=MAX_REPORT_BYTES)
