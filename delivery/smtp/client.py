"""`deliver_batch()`: many messages to one recipient domain, one connection per MX host tried, one
outcome per recipient.

    outcomes = await deliver_batch([MxRoute.from_mx(mx) for mx in policy.mx], prepared, policy)

A message marked `phi`, or any message to a domain whose policy is enforced (DANE, MTA-STS enforce,
relay), travels only over verified TLS >= 1.2; when the connection cannot give that, the message is
REFUSED with the reason and nothing of it is written to the socket. Messages without PHI to other
domains may use opportunistic TLS or, failing that, plaintext.

MX hosts are tried in preference order (RFC 5321 §5.1): messages the most preferred host could not
take (unreachable, a 4xx/5xx greeting, or no TLS meeting the policy) go to the next host, which must
meet the same policy on its own: its MTA-STS pattern, its TLSA records, its certificate. A refusal is
never answered by a weaker connection, here or at any later host.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

import aiosmtplib
from aiosmtplib.protocol import SMTPProtocol

from delivery.tls.policy import Source, TlsPolicy

from .connection import (
    ConnectFailed,
    MxRoute,
    Requirement,
    TlsRefused,
    TransportSettings,
    close_session,
    open_session,
)
from .message import Prepared, dot_stuff
from .outcomes import Outcome, Status, TlsEvidence, status_for_code
from .pipelining import envelope_and_data, offers_pipelining
from .pool import StreamSessions
from .throttle import MxConcurrency, Throttle
from .timeouts import SmtpTimeouts

MAX_REPLY = 200
BLOCK = 64 * 1024  # content is written in blocks; each must be taken within the data-block timeout


def _reply(text: str) -> str:
    return " ".join(text.split())[:MAX_REPLY]


def _needs_verified(message: Prepared, policy: TlsPolicy) -> bool:
    return message.phi or policy.enforced


def _requirement(route: MxRoute, policy: TlsPolicy) -> tuple[Requirement, tuple]:
    if policy.source == Source.DANE and route.host in policy.tlsa:
        return Requirement.DANE, policy.tlsa[route.host]
    return Requirement.VERIFIED, ()


class _Session:
    """One connection's sequential transactions; remembers when the connection is gone."""

    def __init__(
        self, smtp: aiosmtplib.SMTP, evidence: TlsEvidence, warnings: tuple[str, ...], timeouts: SmtpTimeouts
    ):
        self.smtp = smtp
        self.evidence = evidence
        self.warnings = warnings
        self.timeouts = timeouts
        self.lost = False

    def outcome(self, message: Prepared, status: Status, **kwargs) -> Outcome:
        return Outcome(message.key, status, evidence=self.evidence, warnings=self.warnings, **kwargs)

    async def _reset(self) -> None:
        try:
            await self.smtp.rset()
        except (aiosmtplib.SMTPException, OSError):
            self.lost = True
            self.smtp.close()

    async def send(self, message: Prepared) -> Outcome:
        if self.lost:
            return self.outcome(message, Status.DEFERRED, reason="connection lost before this message")
        options = []
        if message.phi and self.evidence.verified and self.smtp.supports_extension("requiretls"):
            options.append("REQUIRETLS")  # RFC 8689: the next hops must keep TLS too
        try:
            if offers_pipelining(self.smtp):
                started = await self._pipelined(message, options)
            else:
                await self._envelope(message, options)
                started = await self.smtp.execute_command(b"DATA", timeout=self.timeouts.data_init)
        except aiosmtplib.SMTPResponseException as refused:
            await self._reset()
            return self.outcome(
                message, status_for_code(refused.code), code=refused.code, reply=_reply(refused.message)
            )
        except (aiosmtplib.SMTPException, OSError) as error:
            self.lost = True
            self.smtp.close()
            return self.outcome(
                message, Status.DEFERRED, reason=f"connection lost: {error.__class__.__name__}"
            )
        if started.code != 354:
            await self._reset()
            return self.outcome(
                message, status_for_code(started.code), code=started.code, reply=_reply(started.message)
            )
        return await self._content(message, options)

    async def _envelope(self, message: Prepared, options: list[str]) -> None:
        """MAIL FROM and RCPT TO, as aiosmtplib's mail() and rcpt() send them, without re-parsing the
        addresses (email.utils.parseaddr cost a tenth of the engine's CPU): Prepared holds validated
        ASCII addr-specs, which cannot carry spaces, brackets, quotes or line breaks."""
        extra = [option.encode("ascii") for option in options]
        reply = await self.smtp.execute_command(
            b"MAIL", b"FROM:<" + message.sender.encode() + b">", *extra, timeout=self.timeouts.mail
        )
        if reply.code != 250:
            raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, message.sender)
        reply = await self.smtp.execute_command(
            b"RCPT", b"TO:<" + message.recipient.encode() + b">", timeout=self.timeouts.rcpt
        )
        if reply.code not in (250, 251):
            raise aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, message.recipient)

    def _protocol(self) -> SMTPProtocol:
        """The connection's protocol; gone once the connection closed (as aiosmtplib itself says)."""
        protocol = self.smtp.protocol
        if protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("Disconnected from the SMTP server")
        return protocol

    async def _write_content(self, data: bytes) -> None:
        """The content (ending with the final "."), a block at a time: a receiver that stops reading
        for longer than the data-block timeout (§4.5.3.2.5) breaks the transaction."""
        protocol = self._protocol()
        protocol._response_pending = True  # the reply may arrive while we wait for a block to drain
        for start in range(0, len(data), BLOCK):
            protocol.write(data[start : start + BLOCK])
            if protocol._paused or protocol._connection_lost:
                # Only then does the drain wait (or raise): a block the transport took at once costs
                # no task and no timer (wait_for wraps the coroutine in a task, once per message).
                await asyncio.wait_for(protocol._drain_helper(), self.timeouts.data_block)

    async def _pipelined(self, message: Prepared, options: list[str]):
        """RFC 2920: the envelope and DATA in one write; the DATA reply, or the first refusal raised."""
        mail, rcpt, data = await envelope_and_data(
            self.smtp,
            sender=message.sender,
            recipient=message.recipient,
            options=[option.encode("ascii") for option in options],
            timeout=self.timeouts.mail,  # each reply of the pipelined group: MAIL, RCPT (5 min), DATA
        )
        if mail.code != 250:
            raise aiosmtplib.SMTPSenderRefused(mail.code, mail.message, message.sender)
        if rcpt.code not in (250, 251):
            raise aiosmtplib.SMTPRecipientRefused(rcpt.code, rcpt.message, message.recipient)
        return data

    async def _content(self, message: Prepared, options: list[str]) -> Outcome:
        evidence = self.evidence
        if options:
            evidence = TlsEvidence(**{**evidence.as_dict(), "requiretls": True})
        try:
            await self._write_content(dot_stuff(message.content))
            reply = await self._protocol().read_response(timeout=self.timeouts.data_end)
        except (aiosmtplib.SMTPException, OSError, RuntimeError, TimeoutError) as error:
            # RFC 1047: the server may have accepted the message; a blind retry could duplicate it.
            self.lost = True
            self.smtp.close()
            return Outcome(
                message.key,
                Status.AMBIGUOUS,
                reason=f"connection lost after the end of data, before the reply: {error.__class__.__name__}",
                evidence=evidence,
                warnings=self.warnings,
            )
        status = status_for_code(reply.code)
        return Outcome(
            message.key,
            status,
            code=reply.code,
            reply=_reply(reply.message),
            evidence=evidence,
            warnings=self.warnings,
        )


