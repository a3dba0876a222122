"""Sending one claimed batch: gate → path → content → DKIM → hand-off → outcomes, in rounds.

Round 1 sends every message by its first path; a message the transport REFUSED (no verified TLS)
comes back in round 2 on its fallback path (portal notice or waiver), never in the clear. Each round
commits "handed off" before the SMTP phase and its outcomes right after, so a worker killed at any
moment leaves rows the sweeper can account for: never started (resent) or handed off (resent with
the same Message-ID and counted as ambiguous).

A message whose receiver stalls (no reply after DELIVERY_SMTP_STALL_SECONDS) is left out of its
round: the round records the others and the drain goes on, while the stalled one waits alone and is
recorded, the same way, when its reply comes (stalls.py).
"""

from __future__ import annotations

import functools
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

import dns.exception
from django.utils import timezone

from contacts.addresses import domain_problem
from delivery.inbound.classify import Category, classify_status
from delivery.inbound.health import paused_domains
from delivery.models import Message
from delivery.outbox import RenderedContent
from delivery.smtp.connection import MxRoute, TransportSettings
from delivery.smtp.message import Prepared
from delivery.smtp.outcomes import Outcome, Status
from delivery.tls.mta_sts import PolicyFetcher, policy_fetcher_from_settings
from delivery.tls.policy import Prober, TlsPolicy, relay_policy
from delivery.tls.probe import starttls_prober
from delivery.tls.resolver import Resolver, get_resolver
from delivery.tls.store import tls_policy_for_domain
from healthmail.tenants.context import tenant_context
from healthmail.tenants.models import Tenant

from . import decide, record
from .config import EngineSettings, StreamIdentity, stream_identity
from .decide import Path
from .gate import gate_messages
from .journal import journal_write
from .prepare import Preparer, Work
from .stalls import KEEPER
from .transport import Group, deliver_round

if TYPE_CHECKING:  # the portal is imported when it is installed (_default_portal)
    from delivery.portal.services import PortalNotice

State = Message.State
MAX_ROUNDS = 3

Portal = Callable[[Message, RenderedContent], "PortalNotice"]


def _default_portal() -> Portal | None:
    try:
        from delivery.portal.services import portal_deliver
    except ImportError:  # the portal is a separate deployable part; without it PHI waits (deferred)
        return None
    return portal_deliver


@dataclass
class Dependencies:
    """Everything that talks to the outside world, injectable for tests and benchmarks."""

    resolver: Resolver
    fetcher: PolicyFetcher
    prober: Prober
    transport: TransportSettings
    engine: EngineSettings
    portal: Portal | None = None
    shared_limits: bool = True  # Redis token buckets and MX leases shared by all workers

    def for_stream(self, identity: StreamIdentity) -> Dependencies:
        """Every connection of the stream, the STARTTLS probe's included, from its own source address."""
        if not identity.source_address:
            return self
        transport = replace(self.transport, source_address=identity.source_address)
        return replace(self, transport=transport, prober=starttls_prober(transport))

    @classmethod
    def from_settings(cls) -> Dependencies:
        transport = TransportSettings.from_settings()
        return cls(
            resolver=get_resolver(),
            fetcher=policy_fetcher_from_settings(ca_file=transport.ca_file),
            prober=starttls_prober(transport),
            transport=transport,
            engine=EngineSettings.from_settings(),
            portal=_default_portal(),
        )


@dataclass
class BatchReport:
    claimed: int = 0
    states: Counter[str] = field(default_factory=Counter)
    ambiguous: int = 0
    attempts: int = 0
    stalled: int = 0  # left waiting alone for their reply, recorded when it comes (stalls.py)

    def add(self, other: BatchReport) -> None:
        self.claimed += other.claimed
        self.states.update(other.states)
        self.ambiguous += other.ambiguous
        self.attempts += other.attempts
        self.stalled += other.stalled


def _policies(domains: set[str], deps: Dependencies, relay: MxRoute | None) -> dict[str, TlsPolicy | str]:
    """The TLS policy of each domain, or the reason it could not be looked up (then: retry later)."""
    if relay is not None:
        return {domain: relay_policy(relay.host) for domain in domains}
    policies: dict[str, TlsPolicy | str] = {}
    for domain in sorted(domains):
        try:
            policies[domain] = tls_policy_for_domain(
                domain=domain, resolver=deps.resolver, fetcher=deps.fetcher, prober=deps.prober
            )
        except (OSError, ValueError, dns.exception.DNSException) as error:
            policies[domain] = f"TLS policy lookup failed: {error.__class__.__name__}"
    return policies


