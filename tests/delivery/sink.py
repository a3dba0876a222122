"""A recording SMTP sink with STARTTLS (certificate from a test CA) for the chaos tests and the
delivery benchmarks, runnable as its own process:

    python -m tests.delivery.sink --port 2525 --cert c.pem --key k.pem --log ids.log [--delay 0.05]

Every accepted message appends "<Message-ID> <unix time>" to the log (line-buffered), so another
process can count deliveries, find duplicates and measure hand-off times. Also: the environment
(CA file and DNS zone file) that points real workers (Celery or bench processes) at the sink.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

MESSAGE_ID = re.compile(rb"(?im)^Message-ID:\s*(<[^>\r\n]+>)")


# A hostile receiver (RELIABILITY R4), per transaction: drops the connection after accepting (the
# client never hears the 250), answers 4xx or 5xx, or stays silent for `stall` seconds then accepts.
# Each mood also comes once among the first transactions (FIRST_MOODS, by transaction number), so a
# small run (make test) meets every one of them, not only those its draws happen to pick.
HOSTILE = (("drop", 0.01), ("tempfail", 0.05), ("reject", 0.02), ("stall", 0.01))
FIRST_MOODS = {3: "stall", 5: "drop", 7: "tempfail", 9: "reject"}


class RecordingHandler:
    def __init__(
        self,
        log_path: str,
        delay: float = 0.0,
        hostile: int | None = None,
        stall: float = 0.0,
        pipelining: bool = False,
    ):
        self.log = open(log_path, "a", buffering=1)
        self.sessions = open(log_path + ".sessions", "a", buffering=1)
        self.delay = delay
        self.random = random.Random(hostile) if hostile is not None else None
        self.stall = stall
        self.pipelining = pipelining
        self.transactions = 0

    def _mood(self) -> str:
        if self.random is None:
            return ""
        self.transactions += 1
        draw = self.random.random()
        if self.transactions in FIRST_MOODS:
            return FIRST_MOODS[self.transactions]
        for mood, share in HOSTILE:
            if draw < share:
                return mood
            draw -= share
        return ""

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        """Offers PIPELINING (RFC 2920) when asked to, as Postfix does (aiosmtpd reads commands from a
        stream, so pipelined commands work; it only does not say so), and counts the sessions that
        reached TLS: one line per EHLO after STARTTLS, i.e. per TLS handshake."""
        session.host_name = hostname
        if session.ssl is not None:
            self.sessions.write("tls\n")
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_DATA(self, server, session, envelope):
        mood = self._mood()
        if mood == "tempfail":
            return "451 4.3.0 try again later"
        if mood == "reject":
            return "550 5.1.1 mailbox unavailable"
        if self.delay or mood == "stall":
            await asyncio.sleep(self.stall if mood == "stall" else self.delay)
        found = MESSAGE_ID.search(envelope.original_content or b"")
        message_id = found.group(1).decode() if found else "<none>"
        self.log.write(f"{message_id} {time.time():.6f}\n")
        if mood == "drop":  # accepted, but the 250 never reaches the client (RFC 1047)
            server.transport.abort()
        return "250 2.0.0 queued"


def serve(
    port: int,
    cert: str,
    key: str,
    log: str,
    delay: float,
    hostname: str,
    hostile=None,
    stall=0.0,
    pipelining: bool = False,
) -> None:
    import logging

    from aiosmtpd.controller import Controller

    from healthmail.devmail.ca import server_context

    logging.getLogger("mail.log").setLevel(logging.WARNING)  # it logs addresses at INFO
    controller = Controller(
        RecordingHandler(log, delay, hostile, stall, pipelining),
        hostname="127.0.0.1",
        port=port,
        server_hostname=hostname,
        tls_context=server_context(cert, key),
        require_starttls=False,
        data_size_limit=10 * 1024 * 1024,
    )
    controller.start()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    print("ready", flush=True)
    while not stop:
        time.sleep(0.2)
    controller.stop()


class SinkProcess:
    """The sink in a child process (its CPU is not the engine's); `.ids()` reads what it accepted."""

    def __init__(
        self,
        directory: Path,
        *,
        delay: float = 0.0,
        hostname: str = "mx.sink.test",
        hostile: int | None = None,
        stall: float = 0.0,
        pipelining: bool = False,
    ):
        from tests.delivery.servers import TestCA, free_port

        self.ca = TestCA(directory, "Sink Test CA")
        self.cert, self.key, _ = self.ca.issue(hostname)
        self.hostname = hostname
        self.port = free_port()
        self.log = str(directory / f"sink-{self.port}.log")
        Path(self.log).write_text("")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.delivery.sink", "--port", str(self.port), "--cert", self.cert,
             "--key", self.key, "--log", self.log, "--delay", str(delay), "--hostname", hostname,
             *(["--hostile", str(hostile), "--stall", str(stall)] if hostile is not None else []),
             *(["--pipelining"] if pipelining else [])],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert self.process.stdout.readline().strip() == "ready"

    @property
    def ca_file(self) -> str:
        return self.ca.ca_file

    def records(self) -> list[tuple[str, float]]:
        rows = []
        for line in Path(self.log).read_text().splitlines():
            message_id, _, at = line.rpartition(" ")
            rows.append((message_id, float(at)))
        return rows

    def tls_sessions(self) -> int:
        """TLS handshakes the sink has completed so far."""
        return len(Path(self.log + ".sessions").read_text().splitlines())

    def ids(self) -> Counter:
        return Counter(message_id for message_id, _ in self.records())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)

    def environment(self, domain: str) -> dict[str, str]:
        """What a worker process needs (with DJANGO_SETTINGS_MODULE=tests.delivery.sink_settings) to
        send here: the CA, and a DNS zone file (delivery/tls/zone.py) with `domain`'s MX on the sink."""
        zone = Path(self.log).with_suffix(".zone.json")
        # Written aside and renamed: the benchmark's workers each call this as they start, and one
        # reading the file while another rewrote it in place found it empty (a worker died so).
        aside = zone.with_suffix(f".{os.getpid()}.tmp")
        aside.write_text(
            json.dumps(
                {
                    "mx": {domain: [{"host": self.hostname, "port": self.port}]},
                    "a": {self.hostname: ["127.0.0.1"]},
                }
            )
        )
        os.replace(aside, zone)
        return {
            "DELIVERY_CA_FILE": self.ca_file,
            "DELIVERY_RESOLVER": "static",
            "DELIVERY_DNS_ZONE_FILE": str(zone),
        }