Detached = dict[str, "asyncio.Future[Outcome]"]  # stalled messages' waits, by key, outliving the batch


async def _run(
    route: MxRoute,
    messages: Sequence[Prepared],
    *,
    requirement: Requirement,
    tlsa: tuple,
    policy: TlsPolicy,
    transport: TransportSettings,
    warnings: tuple[str, ...],
    throttle: Throttle | None,
    throttle_wait: float,
    sessions: StreamSessions | None = None,
    detached: Detached | None = None,
) -> list[Outcome]:
    opener = open_session if sessions is None else sessions.open  # a kept session of the same key
    smtp, evidence = await opener(
        route, requirement=requirement, transport=transport, tlsa=tlsa, policy_source=str(policy.source)
    )
    # The rest of a stalled connection's batch goes to a fresh connection, which is not kept.
    rest_run = dict(
        requirement=requirement,
        tlsa=tlsa,
        policy=policy,
        transport=transport,
        warnings=warnings,
        throttle=throttle,
        throttle_wait=throttle_wait,
        detached=detached,
    )
    connection = _Connection(
        route,
        messages,
        _Session(smtp, evidence, warnings, transport.timeouts),
        sessions,
        rest_run,
        detached=detached,
        stall_after=transport.stall_after,
    )
    return await connection.run(throttle, throttle_wait)


