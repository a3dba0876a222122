"""SMTP PIPELINING (RFC 2920): MAIL FROM, RCPT TO and DATA in one write when the server offers it, their
replies read in order. One round trip instead of three per message; nothing is written earlier than
without it (the session already met its TLS requirement before any envelope command).

aiosmtplib reads one reply per command written and drops what arrives while a reply waits to be picked
up (its protocol's `data_received`), so a second reply arriving in the same moment as the first was
lost. `PipeliningProtocol` keeps every byte and hands buffered replies out first; a session is switched
to it only when the server offers PIPELINING (the reply pairing is otherwise the same).
"""

from __future__ import annotations

import aiosmtplib
from aiosmtplib.protocol import SMTPProtocol
from aiosmtplib.response import SMTPResponse


class PipeliningProtocol(SMTPProtocol):
    def data_received(self, data: bytes) -> None:
        if self._response_waiter is None:
            return
        self._buffer.extend(data)
        if not self._response_waiter.done():
            try:
                response = self._read_response_from_buffer()
            except aiosmtplib.SMTPResponseException as error:
                self._set_response_exception(self._response_waiter, error)
                return
            if response is not None:
                self._response_waiter.set_result(response)

    async def read_response(self, timeout: float | None = None) -> SMTPResponse:
        buffered = self._read_response_from_buffer()  # a reply that came with the one before it
        if buffered is not None:
            return buffered
        return await super().read_response(timeout=timeout)


def offers_pipelining(smtp: aiosmtplib.SMTP) -> bool:
    """Whether the session pipelines; switches its protocol on first use (after the EHLO over TLS)."""
    if not smtp.supports_extension("pipelining"):
        return False
    if type(smtp.protocol) is SMTPProtocol:
        smtp.protocol.__class__ = PipeliningProtocol  # same state, replies never dropped
    return True


async def envelope_and_data(
    smtp: aiosmtplib.SMTP, *, sender: str, recipient: str, options: list[bytes], timeout: float
) -> tuple[SMTPResponse, SMTPResponse, SMTPResponse]:
    """MAIL, RCPT and DATA in one write; the three replies. When DATA was accepted although MAIL or
    RCPT was refused, the empty message is ended at once (RFC 2920 §3.1) so the session stays usable;
    the caller sees the refusal."""
    protocol = smtp.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    mail = b" ".join([b"MAIL FROM:<" + sender.encode() + b">", *options])
    protocol.write(mail + b"\r\nRCPT TO:<" + recipient.encode() + b">\r\nDATA\r\n")
    replies = (
        await protocol.read_response(timeout=timeout),
        await protocol.read_response(timeout=timeout),
        await protocol.read_response(timeout=timeout),
    )
    if replies[2].code == 354 and (replies[0].code != 250 or replies[1].code not in (250, 251)):
        protocol.write(b".\r\n")
        await protocol.read_response(timeout=timeout)
    return replies
