"""Celery side of delivery. Tasks carry a tenant id only; the outbox rows are the work.

Transactional tasks are named `transactional_*`, so healthmail/celery.py routes them to the
`transactional` queue and its own workers: a marketing backlog never delays them. Late acks: a task
lost with its worker is redelivered, and the sweeper wakes due work even when the broker lost it.
"""

from __future__ import annotations

import logging
import uuid

from healthmail.celery import app

logger = logging.getLogger(__name__)
LIMITS = {"soft_time_limit": 120, "time_limit": 150}  # a drain spends DELIVERY_DRAIN_SECONDS (30 s)


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


def wake(*, tenant_id, stream: str) -> None:
    task = transactional_send if stream == "transactional" else marketing_send
    task.apply_async(kwargs={"tenant_id": str(tenant_id)})
