"""RFC 5321 §4.5.3.2: the client waits for each step as long as its configured timeout (the RFC's
minimums by default), and a silence longer than that ends the transaction with the right outcome.
Real aiosmtpd receivers that stay silent; the timeouts are shortened so no test waits minutes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from delivery.smtp.client import deliver_batch
from delivery.smtp.connection import MxRoute
from delivery.smtp.outcomes import Status
from delivery.smtp.timeouts import SmtpTimeouts
from delivery.tls.policy import Source, TlsPolicy

from .conftest import phi_message, run

PROBED = TlsPolicy(domain="slow.test", source=Source.STARTTLS_PROBE)
SHORT = 0.5  # a step's timeout in these tests
SILENCE = 1.5  # how long the receiver stays silent: longer than SHORT


def _send(kit, transport, timeouts: SmtpTimeouts, count: int = 1):
    messages = [phi_message(f"t{i}", f"pat{i}@slow.test") for i in range(count)]
    transport = replace(transport, timeouts=timeouts)
    return run(deliver_batch(MxRoute.from_mx(kit["slow"].mx()), messages, PROBED, transport=transport))


def test_the_defaults_are_the_rfc_minimums(settings):
    for name in [name for name in dir(settings) if name.startswith("DELIVERY_SMTP_TIMEOUT_")]:
        delattr(settings, name)
    timeouts = SmtpTimeouts.from_settings()
    minutes = {name: seconds / 60 for name, seconds in vars(timeouts).items()}
    assert minutes == {"greeting": 5, "mail": 5, "rcpt": 5, "data_init": 2, "data_block": 3, "data_end": 10}


def test_each_timeout_comes_from_its_setting(settings):
    settings.DELIVERY_SMTP_TIMEOUT_DATA_END = 900
    settings.DELIVERY_SMTP_TIMEOUT_RCPT = 42
    timeouts = SmtpTimeouts.from_settings()
    assert (timeouts.data_end, timeouts.rcpt, timeouts.mail) == (900, 42, 300)


@pytest.mark.parametrize(
    ("step", "field"),
    [("greeting", "greeting"), ("mail", "mail"), ("rcpt", "rcpt"), ("data", "data_init")],
)
def test_a_silence_before_the_final_dot_defers_without_delivering(kit, transport, step, field):
    kit["slow"].behaviour.stall = {step: SILENCE}
    timeouts = replace(SmtpTimeouts.every(30), **{field: SHORT})

    (outcome,) = _send(kit, transport, timeouts)

    assert outcome.status == Status.DEFERRED, outcome  # nothing was accepted: a plain retry later
    assert kit["slow"].messages == []


@pytest.mark.parametrize(
    ("step", "field"),
    [("greeting", "greeting"), ("mail", "mail"), ("rcpt", "rcpt"), ("data", "data_init")],
)
def test_a_silence_shorter_than_its_timeout_is_waited_out(kit, transport, step, field):
    kit["slow"].behaviour.stall = {step: SHORT}
    timeouts = replace(SmtpTimeouts.every(0.2), **{field: SILENCE * 2})

    (outcome,) = _send(kit, transport, timeouts)

    assert outcome.status == Status.DELIVERED, outcome
    assert len(kit["slow"].messages) == 1


def test_a_slow_reply_to_the_final_dot_is_waited_for_and_delivered_once(kit, transport):
    """The case that duplicated mail: the receiver takes longer than every other step's timeout to
    answer the final "." and accepts; only the final-reply timeout decides."""
    kit["slow"].behaviour.stall = {"end": SILENCE}
    timeouts = replace(SmtpTimeouts.every(SHORT), data_end=SILENCE * 3)

    (outcome,) = _send(kit, transport, timeouts)

    assert outcome.status == Status.DELIVERED, outcome
    assert len(kit["slow"].messages) == 1


def test_no_reply_to_the_final_dot_within_its_timeout_is_ambiguous(kit, transport):
    """RFC 1047: the receiver may accept after the client gave up; counted, resent with its Message-ID."""
    kit["slow"].behaviour.stall = {"end": SILENCE}
    timeouts = replace(SmtpTimeouts.every(30), data_end=SHORT)

    (outcome,) = _send(kit, transport, timeouts)

    assert outcome.status == Status.AMBIGUOUS, outcome


def test_task_time_limits_outlive_a_round_but_not_a_stalled_wait(settings):
    """A drain waits for a connection's set-up, each message up to the stall window and the
    connection's end; a stalled message's 10-minute wait for the final reply goes on in the stall
    thread, outside the task (delivery/tasks.py, drain_time_limits)."""
    from delivery.tasks import drain_time_limits

    settings.DELIVERY_SMTP_STALL_SECONDS = 30
    limits = drain_time_limits()
    timeouts = SmtpTimeouts.from_settings()
    round_ = settings.DELIVERY_DRAIN_SECONDS + timeouts.session + 30 + timeouts.mail
    assert limits["soft_time_limit"] > round_
    assert limits["time_limit"] > limits["soft_time_limit"]
    # Shorter than before the stall thread, when the limit allowed a whole transaction.
    assert (
        limits["soft_time_limit"] < settings.DELIVERY_DRAIN_SECONDS + timeouts.session + timeouts.transaction
    )
    settings.DELIVERY_SMTP_STALL_SECONDS = 90
    assert drain_time_limits()["soft_time_limit"] == limits["soft_time_limit"] + 60  # follows the window
