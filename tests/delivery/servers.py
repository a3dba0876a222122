"""A test kit of real TLS/SMTP/HTTPS servers on loopback, and the CA that signs their certificates.

Every SMTP server sits behind a `WireTap`: a TCP forwarder that records every byte the client puts on
the socket (what an eavesdropper sees), counts connections and notes the address each came from (it
dials the server from that same address, so aiosmtpd sees the real peer too). The aiosmtpd side also
records what it received after TLS decryption, and from which peer. Tests grep both for synthetic PHI.
"""

from __future__ import annotations

import asyncio
import http.server
import socket
import socketserver
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from delivery.tls.resolver import Answer, MxHost, StaticResolver
from healthmail.devmail.ca import CertificateAuthority, server_context

LOOPBACK = "127.0.0.1"


# --- certificates ----------------------------------------------------------------------------------


class TestCA(CertificateAuthority):
    """A throw-away CA (healthmail/devmail/ca.py, shared with the dev mail world of `make run`)."""

    __test__ = False  # not a pytest test class


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


# --- the wire tap ----------------------------------------------------------------------------------


class WireTap:
    """Forwards loopback TCP to `upstream_port`, recording client->server bytes, connections and the
    client address of each (127.0.0.0/8 is all loopback on Linux: a client may bind 127.0.0.2)."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.lock = threading.Lock()
        self.wire = bytearray()
        self.connections = 0
        self.peers: list[str] = []
        tap = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                peer = self.client_address[0]
                with tap.lock:
                    tap.connections += 1
                    tap.peers.append(peer)
                upstream = socket.create_connection((LOOPBACK, tap.upstream_port), source_address=(peer, 0))
                back = threading.Thread(target=tap._pump, args=(upstream, self.request, False), daemon=True)
                back.start()
                tap._pump(self.request, upstream, True)
                back.join(timeout=5)

        self.server = socketserver.ThreadingTCPServer((LOOPBACK, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, record: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if record:
                    with self.lock:
                        self.wire += chunk
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def reset(self) -> None:
        with self.lock:
            self.wire.clear()
            self.connections = 0
            self.peers.clear()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- SMTP servers ----------------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    mail_options: list[str]
    peer: str = ""  # the client's IP address


@dataclass
class Behaviour:
    tempfail_first: int = 0  # answer `tempfail_reply` to the first N DATA transactions, then accept
    tempfail_reply: str = "451 4.3.0 try again later"
    reject: bool = False  # answer `reject_reply` to every RCPT
    reject_reply: str = "550 5.1.1 mailbox unavailable"
    drop_after_data: bool = False  # close the connection after the final "." without a reply
    advertise_requiretls: bool = False
    advertise_pipelining: bool = False  # RFC 2920, as Postfix offers it
    # Seconds to stay silent before answering a step: "greeting", "mail", "rcpt", "data" (before the
    # 354) or "end" (before the reply to the final "."), for recipients containing `stall_only`.
    stall: dict[str, float] = field(default_factory=dict)
    stall_only: str = ""

    async def pause(self, step: str, recipients=()) -> None:
        seconds = self.stall.get(step, 0)
        if seconds and (not self.stall_only or any(self.stall_only in r for r in recipients)):
            await asyncio.sleep(seconds)


class CapturingHandler:
    def __init__(self, behaviour: Behaviour):
        self.behaviour = behaviour
        self.messages: list[Received] = []
        self.data_transactions = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.behaviour.advertise_requiretls:
            responses.insert(-1, "250-REQUIRETLS")
        if self.behaviour.advertise_pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        await self.behaviour.pause("mail")
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        await self.behaviour.pause("rcpt", [address])
        if self.behaviour.reject:
            return self.behaviour.reject_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        await self.behaviour.pause("end", envelope.rcpt_tos)
        self.data_transactions += 1
        if self.data_transactions <= self.behaviour.tempfail_first:
            return self.behaviour.tempfail_reply
        received = Received(
            envelope.mail_from,
            list(envelope.rcpt_tos),
            envelope.original_content or b"",
            list(envelope.mail_options),
            peer=session.peer[0] if session.peer else "",
        )
        self.messages.append(received)
        if self.behaviour.drop_after_data:
            server.transport.abort()
            return "250 OK (never seen: the connection is gone)"
        return "250 2.0.0 queued"


class CapturingSMTP(SMTP):
    """Records the application bytes (after TLS) and accepts the REQUIRETLS MAIL parameter."""

    def __init__(self, *args, sink: bytearray, reads: list[bytes], **kwargs):
        super().__init__(*args, **kwargs)
        self._sink, self._reads = sink, reads

    def data_received(self, data: bytes) -> None:
        self._sink += data
        self._reads.append(data)
        super().data_received(data)

    async def _handle_client(self):
        await self.event_handler.behaviour.pause("greeting")
        await super()._handle_client()

    async def smtp_DATA(self, arg):
        await self.event_handler.behaviour.pause("data", self.envelope.rcpt_tos)
        await super().smtp_DATA(arg)

    async def smtp_MAIL(self, arg):
        if arg and arg.upper().endswith(" REQUIRETLS"):
            arg = arg[: -len(" REQUIRETLS")]
            await super().smtp_MAIL(arg)
            if self.envelope is not None and self.envelope.mail_from:
                self.envelope.mail_options.append("REQUIRETLS")
            return
        await super().smtp_MAIL(arg)


class _Controller(Controller):
    def __init__(self, *args, sink: bytearray, reads: list[bytes], **kwargs):
        self._sink, self._reads = sink, reads
        super().__init__(*args, **kwargs)

    def factory(self):
        return CapturingSMTP(self.handler, sink=self._sink, reads=self._reads, **self.SMTP_kwargs)


@dataclass
class SmtpServer:
    name: str  # the MX host name, e.g. mx.good.test
    behaviour: Behaviour
    tls_context: ssl.SSLContext | None
    auth: tuple[str, str] | None = None
    received_bytes: bytearray = field(default_factory=bytearray)
    reads: list[bytes] = field(default_factory=list)  # each read of the server (after TLS), in order

    def start(self) -> SmtpServer:
        self.handler = CapturingHandler(self.behaviour)
        kwargs = {}
        if self.auth is not None:
            user, password = self.auth

            def authenticator(server, session, envelope, mechanism, auth_data):
                from aiosmtpd.smtp import AuthResult

                ok = auth_data.login == user.encode() and auth_data.password == password.encode()
                return AuthResult(success=ok, handled=False)

            kwargs.update(authenticator=authenticator, auth_require_tls=True, auth_required=True)
        self.controller = _Controller(
            self.handler,
            hostname=LOOPBACK,
            port=free_port(),
            server_hostname=self.name,
            tls_context=self.tls_context,
            require_starttls=False,
            sink=self.received_bytes,
            reads=self.reads,
            **kwargs,
        )
        self.controller.start()
        self.tap = WireTap(self.controller.port)
        return self

    @property
    def port(self) -> int:
        return self.tap.port

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    @property
    def wire(self) -> bytes:
        with self.tap.lock:
            return bytes(self.tap.wire)

    @property
    def connections(self) -> int:
        return self.tap.connections

    @property
    def peers(self) -> list[str]:
        """The client address of every connection, in order (probes included)."""
        with self.tap.lock:
            return list(self.tap.peers)

    def saw(self, needle: bytes) -> bool:
        """Whether `needle` crossed the wire in the clear or reached the server after decryption."""
        return needle in self.wire or needle in bytes(self.received_bytes)

    def mx(self, preference: int = 10) -> MxHost:
        return MxHost(preference, self.name, port=self.port, address=LOOPBACK)

    def reset(self) -> None:
        self.tap.reset()
        self.received_bytes.clear()
        self.reads.clear()
        self.handler.messages.clear()
        self.handler.data_transactions = 0
        self.behaviour.stall.clear()
        self.behaviour.stall_only = ""

    def stop(self) -> None:
        self.controller.stop()
        self.tap.stop()


# --- MTA-STS over HTTPS ----------------------------------------------------------------------------


class PolicyServer:
    """Serves /.well-known/mta-sts.txt per Host header; `policies[host] = (status, body)`."""

    def __init__(self, cert_file: str, key_file: str):
        self.policies: dict[str, tuple[int, str]] = {}
        self.content_types: dict[str, str] = {}  # per host; text/plain unless set
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                host = (self.headers.get("Host") or "").split(":")[0].lower()
                server.requests.append(host)
                status, body = server.policies.get(host, (404, "not found"))
                if self.path != "/.well-known/mta-sts.txt":
                    status, body = 404, "not found"
                payload = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", server.content_types.get(host, "text/plain"))
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.httpd.socket = server_context(cert_file, key_file).wrap_socket(
            self.httpd.socket, server_side=True
        )
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def publish(self, domain: str, *, mode: str, mx: list[str], max_age: int = 86400) -> None:
        lines = ["version: STSv1", f"mode: {mode}", *[f"mx: {p}" for p in mx], f"max_age: {max_age}"]
        self.policies[f"mta-sts.{domain}"] = (200, "\r\n".join(lines) + "\r\n")

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --- the whole kit ---------------------------------------------------------------------------------

POLICY_DOMAINS = ("good.test", "testing.test", "enforce.test", "broken.test")


class SmtpKit:
    """CA + one server per behaviour; domain `<kind>.test` has its MX `mx.<kind>.test` on the server."""

    def __init__(self, directory: Path):
        self.ca = TestCA(directory)
        self.other_ca = TestCA(directory, "Untrusted Other CA")

        def good(kind: str, behaviour: Behaviour | None = None, **kwargs) -> SmtpServer:
            cert, key, _ = self.ca.issue(f"mx.{kind}.test")
            return SmtpServer(
                f"mx.{kind}.test", behaviour or Behaviour(), server_context(cert, key), **kwargs
            )

        untrusted_cert, untrusted_key, _ = self.other_ca.issue("mx.untrusted.test")
        selfsigned_cert, selfsigned_key, _ = self.ca.issue("mx.selfsigned.test", self_signed=True)
        expired_cert, expired_key, _ = self.ca.issue("mx.expired.test", expired=True)
        old_cert, old_key, _ = self.ca.issue("mx.oldtls.test")
        self.servers: dict[str, SmtpServer] = {
            "good": good("good", Behaviour(advertise_requiretls=True)),
            "untrusted": SmtpServer(
                "mx.untrusted.test", Behaviour(), server_context(untrusted_cert, untrusted_key)
            ),
            "selfsigned": SmtpServer(
                "mx.selfsigned.test", Behaviour(), server_context(selfsigned_cert, selfsigned_key)
            ),
            "expired": SmtpServer("mx.expired.test", Behaviour(), server_context(expired_cert, expired_key)),
            "plain": SmtpServer("mx.plain.test", Behaviour(), None),
            "oldtls": SmtpServer(
                "mx.oldtls.test", Behaviour(), server_context(old_cert, old_key, old_tls_only=True)
            ),
            "tempfail": good("tempfail", Behaviour(tempfail_first=1)),
            "reject": good("reject", Behaviour(reject=True)),
            "dmarc": good(
                "dmarc",
                Behaviour(
                    reject=True,
                    reject_reply="550 5.7.26 Unauthenticated email from mail.clinic-a.test is not accepted "
                    "due to domain's DMARC policy",
                ),
            ),
            "full": good("full", Behaviour(reject=True, reject_reply="552 5.2.2 mailbox full")),
            "dmarctemp": good(
                "dmarctemp",
                Behaviour(
                    tempfail_first=10**6,
                    tempfail_reply="450 4.7.26 Unauthenticated email is not accepted, try again later",
                ),
            ),
            "drop": good("drop", Behaviour(drop_after_data=True)),
            "relay": good("relay", auth=("relay-user", "relay-secret")),
            "slow": good("slow"),  # tests set behaviour.stall (a receiver silent at some step)
            "pipelining": good("pipelining", Behaviour(advertise_pipelining=True)),
            "pipereject": good("pipereject", Behaviour(advertise_pipelining=True, reject=True)),
        }
        for server in self.servers.values():
            server.start()
        policy_cert, policy_key, _ = self.ca.issue(*[f"mta-sts.{d}" for d in POLICY_DOMAINS])
        self.policy_server = PolicyServer(policy_cert, policy_key)

    def __getitem__(self, kind: str) -> SmtpServer:
        return self.servers[kind]

    @property
    def ca_file(self) -> str:
        return self.ca.ca_file

    def connect_to(self) -> dict[str, tuple[str, int]]:
        return {f"mta-sts.{d}": (LOOPBACK, self.policy_server.port) for d in POLICY_DOMAINS}

    def resolver(self, *, mx=None, txt=None, tlsa=None) -> StaticResolver:
        """MX for every `<kind>.test` plus overrides (values may be lists or Answers)."""
        mx_map: dict = {f"{kind}.test": Answer((server.mx(),)) for kind, server in self.servers.items()}
        mx_map.update(mx or {})
        return StaticResolver(mx_map=mx_map, txt_map=dict(txt or {}), tlsa_map=dict(tlsa or {}))

    def reset(self) -> None:
        for server in self.servers.values():
            server.reset()
        self.policy_server.policies.clear()
        self.policy_server.content_types.clear()
        self.policy_server.requests.clear()

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.policy_server.stop()