class _Connection:
    """One connection's batch, sent in order by one task, and its stall watch.

    A slow receiver holds the message in flight: when its reply has not come `stall_after` seconds
    after it was started, the rest of the batch goes on over a new connection while it waits alone on
    this one (up to the RFC's timeouts). With `detached`, the batch does not wait for it either: its
    wait (a future giving its outcome) is handed to the caller under its key.

    The watch is one timer per connection, armed at the in-flight message's deadline and re-armed only
    when it fires for a message that has since been answered; not a task and a timer per message."""

    def __init__(
        self,
        route: MxRoute,
        messages: Sequence[Prepared],
        session: _Session,
        sessions: StreamSessions | None,
        rest_run: dict,
        *,
        detached: Detached | None,
        stall_after: float,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.route, self.messages, self.session, self.sessions = route, messages, session, sessions
        self.rest_run, self.detached, self.stall_after = rest_run, detached, stall_after
        self.outcomes: list[Outcome] = []
        self.index = -1  # the message in flight (sent, its reply not read yet); -1: none
        self.since = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.stalled = False
        self.alone: asyncio.Future[Outcome] | None = None  # the stalled message's outcome (detached)
        self.others: asyncio.Future[list[Outcome]] | None = None  # the rest, on a new connection
        self.answered: asyncio.Future[None] = self.loop.create_future()  # the batch may return

    async def run(self, throttle: Throttle | None, throttle_wait: float) -> list[Outcome]:
        sender = asyncio.ensure_future(self._send_all(throttle, throttle_wait))
        try:
            await self.answered
        except asyncio.CancelledError:
            if self.alone is None:  # a detached wait is no longer the batch's to stop
                sender.cancel()
            if self.others is not None:
                self.others.cancel()
            raise
        outcomes = self.outcomes
        if self.others is not None:
            outcomes = outcomes + await self.others
        return outcomes

    async def _send_all(self, throttle: Throttle | None, throttle_wait: float) -> None:
        session, messages = self.session, self.messages
        stalled_at: int | None = None
        try:
            for index, message in enumerate(messages):
                if throttle is not None and not await _admitted(throttle, message, throttle_wait):
                    self.outcomes += [
                        session.outcome(m, Status.DEFERRED, reason="rate limited") for m in messages[index:]
                    ]
                    break
                self.index, self.since = index, self.loop.time()
                if self.timer is None and (index + 1 < len(messages) or self.detached is not None):
                    self.timer = self.loop.call_at(self.since + self.stall_after, self._check)
                outcome = await session.send(message)
                self.index = -1
                if self.stalled:  # the rest went to another connection; this one ends with it
                    stalled_at = index
                    if self.alone is None:
                        self.outcomes.append(outcome)
                    elif not self.alone.done():
                        self.alone.set_result(outcome)
                    break
                self.outcomes.append(outcome)
        except BaseException as error:
            # Cancelled (the process stopping) or broken mid-transaction: the connection's state is
            # unknown and it is not kept; whoever waits learns it (for a detached wait the reply is
            # unknown: RFC 1047).
            session.lost = True
            session.smtp.close()
            for waiting in (self.alone, self.answered):
                if waiting is not None and not waiting.done():
                    if isinstance(error, asyncio.CancelledError):
                        waiting.cancel()
                    else:
                        waiting.set_exception(error)
            if not isinstance(error, Exception):  # cancelled, or the process exiting
                raise
        finally:
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            sent = len(self.outcomes) if stalled_at is None else stalled_at + 1
            await _session_end(session, self.sessions, sent=sent)
            if not self.answered.done():
                self.answered.set_result(None)

    def _check(self) -> None:
        """The timer: the message in flight is stalled, or another one is in flight since (re-armed
        at its deadline), or none is (disarmed until the next one starts)."""
        self.timer = None
        if self.index < 0 or self.stalled:
            return
        deadline = self.since + self.stall_after
        if self.loop.time() < deadline - 0.001:
            self.timer = self.loop.call_at(deadline, self._check)
            return
        if self.index + 1 >= len(self.messages) and self.detached is None:
            return  # the last message of a batch that waits for it: nothing to hand over
        self._stall()

    def _stall(self) -> None:
        self.stalled = True
        message, rest = self.messages[self.index], self.messages[self.index + 1 :]
        if rest:
            self.others = asyncio.ensure_future(_hand_over(self.route, rest, **self.rest_run))
        if self.detached is not None:
            self.alone = self.loop.create_future()
            self.detached[message.key] = self.alone
            self.answered.set_result(None)  # the batch goes on without it


async def _session_end(session: _Session, sessions: StreamSessions | None, *, sent: int) -> None:
    if sessions is not None:
        await sessions.close(session.smtp, session.evidence, sent=sent, lost=session.lost)
    elif not session.lost:
        await close_session(session.smtp)


async def _hand_over(route: MxRoute, messages: Sequence[Prepared], **run) -> list[Outcome]:
    """The rest of a stalled connection's batch, on a connection of its own (which may hand over in
    turn). If that connection cannot be had, they never started: retried soon, not counted as tries."""
    try:
        return await _run(route, messages, **run)
    except (ConnectFailed, TlsRefused):
        return [
            Outcome(
                m.key, Status.DEFERRED, reason="connection lost before this message", warnings=run["warnings"]
            )
            for m in messages
        ]


async def _admitted(throttle: Throttle, message: Prepared, budget: float) -> bool:
    domain = message.recipient.rpartition("@")[2].lower()
    while True:
        wait = await throttle.take(domain)
        if wait <= 0:
            return True
        if wait > budget:
            return False
        budget -= wait
        await asyncio.sleep(wait)


async def deliver_batch(
    routes: MxRoute | Sequence[MxRoute],
    messages: Sequence[Prepared],
    policy: TlsPolicy,
    *,
    transport: TransportSettings | None = None,
    throttle: Throttle | None = None,
    concurrency: MxConcurrency | None = None,
    throttle_wait: float = 2.0,
    sessions: StreamSessions | None = None,
    detached: Detached | None = None,
) -> list[Outcome]:
    """Outcomes in the order of `messages`. Never raises for per-message or connection problems.

    `routes`: one route (a relay, a test server) or the domain's MX hosts in preference order.
    `sessions`: the worker's kept sessions (pool.py); without it every connection is closed after use.
    `detached`: when given, a message whose reply has not come after `transport.stall_after` is not
    waited for: its wait (a task giving its outcome, up to its RFC timeout) goes into `detached` under
    its key, and it has no outcome in the list."""
    transport = transport or TransportSettings.from_settings()
    if not messages:
        return []
    routes = (routes,) if isinstance(routes, MxRoute) else tuple(routes)
    if not routes:
        return [Outcome(m.key, Status.DEFERRED, reason="no MX host to deliver to") for m in messages]
    done: dict[str, Outcome] = {}
    tries: dict[str, list[tuple[MxRoute, Outcome]]] = {}  # why each earlier host did not take a message
    pending = list(messages)
    for route in routes:
        finished, passed_on = await _deliver_host(
            route, pending, policy, transport, throttle, concurrency, throttle_wait, sessions, detached
        )
        for key, outcome in finished.items():
            done[key] = _noting_earlier_hosts(outcome, tries.get(key, ()))
        for key, outcome in passed_on.items():
            tries.setdefault(key, []).append((route, outcome))
        pending = [m for m in pending if m.key in passed_on]
        if not pending:
            break
    for message in pending:
        done[message.key] = _no_host_took(tries[message.key])
    for message in messages:
        if detached is not None and message.key in detached and tries.get(message.key):
            detached[message.key] = asyncio.ensure_future(_noted(detached[message.key], tries[message.key]))
    return [done[m.key] for m in messages if detached is None or m.key not in detached]


async def _noted(waiting: asyncio.Future[Outcome], tries) -> Outcome:
    return _noting_earlier_hosts(await waiting, tries)


def _noting_earlier_hosts(outcome: Outcome, tries) -> Outcome:
    if not tries:
        return outcome
    notes = tuple(f"MX {route.host} not used: {earlier.reason}" for route, earlier in tries)
    return replace(outcome, warnings=notes + outcome.warnings)


def _no_host_took(tries: list[tuple[MxRoute, Outcome]]) -> Outcome:
    """Every host tried failed the message: REFUSED if any host refused it (no verified TLS on offer:
    the caller's fallback, never plaintext), else DEFERRED (all unreachable: retry later)."""
    if len(tries) == 1:
        return tries[0][1]
    refused = [outcome for _, outcome in tries if outcome.status == Status.REFUSED]
    last = refused[-1] if refused else tries[-1][1]
    return replace(last, reason="; ".join(f"MX {route.host}: {outcome.reason}" for route, outcome in tries))


Results = tuple[dict[str, Outcome], dict[str, Outcome]]  # (final outcomes, messages for the next MX host)


async def _deliver_host(
    route: MxRoute, messages, policy, transport, throttle, concurrency, throttle_wait, sessions, detached
) -> Results:
    warnings: tuple[str, ...] = ()
    if not policy.mx_allowed(route.host):
        note = f"MX {route.host} does not match the MTA-STS policy of {policy.domain}"
        if policy.enforced:  # not even a connection to it
            return {}, {m.key: Outcome(m.key, Status.REFUSED, reason=f"{note} (enforce)") for m in messages}
        warnings = (f"{note} (testing mode: reported, not enforced)",)
    lease = None
    if concurrency is not None:
        lease = await concurrency.acquire(route.host)
        if lease is None:  # our own limit, not the host's failure: the next MX is no better a choice
            full = "MX concurrency limit reached"
            return {m.key: Outcome(m.key, Status.DEFERRED, reason=full) for m in messages}, {}
    try:
        return await _deliver(
            route, messages, policy, transport, warnings, throttle, throttle_wait, sessions, detached
        )
    finally:
        if lease is not None:
            await concurrency.release(route.host, lease)


async def _deliver(
    route, messages, policy, transport, warnings, throttle, throttle_wait, sessions, detached
) -> Results:
    strict = [m for m in messages if _needs_verified(m, policy)]
    requirement, tlsa = _requirement(route, policy) if strict else (Requirement.OPPORTUNISTIC, ())
    run = dict(
        policy=policy,
        transport=transport,
        warnings=warnings,
        throttle=throttle,
        throttle_wait=throttle_wait,
        sessions=sessions,
        detached=detached,
    )
    try:
        outcomes = await _run(route, messages, requirement=requirement, tlsa=tlsa, **run)
    except TlsRefused as refused:
        passed_on = {
            m.key: Outcome(
                m.key, Status.REFUSED, reason=refused.reason, evidence=refused.evidence, warnings=warnings
            )
            for m in strict
        }
        loose = [m for m in messages if m.key not in passed_on]
        if not loose:
            return {}, passed_on
        finished, unreachable = await _opportunistic(route, loose, run)
        return finished, passed_on | unreachable
    except ConnectFailed as failed:
        return {}, {
            m.key: Outcome(m.key, Status.DEFERRED, reason=str(failed), warnings=warnings) for m in messages
        }
    return {o.key: o for o in outcomes}, {}


async def _opportunistic(route, loose, run) -> Results:
    try:
        outcomes = await _run(route, loose, requirement=Requirement.OPPORTUNISTIC, tlsa=(), **run)
    except (ConnectFailed, TlsRefused) as failed:
        return {}, {m.key: Outcome(m.key, Status.DEFERRED, reason=str(failed)) for m in loose}
    return {o.key: o for o in outcomes}, {}
