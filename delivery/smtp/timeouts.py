"""How long the client waits at each step of an SMTP transaction: RFC 5321 §4.5.3.2's timeouts.

A client that gives up sooner than the RFC's minimum sends mail twice: a receiver that is slow to
answer the final "." (content filters, a busy queue) still accepts the message, and the client, which
took the silence for a failure, sends it again later. §4.5.3.2.6 asks for at least 10 minutes there.

| setting (environment) | default | wait for |
|---|---|---|
| DELIVERY_SMTP_TIMEOUT_GREETING | 300 | the connection and its 220 greeting (§4.5.3.2.1) |
| DELIVERY_SMTP_TIMEOUT_MAIL | 300 | the reply to MAIL (§4.5.3.2.2); also EHLO, STARTTLS, AUTH, RSET, QUIT |
| DELIVERY_SMTP_TIMEOUT_RCPT | 300 | the reply to RCPT (§4.5.3.2.3) |
| DELIVERY_SMTP_TIMEOUT_DATA_INIT | 120 | the 354 reply to DATA (§4.5.3.2.4) |
| DELIVERY_SMTP_TIMEOUT_DATA_BLOCK | 180 | each block of the content to be taken by the server (§4.5.3.2.5) |
| DELIVERY_SMTP_TIMEOUT_DATA_END | 600 | the reply to the final "." (§4.5.3.2.6) |
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

SETTINGS = {
    "greeting": ("DELIVERY_SMTP_TIMEOUT_GREETING", 300.0),
    "mail": ("DELIVERY_SMTP_TIMEOUT_MAIL", 300.0),
    "rcpt": ("DELIVERY_SMTP_TIMEOUT_RCPT", 300.0),
    "data_init": ("DELIVERY_SMTP_TIMEOUT_DATA_INIT", 120.0),
    "data_block": ("DELIVERY_SMTP_TIMEOUT_DATA_BLOCK", 180.0),
    "data_end": ("DELIVERY_SMTP_TIMEOUT_DATA_END", 600.0),
}


@dataclass(frozen=True)
class SmtpTimeouts:
    greeting: float = 300.0
    mail: float = 300.0
    rcpt: float = 300.0
    data_init: float = 120.0
    data_block: float = 180.0
    data_end: float = 600.0

    @classmethod
    def from_settings(cls) -> SmtpTimeouts:
        return cls(
            **{name: float(getattr(settings, key, default)) for name, (key, default) in SETTINGS.items()}
        )

    @classmethod
    def every(cls, seconds: float) -> SmtpTimeouts:
        """The same wait at every step (tests, benchmarks)."""
        return cls(**{name: seconds for name in SETTINGS})

    @property
    def transaction(self) -> float:
        """The longest one message can take once its connection is open: the bound a worker's
        claims and a task's time limit must allow for (delivery/tasks.py)."""
        return self.mail + self.rcpt + self.data_init + self.data_block + self.data_end

    @property
    def session(self) -> float:
        """The longest a connection can take to be ready for its first message: connection and
        greeting, then EHLO, STARTTLS, EHLO again and AUTH, each at most the command wait."""
        return self.greeting + 4 * self.mail
