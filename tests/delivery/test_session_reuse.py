"""Sessions kept across rounds (delivery/smtp/pool.py) and PIPELINING (RFC 2920,
delivery/smtp/pipelining.py): fewer handshakes and round trips, never a weaker channel."""

import asyncio

from delivery.smtp.client import deliver_batch
from delivery.smtp.connection import MxRoute
from delivery.smtp.outcomes import Status
from delivery.smtp.pool import PoolSettings, SessionPool, StreamSessions
from delivery.tls.policy import Source, TlsPolicy

from .conftest import PHI_NAME, phi_message

PROBED = TlsPolicy(domain="example.test", source=Source.STARTTLS_PROBE)
RECIPIENT = "zebediah.q@patients.test"


def _batches(kit, transport, batches, *, limits=None):
    """Each (kind, messages, stream) in turn on one loop and one pool, as a worker's rounds are."""
    pool = SessionPool(limits or PoolSettings())

    async def rounds():
        results = []
        for kind, messages, stream in batches:
            route = MxRoute.from_mx(kit[kind].mx())
            sessions = StreamSessions(pool, stream)
            results.append(
                await deliver_batch(route, messages, PROBED, transport=transport, sessions=sessions)
            )
        await pool.close_all()
        return results

    return asyncio.run(rounds()), pool


def test_a_session_is_kept_across_rounds(kit, transport):
    first = [phi_message(f"a{i}", RECIPIENT) for i in range(3)]
    second = [phi_message(f"b{i}", RECIPIENT) for i in range(3)]

    results, pool = _batches(kit, transport, [("good", first, "marketing"), ("good", second, "marketing")])

    assert [o.status for batch in results for o in batch] == [Status.DELIVERED] * 6
    assert all(o.evidence.verified for batch in results for o in batch)
    assert kit["good"].connections == 1
    assert (pool.opened, pool.reused) == (1, 1)


def test_sessions_are_not_shared_between_streams(kit, transport):
    results, pool = _batches(
        kit,
        transport,
        [
            ("good", [phi_message("t1", RECIPIENT)], "transactional"),
            ("good", [phi_message("m1", RECIPIENT)], "marketing"),
        ],
    )

    assert [batch[0].status for batch in results] == [Status.DELIVERED, Status.DELIVERED]
    assert kit["good"].connections == 2
    assert (pool.opened, pool.reused) == (2, 0)


def test_a_plaintext_session_kept_for_mail_without_phi_never_carries_phi(kit, transport):
    """The plain server has no STARTTLS: mail without PHI went in the clear (opportunistic); the PHI
    message after it must be refused, not sent over the kept session."""
    loose = phi_message("n1", RECIPIENT, phi=False, body="Opening hours changed.\n")
    strict = phi_message("p1", RECIPIENT)

    results, _ = _batches(kit, transport, [("plain", [loose], "marketing"), ("plain", [strict], "marketing")])

    assert results[0][0].status == Status.DELIVERED
    assert results[1][0].status == Status.REFUSED
    assert results[1][0].reason == "STARTTLS not offered"
    assert not kit["plain"].saw(PHI_NAME.encode())


def test_an_idle_session_past_its_time_is_closed_not_reused(kit, transport):
    batches = [
        ("good", [phi_message("i1", RECIPIENT)], "marketing"),
        ("good", [phi_message("i2", RECIPIENT)], "marketing"),
    ]

    results, pool = _batches(kit, transport, batches, limits=PoolSettings(idle_seconds=0))

    assert [batch[0].status for batch in results] == [Status.DELIVERED, Status.DELIVERED]
    assert kit["good"].connections == 2
    assert pool.reused == 0


def test_a_session_the_server_dropped_is_replaced(kit, transport):
    """ "drop" closes the connection after the end of data: that message is ambiguous, the session
    is not kept, and the next round opens a new one instead of failing on the dead one."""
    batches = [
        ("drop", [phi_message("d1", RECIPIENT)], "marketing"),
        ("drop", [phi_message("d2", RECIPIENT)], "marketing"),
    ]

    results, pool = _batches(kit, transport, batches)

    assert [batch[0].status for batch in results] == [Status.AMBIGUOUS, Status.AMBIGUOUS]
    assert kit["drop"].connections == 2
    assert pool.reused == 0


def test_pipelining_sends_the_envelope_and_data_in_one_write(kit, transport):
    messages = [phi_message(f"p{i}", RECIPIENT) for i in range(4)]

    (outcomes,), _ = _batches(kit, transport, [("pipelining", messages, "marketing")])

    assert [o.status for o in outcomes] == [Status.DELIVERED] * 4
    assert [m.rcpt_tos for m in kit["pipelining"].messages] == [[RECIPIENT]] * 4
    envelopes = [read for read in kit["pipelining"].reads if read.startswith(b"MAIL FROM:")]
    assert len(envelopes) == 4
    assert all(b"\r\nRCPT TO:<" in read and read.endswith(b"\r\nDATA\r\n") for read in envelopes)


def test_a_pipelined_refusal_is_the_recipients_and_the_session_goes_on(kit, transport):
    messages = [phi_message(f"r{i}", RECIPIENT) for i in range(2)]

    (outcomes,), _ = _batches(kit, transport, [("pipereject", messages, "marketing")])

    assert [(o.status, o.code) for o in outcomes] == [(Status.BOUNCED, 550)] * 2
    assert kit["pipereject"].connections == 1
    assert kit["pipereject"].messages == []