def send_claimed(
    *, tenant_id: uuid.UUID, stream: str, worker: str, messages: list[Message], deps: Dependencies
) -> BatchReport:
    """Send the rows `messages_claim` returned (claim.py). Only those still this worker's at the
    hand-off are sent (record.mark_handoff): a row taken back in between is left to its new holder."""
    report = BatchReport(claimed=len(messages))
    identity = stream_identity(stream)
    deps = deps.for_stream(identity)
    now = timezone.now()
    settles: list[record.Settle] = []
    with tenant_context(tenant_id):
        tenant = Tenant.objects.get(pk=tenant_id)
        # The rows as the claim returned them (no second read); no join on the sender domain: the
        # Preparer reads it once per domain (a batch has one or few).
        live: list[Message] = []
        for message in messages:
            if message.expires_at is not None and message.expires_at <= now:
                settles.append(record.Settle(message, State.EXPIRED, "expired before it could be sent"))
            elif (problem := domain_problem(message.to_domain)) is not None:
                # Intake refuses these (contacts/addresses.py); one enqueued before the rule, or by a
                # path that skips it, fails here at once instead of after DNS lookups and retries.
                settles.append(record.Settle(message, State.FAILED, f"the address {problem}"))
            else:
                live.append(message)
        gates = gate_messages(tenant=tenant, messages=live)
        paused = paused_domains(tenant_id=tenant_id, stream=stream, domains={m.to_domain for m in live})
        work: list[Work] = []
        for message in live:
            gate = gates[message.pk]
            if message.to_domain in paused and gate.allowed:
                # The receiving domain kept refusing this stream for sender reasons: hold, lose nothing.
                until = paused[message.to_domain]
                reason = f"paused: {message.to_domain} refused this stream's mail for sender reasons"
                settles.append(record.Settle(message, State.DEFERRED, reason, not_before=until))
                continue
            if not gate.allowed:
                settles.append(record.Settle(message, State.SUPPRESSED, gate.reason))
                continue
            path = decide.first_path(encryption_policy=message.encryption_policy, previous_path=message.path)
            work.append(Work(message=message, path=path, gate=gate))
    # Cached per domain (DomainTlsPolicy); only a stale entry costs DNS or a probe here.
    policies = _policies({item.message.to_domain for item in work}, deps, identity.relay)
    preparer = Preparer(tenant=tenant, identity=identity, deps=deps)
    for _ in range(MAX_ROUNDS):
        if not work and not settles:
            break
        work, settles = _round(tenant_id, worker, work, settles, policies, preparer, deps, report)
    for item in work:  # still refused after every fallback: not in the clear, later
        settles.append(record.Settle(item.message, State.DEFERRED, "no path this round", not_before=now))
    if settles:
        _write(tenant_id, worker, settles, [], report)
    return report


