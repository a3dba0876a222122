"""The floor of the delivery benchmark: the least any compliant sender does per message, on the same
cores, to the same sink, in the same run as the engine.

Per message: render the same synthetic content, build the RFC 5322 message with the same headers
(`compose.build_simple`), DKIM-sign it with the same RSA-2048 key (the bench tenant's active key),
check it is safe for the wire, send it over verified STARTTLS (the test CA, the MX host name) on
connections opened once and reused for the whole run (PIPELINING when the sink offers it), and write
one outcome row per message to PostgreSQL, a batch per INSERT. No claim, no consent gate, no policy
lookup, no journal, no hand-off mark: what the engine does beyond this is its bookkeeping.

Also the bare client (information only): pre-built, pre-signed messages over 20 connections, no
PostgreSQL at all.
"""

from __future__ import annotations

import asyncio
import datetime
import multiprocessing
import os
import time
import uuid
from email.utils import format_datetime

BATCH = 200  # as the engine's claim batch
CONNECTIONS_PER_PROCESS = 5
BARE_CONNECTIONS = 20
# One outcome row per message, as a sender's record of what the receiver said (no index but the key).
_CREATE = """
CREATE TABLE IF NOT EXISTS bench_floor_outcome (
    message_id text PRIMARY KEY, recipient text NOT NULL, code integer NOT NULL, reply text NOT NULL,
    tls_version text NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now())
"""
_INSERT = """
INSERT INTO bench_floor_outcome (message_id, recipient, code, reply, tls_version)
SELECT * FROM unnest(%s::text[], %s::text[], %s::int[], %s::text[], %s::text[])
"""
_COUNT = "SELECT count(*) FROM bench_floor_outcome WHERE message_id LIKE %s AND code = 250"


def outcomes_table_create(database_url: str) -> None:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(_CREATE)


def outcomes_count(database_url: str, prefix: str) -> int:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as connection:
        row = connection.execute(_COUNT, [f"<{prefix}%"]).fetchone()
    return int(row[0])


class FloorConnection:
    """One verified STARTTLS session, kept for every message this process sends on it."""

    def __init__(self, smtp, pipelining: bool):
        self.smtp, self.pipelining = smtp, pipelining

    @classmethod
    async def open(cls, sink, context) -> FloorConnection:
        import aiosmtplib

        from delivery.smtp.pipelining import offers_pipelining

        smtp = aiosmtplib.SMTP(
            hostname="127.0.0.1", port=sink.port, start_tls=False, use_tls=False, local_hostname="floor.test"
        )
        await smtp.connect()
        await smtp.ehlo()
        await smtp.starttls(server_hostname=sink.hostname, tls_context=context)  # verified: CA + host name
        await smtp.ehlo()
        return cls(smtp, offers_pipelining(smtp))

    async def send(self, sender: str, recipient: str, content: bytes) -> tuple[int, str]:
        from delivery.smtp.message import dot_stuff
        from delivery.smtp.pipelining import envelope_and_data

        protocol = self.smtp.protocol
        if self.pipelining:
            replies = await envelope_and_data(
                self.smtp, sender=sender, recipient=recipient, options=[], timeout=30
            )
        else:
            replies = []
            for command in (f"MAIL FROM:<{sender}>", f"RCPT TO:<{recipient}>", "DATA"):
                protocol.write(command.encode() + b"\r\n")
                replies.append(await protocol.read_response(timeout=30))
                if replies[-1].code >= 400:
                    break
        if [reply.code for reply in replies] != [250, 250, 354]:
            await self.smtp.rset()
            return replies[-1].code, replies[-1].message
        protocol.write(dot_stuff(content))
        reply = await protocol.read_response(timeout=30)
        return reply.code, reply.message

    def tls_version(self) -> str:
        return self.smtp.get_transport_info("ssl_object").version() or ""


