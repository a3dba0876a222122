"""A receiver that stalls on one message delays only that message: the rest of its connection's batch
moves to a new connection while it waits alone, and a slow acceptance is waited for (once, never
resent). A real aiosmtpd receiver that stays silent before answering one message's final "."."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from delivery.smtp.client import deliver_batch
from delivery.smtp.connection import MxRoute
from delivery.smtp.outcomes import Status
from delivery.tls.policy import Source, TlsPolicy

from .conftest import phi_message, run

PROBED = TlsPolicy(domain="slow.test", source=Source.STARTTLS_PROBE)
STALL = 2.0  # the receiver's silence before answering the stalled message's final "."


def _batch() -> list:
    addresses = ["p0@slow.test", "stalled@slow.test", *[f"p{i}@slow.test" for i in range(2, 6)]]
    return [phi_message(f"k{i}", address) for i, address in enumerate(addresses)]


def _send(kit, transport, *, stall_after: float, data_end: float):
    transport = replace(
        transport, stall_after=stall_after, timeouts=replace(transport.timeouts, data_end=data_end)
    )
    return run(deliver_batch(MxRoute.from_mx(kit["slow"].mx()), _batch(), PROBED, transport=transport))


def _accepted(kit) -> list[str]:
    return [m.rcpt_tos[0] for m in kit["slow"].messages]


def test_the_rest_of_the_batch_goes_on_while_the_stalled_message_waits_alone(kit, transport):
    kit["slow"].behaviour.stall, kit["slow"].behaviour.stall_only = {"end": STALL}, "stalled"

    outcomes = _send(kit, transport, stall_after=0.3, data_end=STALL * 5)

    assert [o.status for o in outcomes] == [Status.DELIVERED] * 6  # the slow one too: it was waited for
    accepted = _accepted(kit)
    assert sorted(accepted) == sorted(m.recipient for m in _batch())  # each once
    assert accepted[-1] == "stalled@slow.test"  # the four after it did not wait for it
    assert kit["slow"].connections == 2  # its own connection kept; the rest on a new one


def test_a_stalled_message_that_never_gets_its_reply_is_the_only_ambiguous_one(kit, transport):
    kit["slow"].behaviour.stall, kit["slow"].behaviour.stall_only = {"end": STALL}, "stalled"

    outcomes = _send(kit, transport, stall_after=0.3, data_end=STALL / 2)

    assert [o.status for o in outcomes] == [Status.DELIVERED, Status.AMBIGUOUS] + [Status.DELIVERED] * 4


def test_the_stall_watch_is_one_per_connection_not_one_task_per_message(kit, transport):
    """Watching for a stall costs a connection one task and one timer, not a task per message (the
    engine sends thousands a second); a batch still gets every outcome."""
    created = []

    async def send():
        loop = asyncio.get_running_loop()

        def factory(loop, coroutine, **kwargs):
            created.append(coroutine.__qualname__)
            return asyncio.Task(coroutine, loop=loop, **kwargs)

        loop.set_task_factory(factory)
        return await deliver_batch(
            MxRoute.from_mx(kit["slow"].mx()), _batch(), PROBED, transport=replace(transport, stall_after=5)
        )

    outcomes = run(send())

    assert [o.status for o in outcomes] == [Status.DELIVERED] * 6
    ours = [name for name in created if not name.startswith("BaseEventLoop.")]  # not the loop's own
    assert len(ours) == 1, ours  # the connection's sender, nothing per message