class CeleryWorkers:
    """Real Celery workers (prefork) in their own process groups, pointed at the sink by `env`
    (DJANGO_SETTINGS_MODULE=tests.delivery.sink_settings and the sink's environment)."""

    def __init__(self, env: dict[str, str], *, database_url: str, queues: str = "transactional,marketing",
                 concurrency: int = 2):  # fmt: skip
        self.env = {**env, "DATABASE_URL": database_url}
        self.queues, self.concurrency = queues, concurrency
        self.processes: list[subprocess.Popen] = []
        self.started = 0
        self.restarted = 0
        self._replaced: set[subprocess.Popen] = set()

    def start(self) -> None:
        self.started += 1
        command = [
            sys.executable, "-m", "celery", "-A", "healthmail", "worker", "-Q", self.queues,
            "-n", f"sink{self.started}-{uuid.uuid4().hex[:6]}@%h", "--concurrency", str(self.concurrency),
            "--pool", "prefork", "-I", "tests.delivery.synthetic_renderer", "--loglevel", "ERROR",
            "--without-heartbeat", "--without-mingle", "--without-gossip",
        ]  # fmt: skip
        self.processes.append(subprocess.Popen(command, env=self.env, start_new_session=True))

    def supervise(self) -> int:
        """Start a new worker for each that exited, as the process supervisor does in production
        (docker-compose's `restart: unless-stopped`), and count it: the outage chaos requires none
        (stock kombu's Redis transport can raise while giving back an unacknowledged task on a lost
        connection and exit the worker; healthmail/broker.py patches it)."""
        exited = [p for p in self.processes if p.poll() is not None and p not in self._replaced]
        for process in exited:
            self._replaced.add(process)
            self.restarted += 1
            self.start()
        return len(exited)

    def alive(self) -> list[subprocess.Popen]:
        return [p for p in self.processes if p.poll() is None]

    @staticmethod
    def children(process: subprocess.Popen) -> list[int]:
        try:
            return [
                int(pid)
                for pid in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
            ]
        except OSError:
            return []

    def replace(self, process: subprocess.Popen) -> None:
        """kill -9 a whole worker (parent and pool) and start a new one (a kill, not an exit for
        supervise() to count)."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        self._replaced.add(process)
        self.start()

    def kill(self, rng: random.Random) -> str:
        """kill -9 a pool child (the parent forks a new one) or a whole worker (a new one starts)."""
        process = rng.choice(self.alive())
        children = self.children(process)
        if children and rng.random() < 0.6:
            os.kill(rng.choice(children), signal.SIGKILL)
            return "child"
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        self._replaced.add(process)  # replaced here, not by supervise()
        self.start()
        return "worker"

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        for process in self.processes:  # pool children orphaned by a killed parent share its group
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--hostname", default="mx.sink.test")
    parser.add_argument("--hostile", type=int, default=None, help="seed: drop, 4xx, 5xx and stall some")
    parser.add_argument("--stall", type=float, default=0.0, help="seconds a stalled transaction waits")
    parser.add_argument("--pipelining", action="store_true")
    args = parser.parse_args()
    serve(
        args.port,
        args.cert,
        args.key,
        args.log,
        args.delay,
        args.hostname,
        args.hostile,
        args.stall,
        args.pipelining,
    )