def _messages(indices, *, prefix, key, content_for):
    """Built and signed, as the engine's compose does (same header set, same key)."""
    from delivery import dkim
    from delivery.engine.compose import build_simple
    from delivery.smtp.message import Prepared

    now = format_datetime(datetime.datetime.now(datetime.UTC))
    built = []
    for index in indices:
        recipient = f"synthetic.patient.{index:06d}@sink.test"
        content = content_for(index)
        message_id = f"<{prefix}{index}.{uuid.uuid4().hex[:8]}@{key.domain}>"
        headers = [
            ("From", f"Bench Clinic <news@{key.domain}>"),
            ("To", recipient),
            ("Subject", content.subject),
            ("Date", now),
            ("Message-ID", message_id),
            ("List-Unsubscribe", f"<https://healthmail.test/p/unsubscribe/{uuid.uuid4().hex * 3}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ("Feedback-ID", f"floor:synthetic:{key.domain[:12]}:hm-marketing"),
        ]
        signed = dkim.sign_message(build_simple(headers, text=content.text, html=content.html), key)
        sender = f"bounce-m+{uuid.uuid4().hex}@{key.domain}"
        built.append(
            (message_id, Prepared(key=message_id, sender=sender, recipient=recipient, content=signed))
        )
    return built


def floor_process(indices, prefix, key, sink, database_url, results) -> None:
    import psycopg

    from delivery.tls.contexts import verified_context
    from tests.delivery.synthetic_renderer import render

    def content_for(index):
        return render(type("M", (), {"contact_id": uuid.UUID(int=index)})())

    async def main():
        context = verified_context(sink.ca_file)
        connections = [await FloorConnection.open(sink, context) for _ in range(CONNECTIONS_PER_PROCESS)]
        with psycopg.connect(database_url, autocommit=True) as database:
            for start in range(0, len(indices), BATCH):
                batch = _messages(
                    indices[start : start + BATCH], prefix=prefix, key=key, content_for=content_for
                )

                async def over(connection, part):
                    rows = []
                    for message_id, prepared in part:
                        code, reply = await connection.send(
                            prepared.sender, prepared.recipient, prepared.content
                        )
                        rows.append(
                            (message_id, prepared.recipient, code, reply[:200], connection.tls_version())
                        )
                    return rows

                parts = await asyncio.gather(
                    *(over(c, batch[i :: len(connections)]) for i, c in enumerate(connections))
                )
                rows = [row for part in parts for row in part]
                database.execute(
                    _INSERT,
                    [list(column) for column in zip(*rows, strict=True)],
                )
        for connection in connections:
            await connection.smtp.quit()

    asyncio.run(main())
    results.put({"cpu": time.process_time(), "finished_at": time.time()})


def floor_run(count: int, *, processes: int, key, sink, database_url: str) -> dict:
    """`count` messages over `processes` processes (the engine's worker count)."""
    prefix = f"floor{uuid.uuid4().hex[:6]}."
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    shares = [list(range(count))[i::processes] for i in range(processes)]
    started = time.time()
    children = [
        context.Process(target=floor_process, args=(share, prefix, key, sink, database_url, results))
        for share in shares
    ]
    for child in children:
        child.start()
    reports = [results.get(timeout=600) for _ in children]
    for child in children:
        child.join(timeout=60)
        if child.exitcode != 0:
            raise RuntimeError(
                f"a floor process failed (exit code {child.exitcode}): see its traceback above"
            )
    seconds = max(r["finished_at"] for r in reports) - started
    return {
        "seconds": seconds,
        "cpu_seconds": sum(r["cpu"] for r in reports),
        "recorded": outcomes_count(database_url, prefix),
        "prefix": prefix,
    }


def bare_run(count: int, sink, sample: bytes) -> tuple[float, float]:
    """Pre-built messages of the same size over 20 verified STARTTLS connections: no DKIM per message,
    no PostgreSQL (the old ceiling, kept for information)."""
    import aiosmtplib

    from delivery.tls.contexts import verified_context

    context = verified_context(sink.ca_file)
    messages = [
        sample.replace(b"Message-ID: <", f"Message-ID: <bare{index}.".encode(), 1) for index in range(count)
    ]

    async def connection(batch):
        smtp = aiosmtplib.SMTP(
            hostname="127.0.0.1", port=sink.port, start_tls=False, use_tls=False, local_hostname="bare.test"
        )
        await smtp.connect()
        await smtp.starttls(server_hostname=sink.hostname, tls_context=context)
        for message in batch:
            await smtp.sendmail("bounce@sender.test", ["patient@sink.test"], message)
        await smtp.quit()

    async def main():
        await asyncio.gather(*(connection(messages[i::BARE_CONNECTIONS]) for i in range(BARE_CONNECTIONS)))

    started, cpu = time.perf_counter(), time.process_time()
    asyncio.run(main())
    return time.perf_counter() - started, time.process_time() - cpu


def process_tree_cpu(pid: int) -> float:
    """CPU of a server and all its children, live and reaped (PostgreSQL: the postmaster and its
    backends, which come and go with connections): /proc/PID/stat utime+stime+cutime+cstime plus the
    utime+stime of every live child."""
    from pathlib import Path

    tick = os.sysconf("SC_CLK_TCK")

    def fields(p):
        return Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()

    own = fields(pid)
    total = sum(int(own[i]) for i in (11, 12, 13, 14))
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            child = fields(entry.name)
        except OSError:
            continue
        if int(child[1]) == pid:
            total += int(child[11]) + int(child[12])
    return total / tick


def wal_bytes() -> int:
    """PostgreSQL's WAL position (the whole server's: nothing else writes to the bench's server)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
        return int(cursor.fetchone()[0])
