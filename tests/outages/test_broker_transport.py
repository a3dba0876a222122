"""A worker's broker connection, cleaned up after Redis went away while a task was unacknowledged, is
closed without an error Celery cannot ignore (healthmail/broker.py; issue 24).

The state is the one a worker reaches when the outage is first seen by another read than the task
channel's BRPOP: the task channel holds an unacknowledged task and an outstanding BRPOP, the
remote-control channel consumes an auto-delete fanout queue, and Celery's consumer runs
`connection.collect()` then `connection.close()` (celery/worker/consumer/consumer.py,
on_connection_error_after_connected) with only connection and channel errors ignored."""

from __future__ import annotations

import pytest
from kombu import Connection, Consumer, Exchange, Producer, Queue

from healthmail.celery import app

from .support import PrivateRedis

TASKS = Queue("transactional", Exchange("transactional"), "transactional")
CONTROL = Queue("worker.pidbox", Exchange("worker.pidbox", type="fanout"), auto_delete=True)


@pytest.fixture
def server():
    server = PrivateRedis()
    yield server
    server.close()


def _outage_clean_up(server: PrivateRedis, connection: Connection) -> None:
    """Take a task without acknowledging it, lose Redis mid-BRPOP, and clean up as Celery does."""
    connection.connect()
    tasks = connection.default_channel
    Producer(tasks).publish(
        {"tenant_id": "t"}, exchange=TASKS.exchange, routing_key="transactional", declare=[TASKS]
    )
    taken: list = []
    Consumer(connection, [TASKS], callbacks=[lambda body, message: taken.append(message)]).consume()
    connection.drain_events(timeout=5)
    assert len(taken) == 1
    assert not taken[0].acknowledged
    Consumer(connection.channel(), [CONTROL], no_ack=True).consume()
    tasks._brpop_start()  # the event loop's BRPOP is outstanding when the outage is seen elsewhere
    server.shutdown()
    connection.collect(socket_timeout=5)  # what Celery does first; it ignores every exception here
    ignorable = connection.connection_errors + connection.channel_errors
    try:
        connection.close()  # then this, ignoring connection and channel errors only
    except ignorable:
        pass


def test_the_connection_is_cleaned_up_and_the_worker_can_reconnect(server):
    connection = app.connection_for_read(server.url)
    assert type(connection.transport).__module__ == "healthmail.broker"  # what workers get from the URL
    _outage_clean_up(server, connection)  # raises if the patch is not there (the test below)
    server.start()
    with app.connection_for_read(server.url) as again:  # Celery's reconnection
        Producer(again.default_channel).publish(
            {}, exchange=TASKS.exchange, routing_key="transactional", declare=[TASKS]
        )
        assert again.default_channel.client.llen("transactional") == 1


def test_stock_kombu_still_exits_the_worker(server):
    """The bug the patch works around. When this fails, kombu fixed it: remove healthmail/broker.py."""
    with pytest.raises(AttributeError, match="hostname"):
        _outage_clean_up(server, Connection(server.url, transport="kombu.transport.redis:Transport"))