def _round(
    tenant_id: uuid.UUID,
    worker: str,
    work: list[Work],
    settles: list[record.Settle],
    policies: dict[str, TlsPolicy | str],
    preparer: Preparer,
    deps: Dependencies,
    report: BatchReport,
) -> tuple[list[Work], list[record.Settle]]:
    """One round: prepare, hand off, send, and record; returns the messages for the next round."""
    now = timezone.now()
    groups: dict[str, list[tuple[Work, Prepared]]] = {}
    tls: dict[str, TlsPolicy] = {}
    with tenant_context(tenant_id):
        for item in work:
            policy = policies[item.message.to_domain]
            if isinstance(policy, str):
                settles.append(
                    _retry(item, Outcome(str(item.message.pk), Status.DEFERRED, reason=policy), deps, now)
                )
                continue
            ready = preparer.prepare(item, now=now)
            if ready[1] is not None:
                settles.append(ready[1])
                continue
            groups.setdefault(item.message.to_domain, []).append((item, ready[0]))
            tls[item.message.to_domain] = policy
    handed = [item.message.pk for members in groups.values() for item, _ in members]
    owned = record.mark_handoff(
        tenant_id=tenant_id, worker=worker, ids=handed, lease_until=now + deps.engine.lease
    )
    if settles:  # failures found while preparing: recorded before the (slower) SMTP phase
        _write(tenant_id, worker, settles, [], report)
    delivery_groups = []
    for domain, members in groups.items():
        members = [(item, prepared) for item, prepared in members if item.message.pk in owned]
        if members:
            policy = tls[domain]
            delivery_groups.append(
                Group(routes=_routes(policy, preparer.identity.relay), policy=policy, members=members)
            )
    started = timezone.now()
    outcomes, stalled = deliver_round(delivery_groups, deps=deps, stream=preparer.identity.stream)
    finished = timezone.now()
    next_work: list[Work] = []
    attempts: list[record.AttemptRow] = []
    settles = []
    for group in delivery_groups:
        for item, prepared in group.members:
            if prepared.key in stalled:  # still waiting for its reply: recorded when it comes
                alone = functools.partial(_record_alone, tenant_id, worker, item, group.policy, deps, started)
                KEEPER.hold(
                    worker=worker,
                    key=prepared.key,
                    waiting=stalled[prepared.key],
                    record=alone,
                    interval=deps.engine.heartbeat,
                )
                report.stalled += 1
                continue
            outcome = outcomes[prepared.key]
            if not decide.never_started(outcome):  # a message that never got its turn was not tried
                attempts.append(
                    record.attempt_row(
                        item.message, outcome, path=item.path, started_at=started, now=finished
                    )
                )
            following = _outcome(item, outcome, group.policy, deps, finished)
            if isinstance(following, Work):
                next_work.append(following)
            else:
                settles.append(following)
    if settles or attempts:
        # The receiver's answers go to disk (fsynced) before PostgreSQL: if the database cannot take
        # them now, the journal replays them later and nothing it accepted is sent twice.
        with journal_write(
            tenant_id=tenant_id, worker=worker, rows=record.settle_rows(settles), attempts=attempts
        ):  # locked until recorded: another drain on this host does not record the round again
            _write(tenant_id, worker, settles, attempts, report)
        report.attempts += len(attempts)
    return next_work, []


def _record_alone(
    tenant_id: uuid.UUID,
    worker: str,
    item: Work,
    policy: TlsPolicy,
    deps: Dependencies,
    started: datetime,
    outcome: Outcome,
) -> None:
    """A stalled message's outcome, once its reply came (or its wait ended), recorded as its round
    would have: journal first, then PostgreSQL (on the stall keeper's thread, stalls.py)."""
    finished = timezone.now()
    attempts: list[record.AttemptRow] = []
    if not decide.never_started(outcome):
        attempts.append(
            record.attempt_row(item.message, outcome, path=item.path, started_at=started, now=finished)
        )
    following = _outcome(item, outcome, policy, deps, finished)
    if isinstance(following, Work):  # a fallback path: the next drain's, never in the clear
        following = record.Settle(item.message, State.DEFERRED, "no path this round", not_before=finished)
    rows = record.settle_rows([following])
    with journal_write(tenant_id=tenant_id, worker=worker, rows=rows, attempts=attempts):
        record.settle(tenant_id=tenant_id, worker=worker, settles=[following], attempts=attempts)


def _routes(policy: TlsPolicy, relay: MxRoute | None) -> tuple[MxRoute, ...]:
    """The relay, or every MX host in preference order (RFC 5321 §5.1): the transport moves on to the
    next one when a host is unreachable or cannot meet the TLS policy, never to a weaker connection."""
    if relay is not None:
        return (relay,)
    return tuple(MxRoute.from_mx(mx) for mx in policy.mx)


def _write(
    tenant_id: uuid.UUID,
    worker: str,
    settles: list[record.Settle],
    attempts: Sequence[record.AttemptRow],
    report: BatchReport,
) -> None:
    record.settle(tenant_id=tenant_id, worker=worker, settles=settles, attempts=attempts)
    for item in settles:
        report.states[item.state] += 1
    settles.clear()


def _count_attempt(item: Work, now: datetime) -> datetime:
    """Count the attempt; returns when the message was first attempted."""
    message = item.message
    message.attempts += 1
    if message.first_attempt_at is None:
        message.first_attempt_at = now
    message.path = item.path
    return message.first_attempt_at


