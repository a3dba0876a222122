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

logger = logging.getLogger(__name__)


def drain_time_limits() -> dict[str, float]:
    """A drain starts messages for DELIVERY_DRAIN_SECONDS, then lets the transactions it started
    finish: a connection's set-up and one message's steps, each within RFC 5321's waits (up to 10
    minutes for the final "."). Killing a drain sooner turns a slow receiver's acceptance into a
    resend. The claims outlive it through the worker's heartbeat (engine/heartbeat.py)."""
    from django.conf import settings

    from delivery.smtp.timeouts import SmtpTimeouts

    timeouts = SmtpTimeouts.from_settings()
    soft = float(settings.DELIVERY_DRAIN_SECONDS) + timeouts.session + timeouts.transaction + 60
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
    task.apply_async(kwargs={"tenant_id": str(tenant_id)})
