"""The Celery side: task names route transactional work to its own queue, tasks acknowledge late, and a
task configured only through settings (as a worker is) drains the outbox."""

from __future__ import annotations

import pytest

from delivery import tasks
from delivery.models import Message
from healthmail.celery import app

from .engine_support import enqueue, reload, verified_sender_domain

KIT = {}


def kit_resolver():
    """settings.DELIVERY_RESOLVER for this module: the loopback servers' DNS map."""
    return KIT["kit"].resolver()


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        (tasks.transactional_send, "transactional"),
        (tasks.transactional_sweep, "transactional"),
        (tasks.marketing_send, "marketing"),
    ],
)
def test_tasks_route_to_their_stream_and_ack_late(task, queue):
    options = {**task._get_exec_options()}
    route = app.amqp.router.route(options, task.name, task_type=task)
    assert route["queue"].name == queue
    assert task.acks_late is True
    assert task.soft_time_limit < task.time_limit


@pytest.mark.django_db
def test_a_task_drains_the_tenants_stream_with_settings_only(tenant_a, kit, settings):
    KIT["kit"] = kit
    settings.DELIVERY_RESOLVER = f"{__name__}.kit_resolver"
    settings.DELIVERY_CA_FILE = kit.ca_file
    settings.DELIVERY_REDIS_PREFIX = "hm-test-tasks"
    sender = verified_sender_domain(tenant_a)[0]
    transactional = enqueue(tenant_a, ["a@good.test"], sender_domain=sender)
    marketing = enqueue(
        tenant_a, ["b@good.test"], sender_domain=sender, stream="marketing", purpose="operations"
    )

    tasks.transactional_send.apply(kwargs={"tenant_id": str(tenant_a.pk)})

    assert reload(tenant_a, transactional)[0].state == Message.State.DELIVERED_TLS
    assert reload(tenant_a, marketing)[0].state == Message.State.QUEUED  # the other stream's worker's
    tasks.marketing_send.apply(kwargs={"tenant_id": str(tenant_a.pk)})
    assert reload(tenant_a, marketing)[0].state == Message.State.DELIVERED_TLS