def _retry(item: Work, outcome: Outcome, deps: Dependencies, now: datetime) -> record.Settle:
    # A message that never started is retried soon and its age is not read.
    first_attempt_at = now
    if not decide.never_started(outcome):
        # Collateral deferrals (a limit, a connection another message broke) are not attempts: they
        # would push this message's backoff out for failures that were not its own.
        first_attempt_at = _count_attempt(item, now)
    retry = decide.retry_after(
        outcome=outcome,
        attempt=item.message.attempts,
        first_attempt_at=first_attempt_at,
        now=now,
        schedule=deps.engine.retry,
        soon=deps.engine.soon,
    )
    return record.Settle(item.message, retry.state, record.scrub(retry.reason), not_before=retry.not_before)


def _evidence(item: Work, outcome: Outcome, policy: TlsPolicy, now: datetime) -> dict[str, object]:
    evidence: dict[str, object] = {
        "path": str(item.path),
        "delivered_at": now.isoformat(),
        "smtp_code": outcome.code,
        "tls": outcome.evidence.as_dict() if outcome.evidence else None,
        "policy": {"source": str(policy.source), "mode": policy.mode, "reason": policy.reason[:300]},
        "warnings": list(outcome.warnings),
        "ambiguous_sends": item.message.ambiguous_sends,
    }
    if item.refusals:
        evidence["refused"] = item.refusals  # why verified TLS was not available (the fallback's cause)
    if item.path == Path.WAIVER:
        evidence["waiver"] = "patient waiver of encryption on record (consent gate)"
    return evidence


def _outcome(
    item: Work, outcome: Outcome, policy: TlsPolicy, deps: Dependencies, now: datetime
) -> record.Settle | Work:
    """A Settle, or the Work for the next round (a refused message on its fallback path)."""
    message = item.message
    if outcome.status == Status.DELIVERED:
        _count_attempt(item, now)
        verified = bool(outcome.evidence and outcome.evidence.verified)
        state = decide.delivered_state(path=item.path, verified=verified)
        return record.Settle(message, state, "", evidence=_evidence(item, outcome, policy, now))
    if outcome.status == Status.BOUNCED:
        _count_attempt(item, now)
        reply = f"{outcome.code} {outcome.reply}"
        verdict = classify_status(text=reply)
        if verdict.category == Category.SENDER:
            # Refused for our DKIM/SPF/DMARC or reputation (5.7.26...): the message failed, the patient
            # is not at fault and is not suppressed (delivery/inbound/classify.py).
            reason = record.scrub(f"refused for the sender's {verdict.cause or 'policy'}: {reply}")
            return record.Settle(message, State.FAILED, reason, verdict=verdict)
        return record.Settle(message, State.BOUNCED, record.scrub(reply), verdict=verdict)
    if outcome.status == Status.AMBIGUOUS:
        message.ambiguous_sends += 1  # RFC 1047: resent later with the same Message-ID, and counted
        return _retry(item, outcome, deps, now)
    if outcome.status == Status.DEFERRED:
        settle = _retry(item, outcome, deps, now)
        if outcome.code is not None and 400 <= outcome.code < 500:
            verdict = classify_status(text=f"{outcome.code} {outcome.reply}")
            if verdict.category == Category.SENDER:
                # "Try again, unauthenticated" (4.7.x): retried as any 4xx, and it counts toward the
                # sender domain's health and a pause, never toward the patient's soft-bounce streak.
                settle.verdict = verdict
        return settle
    # REFUSED: the message needed verified TLS (or the domain enforces it) and did not get it.
    if item.path == Path.DIRECT and not item.needs_verified:
        return _retry(item, outcome, deps, now)  # non-PHI mail to an enforcing domain: RFC 8461, later
    fallback = decide.after_refusal(
        path=item.path,
        encryption_policy=message.encryption_policy,
        waiver_allowed=item.gate.unencrypted_allowed,
        reason=outcome.reason,
    )
    if fallback.path is not None:
        item.refusals.append({"path": str(item.path), "reason": outcome.reason[:300]})
        item.path = fallback.path
        return item
    if fallback.state == State.DEFERRED:
        return _retry(item, Outcome(outcome.key, Status.DEFERRED, reason=fallback.reason), deps, now)
    _count_attempt(item, now)
    return record.Settle(message, fallback.state, fallback.reason)
