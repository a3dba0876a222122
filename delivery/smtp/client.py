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

    async def _write_content(self, data: bytes) -> None:
        """The content (ending with the final "."), a block at a time: a receiver that stops reading
        for longer than the data-block timeout (§4.5.3.2.5) breaks the transaction."""
        protocol = self.smtp.protocol
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
            reply = await self.smtp.protocol.read_response(timeout=self.timeouts.data_end)
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
    session = _Session(smtp, evidence, warnings, transport.timeouts)
    outcomes: list[Outcome] = []
    alone = False  # the connection went on with a stalled message: its wait closes it
    try:
        for index, message in enumerate(messages):
            if throttle is not None and not await _admitted(throttle, message, throttle_wait):
                outcomes += [
                    session.outcome(m, Status.DEFERRED, reason="rate limited") for m in messages[index:]
                ]
                break
            sending = asyncio.ensure_future(session.send(message))
            rest = messages[index + 1 :]
            if (rest or detached is not None) and not await _answered_within(sending, transport.stall_after):
                # A slow receiver holds this message: it waits alone on this connection (up to the RFC's
                # timeouts) while the rest of the batch goes on over a new one. With `detached`, the
                # batch does not wait for it either: its wait is handed to the caller.
                run = dict(requirement=requirement, tlsa=tlsa, policy=policy, transport=transport)
                rest_run = dict(
                    warnings=warnings, throttle=throttle, throttle_wait=throttle_wait, detached=detached
                )
                others = asyncio.ensure_future(_hand_over(route, rest, **run, **rest_run)) if rest else None
                if detached is not None:
                    detached[message.key] = asyncio.ensure_future(
                        _wait_alone(session, sending, sessions, sent=index + 1)
                    )
                    alone = True
                else:
                    outcomes.append(await sending)
                if others is not None:
                    outcomes += await others
                break
            outcomes.append(await sending)
    finally:
        if not alone:
            await _session_end(session, sessions, sent=len(outcomes))
    return outcomes


async def _session_end(session: _Session, sessions: StreamSessions | None, *, sent: int) -> None:
    if sessions is not None:
        await sessions.close(session.smtp, session.evidence, sent=sent, lost=session.lost)
    elif not session.lost:
        await close_session(session.smtp)


async def _wait_alone(
    session: _Session, sending: asyncio.Future[Outcome], sessions: StreamSessions | None, *, sent: int
) -> Outcome:
    """A stalled message's wait for its reply (up to its RFC timeout), then its connection's end."""
    try:
        return await sending
    except asyncio.CancelledError:  # the process is stopping: the connection is in an unknown state
        session.lost = True
        session.smtp.close()
        raise
    finally:
        await _session_end(session, sessions, sent=sent)


async def _answered_within(sending: asyncio.Future, seconds: float) -> bool:
    done, _ = await asyncio.wait({sending}, timeout=seconds)
    return bool(done)


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
