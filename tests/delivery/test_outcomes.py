"""RELIABILITY R4: 4xx deferred with backoff, 5xx bounced, a drop after "." flagged ambiguous; and one
connection carries the whole batch."""

import random
from datetime import UTC, datetime, timedelta

from delivery.smtp.client import deliver_batch
from delivery.smtp.connection import MxRoute
from delivery.smtp.outcomes import RetrySchedule, Status
from delivery.tls.policy import Source, TlsPolicy, relay_policy
from delivery.tls.resolver import MxHost

from .conftest import phi_message, run
from .servers import free_port

PROBED = TlsPolicy(domain="example.test", source=Source.STARTTLS_PROBE)


def _send(kit, kind, messages, transport):
    return run(deliver_batch(MxRoute.from_mx(kit[kind].mx()), messages, PROBED, transport=transport))


def test_temporary_failure_is_deferred_then_delivered_on_retry(kit, transport):
    message = phi_message("m1", "pat@tempfail.test")

    (first,) = _send(kit, "tempfail", [message], transport)
    (second,) = _send(kit, "tempfail", [message], transport)

    assert (first.status, first.code) == (Status.DEFERRED, 451)
    assert "try again later" in first.reply
    assert (second.status, second.code) == (Status.DELIVERED, 250)
    assert len(kit["tempfail"].messages) == 1


def test_backoff_grows_exponentially_with_bounded_jitter_and_gives_up_after_max_age():
    schedule = RetrySchedule(
        minimum=timedelta(minutes=5),
        maximum=timedelta(hours=4),
        factor=2,
        jitter=0.2,
        max_age=timedelta(days=1),
    )
    rng = random.Random(7)
    delays = [schedule.delay(n, rng).total_seconds() for n in range(1, 12)]
    for attempt, seconds in enumerate(delays, start=1):
        base = min(4 * 3600, 300 * 2 ** (attempt - 1))
        assert max(300, base * 0.8) <= seconds <= min(4 * 3600, base * 1.2)
    assert delays[-1] == 4 * 3600 or delays[-1] >= 4 * 3600 * 0.8  # capped
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert schedule.next_attempt(attempt=1, first_attempt_at=start, now=start, rng=rng) > start
    late = start + timedelta(hours=23)
    assert schedule.next_attempt(attempt=9, first_attempt_at=start, now=late, rng=rng) is None
    # Jitter spreads retries of a burst of failures instead of synchronising them.
    assert len({schedule.delay(3).total_seconds() for _ in range(20)}) > 10


def test_permanent_failure_bounces(kit, transport):
    outcomes = _send(
        kit,
        "reject",
        [phi_message("m1", "nobody@reject.test"), phi_message("m2", "x@reject.test")],
        transport,
    )

    assert [(o.status, o.code) for o in outcomes] == [(Status.BOUNCED, 550)] * 2
    assert "mailbox unavailable" in outcomes[0].reply
    assert kit["reject"].messages == []


def test_drop_after_final_dot_is_ambiguous_and_later_messages_are_merely_deferred(kit, transport):
    messages = [phi_message(f"m{i}", f"p{i}@drop.test") for i in range(3)]

    outcomes = _send(kit, "drop", messages, transport)

    assert [o.status for o in outcomes] == [Status.AMBIGUOUS, Status.DEFERRED, Status.DEFERRED]
    assert "after the end of data" in outcomes[0].reason
    assert outcomes[1].reason == "connection lost before this message"
    # Why it must never be retried as new: the server did take the message.
    assert len(kit["drop"].messages) == 1


def test_one_connection_carries_the_whole_batch(kit, transport):
    messages = [phi_message(f"m{i}", f"patient{i}@good.test") for i in range(25)]

    outcomes = _send(kit, "good", messages, transport)

    assert [o.status for o in outcomes] == [Status.DELIVERED] * 25, [o.reason for o in outcomes]
    assert kit["good"].connections == 1
    assert [m.rcpt_tos for m in kit["good"].messages] == [[f"patient{i}@good.test"] for i in range(25)]


def test_unreachable_mx_defers_everything(transport):
    route = MxRoute.from_mx(MxHost(10, "mx.down.test", port=free_port(), address="127.0.0.1"))
    outcomes = run(deliver_batch(route, [phi_message("m1", "a@down.test")], PROBED, transport=transport))
    assert outcomes[0].status == Status.DEFERRED
    assert "connect to mx.down.test" in outcomes[0].reason


def test_relay_mode_authenticates_over_verified_tls(kit, transport):
    server = kit["relay"]
    route = MxRoute(
        host=server.name,
        port=server.port,
        address="127.0.0.1",
        username="relay-user",
        password="relay-secret",
    )

    (outcome,) = run(
        deliver_batch(
            route, [phi_message("m1", "a@anywhere.test")], relay_policy(server.name), transport=transport
        )
    )

    assert outcome.status == Status.DELIVERED
    assert outcome.evidence.verified
    assert outcome.evidence.policy_source == "relay"
    assert b"relay-secret" not in server.wire  # AUTH went inside TLS


def test_relay_with_wrong_credentials_defers(kit, transport):
    server = kit["relay"]
    route = MxRoute(
        host=server.name, port=server.port, address="127.0.0.1", username="relay-user", password="wrong"
    )

    (outcome,) = run(
        deliver_batch(
            route, [phi_message("m1", "a@anywhere.test")], relay_policy(server.name), transport=transport
        )
    )

    assert outcome.status == Status.DEFERRED
    assert server.messages == []
