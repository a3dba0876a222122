"""Celery side of delivery. Tasks carry a tenant id only; the outbox rows are the work.

Transactional tasks are named `transactional_*`, so healthmail/celery.py routes them to the
`transactional` queue and its own workers: a marketing backlog never delays them. Late acks: a task
lost with its worker is redelivered, and the sweeper wakes due work even when the broker lost it.
"""

from __future__ import annotations

import logging
import uuid

from celery import signals

from healthmail.celery import app
from healthmail.tasks import WAKE_RETRY_POLICY

logger = logging.getLogger(__name__)


def drain_time_limits() -> dict[str, float]:
    """A drain starts rounds for DELIVERY_DRAIN_SECONDS, then lets the round it started finish. Killing
    a drain mid-round loses the outcomes of its messages in flight (taken back after the heartbeat
    grace, counted ambiguous, resent): the limit must outlive a round, which waits for

    - a connection's set-up: connection and greeting, EHLO, STARTTLS, EHLO, AUTH (`session`, up to
      25 minutes at RFC 5321's waits), which nothing shortens;
    - each message for at most DELIVERY_SMTP_STALL_SECONDS: a message still unanswered then (the reply to
      its final "." may take the RFC's 10 minutes) goes on waiting alone, outside the task, in the
      stall thread (engine/stalls.py), which keeps its claim and records its outcome;
    - the connection's end (QUIT, one command wait) when it is not kept.

    Until the stall thread, the limit had to allow a whole transaction (`transaction`, 25 minutes of
    which the final "." is 10): 3,090 s soft at the default waits, now 1,920 s. A drain that hangs (its
    heartbeat keeps its claims) is stopped 19 minutes sooner. Like before, the limit allows one slow
    set-up per round: several in a row (MX fallbacks, connections queued behind the process's
    connection limit, each as slow as the RFC allows) can still outlast it, and then count as
    ambiguous hand-offs. The claims outlive the task through the worker's heartbeat (heartbeat.py)."""
    from django.conf import settings

    from delivery.smtp.timeouts import SmtpTimeouts

    timeouts = SmtpTimeouts.from_settings()
    stall = float(getattr(settings, "DELIVERY_SMTP_STALL_SECONDS", 30.0))  # TransportSettings.stall_after
    soft = float(settings.DELIVERY_DRAIN_SECONDS) + timeouts.session + stall + timeouts.mail + 60
    return {"soft_time_limit": soft, "time_limit": soft + 60}


LIMITS = drain_time_limits()


def _drain(tenant_id: str, stream: str) -> None:
    from delivery.engine.worker import drain

    report = drain(
        tenant_id=uuid.UUID(tenant_id),
        stream=stream,
        fan_out=lambda: wake(tenant_id=tenant_id, stream=stream),
    )
    if report.claimed:
        logger.info(
            "delivery: drained",
            extra={"stream": stream, "claimed": report.claimed, "states": dict(report.states)},
        )
    if report.more:
        wake(tenant_id=tenant_id, stream=stream)


@app.task(name="delivery.tasks.transactional_send", ignore_result=True, acks_late=True, **LIMITS)
def transactional_send(tenant_id: str) -> None:
    _drain(tenant_id, "transactional")


@app.task(
    name="delivery.tasks.marketing_send", ignore_result=True, acks_late=True, queue="marketing", **LIMITS
)
def marketing_send(tenant_id: str) -> None:
    _drain(tenant_id, "marketing")


@app.task(
    name="delivery.tasks.transactional_sweep",
    ignore_result=True,
    acks_late=True,
    soft_time_limit=50,
    time_limit=60,
)
def transactional_sweep() -> None:
    """The reconciler; on the transactional queue, so a marketing backlog never delays it."""
    from delivery.engine.sweeper import delivery_sweep

    report = delivery_sweep()
    if report.requeued or report.expired:
        logger.warning(
            "delivery: sweep",
            extra={"requeued": report.requeued, "ambiguous": report.ambiguous, "expired": report.expired},
        )


@signals.worker_process_shutdown.connect
def stalled_messages_finish(**_kwargs) -> None:
    """A worker process that stops (warm shutdown, max tasks per child) first lets its stalled messages
    get their reply or time out, and records them (engine/stalls.py): a slow acceptance is not resent."""
    from delivery.engine.stalls import stalls_wait
    from delivery.smtp.pool import process_sessions_close
    from delivery.smtp.timeouts import SmtpTimeouts

    stalls_wait(SmtpTimeouts.from_settings().data_end + 60)
    process_sessions_close()


def wake(*, tenant_id, stream: str) -> None:
    task = transactional_send if stream == "transactional" else marketing_send
    task.apply_async(kwargs={"tenant_id": str(tenant_id)}, retry_policy=WAKE_RETRY_POLICY)
