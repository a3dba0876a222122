"""Loopback SMTP receivers that keep every message in the dev mailbox (a Maildir).

Each receiver stands for one kind of remote mail server: `tls` offers STARTTLS with a certificate from
the dev CA (the engine's verified-TLS path), `plain` offers no STARTTLS (the engine holds PHI for the
portal and sends a notice), `badcert` offers STARTTLS with a self-signed certificate (verification
fails), `system` takes Django's own system mail (EMAIL_HOST/EMAIL_PORT). The `mta-sts` spec is no SMTP
receiver: it serves the demo sender domain's MTA-STS policy file over HTTPS (PolicyServer).
A message is stored with its raw bytes untouched below trace headers, as a receiving MTA prepends
them: Return-Path and Delivered-To (the envelope) and X-Dev-Receiver / X-Dev-TLS (which receiver,
which TLS session).
"""

from __future__ import annotations

import http.server
import logging
import mailbox
import signal
import ssl
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aiosmtpd.smtp import SMTP, Envelope, Session

RECEIVER_HEADER = "X-Dev-Receiver"
TLS_HEADER = "X-Dev-TLS"


@dataclass(frozen=True)
class ReceiverSpec:
    kind: str  # tls | plain | badcert | system | mta-sts
    hostname: str  # the MX host name it answers as (and its certificate names)
    port: int
    cert_file: str = ""
    key_file: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def maildir_open(path: Path) -> mailbox.Maildir:
    """The Maildir at `path`, its tmp/new/cur folders made if missing (mailbox.Maildir only makes them
    when the top folder itself is new, so a pre-made or emptied folder refused every message)."""
    for sub in ("tmp", "new", "cur"):
        (Path(path) / sub).mkdir(parents=True, exist_ok=True)
    return mailbox.Maildir(str(path), factory=None, create=False)


def _tls_facts(session: Session) -> str:
    ssl_object = (session.ssl or {}).get("ssl_object") if session.ssl else None
    if ssl_object is None:
        return "none"
    cipher = ssl_object.cipher()
    return f"{ssl_object.version()} {cipher[0] if cipher else ''}".strip()


def _header_safe(value: str) -> str:
    return "".join(c for c in value if c.isprintable())[:500]


class MaildirHandler:
    """aiosmtpd handler: prepends the trace headers and adds the message to the Maildir."""

    def __init__(self, path: Path, spec: ReceiverSpec) -> None:
        self.path = Path(path)
        self.spec = spec

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        box = maildir_open(self.path)  # every time: the folders may have been removed while running
        trace = [f"Return-Path: <{_header_safe(envelope.mail_from or '')}>"]
        trace += [f"Delivered-To: {_header_safe(rcpt)}" for rcpt in envelope.rcpt_tos]
        trace.append(f"{RECEIVER_HEADER}: {self.spec.kind}; host={self.spec.hostname}; port={self.spec.port}")
        trace.append(f"{TLS_HEADER}: {_header_safe(_tls_facts(session))}")
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        box.add(("\r\n".join(trace) + "\r\n").encode("utf-8") + raw)
        return "250 2.0.0 kept in the dev mailbox"


def _context(spec: ReceiverSpec) -> ssl.SSLContext | None:
    if not spec.cert_file:
        return None
    from .ca import server_context

    return server_context(spec.cert_file, spec.key_file)


class PolicyServer:
    """HTTPS on 127.0.0.1: GET /.well-known/mta-sts.txt answers the policy (text/plain), else 404."""

    def __init__(self, spec: ReceiverSpec, policy: str) -> None:
        payload = policy.encode("ascii")
        context = _context(spec)
        if context is None:
            raise ValueError(
                f"The MTA-STS policy server answers over HTTPS: {spec.kind} needs a certificate."
            )

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host = (self.headers.get("Host") or "").split(":")[0].lower()
                found = self.path == "/.well-known/mta-sts.txt" and host == spec.hostname
                body = payload if found else b"not found"
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", spec.port), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Receiver(Protocol):
    def stop(self) -> None: ...


def start(specs: list[ReceiverSpec], maildir: Path) -> list[Receiver]:
    """Start one aiosmtpd controller per spec (threads of this process), the policy server for the
    `mta-sts` spec; returns what was started (each has stop())."""
    from aiosmtpd.controller import Controller

    from .world import mta_sts_policy_text

    logging.getLogger("mail.log").setLevel(logging.WARNING)  # it logs envelope addresses at INFO
    maildir_open(maildir)
    controllers: list[Receiver] = []
    for spec in specs:
        if spec.kind == "mta-sts":
            controllers.append(PolicyServer(spec, mta_sts_policy_text()))
            continue
        context = _context(spec)
        controller = Controller(
            MaildirHandler(maildir, spec),
            hostname="127.0.0.1",
            port=spec.port,
            server_hostname=spec.hostname,
            tls_context=context,
            require_starttls=False,
            data_size_limit=25 * 1024 * 1024,
        )
        controller.start()
        controllers.append(controller)
    return controllers


def serve(specs: list[ReceiverSpec], maildir: Path) -> None:
    """Run the receivers until SIGINT/SIGTERM (blocked first, so the server threads never take them)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    controllers = start(specs, maildir)
    for spec in specs:
        if spec.kind == "mta-sts":
            print(f"devstack: MTA-STS policy https://{spec.hostname} on 127.0.0.1:{spec.port}", flush=True)
            continue
        tls = (
            "STARTTLS, dev CA"
            if spec.kind == "tls"
            else "STARTTLS, self-signed"
            if spec.cert_file
            else "no TLS"
        )
        print(f"devstack: {spec.kind} receiver {spec.hostname} on 127.0.0.1:{spec.port} ({tls})", flush=True)
    signal.sigwait({signal.SIGINT, signal.SIGTERM})
    for controller in controllers:
        controller.stop()
