"""kombu's Redis transport, patched so that a Celery worker survives a broker outage (issue 24).

The bug (kombu 5.7.0, the newest release; Celery 5.7.0): when Redis goes away while a worker holds an
unacknowledged task, the consumer's clean-up after the connection error goes

1. `Connection.collect()` closes the connection's channels, and both closes can stop half-way: the task
   channel's close first reads the reply of its outstanding BRPOP (a connection error, raised before the
   channel is marked closed); the remote-control channel's close deletes its auto-delete fanout queue (a
   connection error too, which ends the loop over the remaining channels). `collect()` ignores those
   errors and then detaches the transport from the connection (`transport.client = None`).
2. Celery then closes the connection once more (`ignore_errors(connection, connection.close)`): the task
   channel, still open, drops its Redis pools and gives its unacknowledged task back, which needs a new
   pool, whose parameters are read from `transport.client`: `AttributeError: 'NoneType' object has no
   attribute 'hostname'`. That is neither a connection nor a channel error, so nothing ignores it: it
   leaves `Consumer.start()` and the worker exits (restarted only by a process supervisor).

The same `'NoneType' ... 'hostname'` from a channel used after its connection was released is reported
upstream for other paths (celery/kombu#582, #970); none is fixed for this one. Which close stops where
depends on which read sees the outage first, so a real worker meets it now and then (4 chaos runs in 4
under load, 0 in 3 on a quiet machine); tests/outages/test_broker_transport.py builds that state for
certain.

The patch, in the two places that decide it:
- a channel whose connection is gone raises a connection error, not an AttributeError, when it needs a
  Redis pool: every caller on the clean-up path ignores connection errors, and Celery reconnects after
  one instead of exiting;
- giving unacknowledged tasks back on a broker that cannot be reached is logged and given up, so the
  channel's close runs to its end. Nothing is lost: a task's message stays in Redis' unacked hash if the
  server kept its data (kombu's visibility timeout hands it out again), and every task here only wakes
  work whose record of truth is PostgreSQL (the outbox), which the sweepers wake again anyway.

`install()` (from healthmail/celery.py) makes the `redis://` and `rediss://` schemes use this transport in
every process (kombu's TRANSPORT_ALIASES, its documented registry of transports): the URL keeps choosing
TLS, which an explicit `broker_transport` setting would not (kombu then parses the URL itself and drops
the scheme). Remove this module once kombu closes a channel on a dead connection without the AttributeError:
tests/outages/test_broker_transport.py then fails on its check that stock kombu still raises it.
"""

from __future__ import annotations

import logging
from typing import Any

import kombu.transport
import redis.exceptions
from kombu.transport import redis as kombu_redis

logger = logging.getLogger(__name__)

TRANSPORT = "healthmail.broker:Transport"


class QoS(kombu_redis.QoS):
    def restore_unacked(self, client: Any = None) -> None:
        try:
            super().restore_unacked(client)
        except self.channel.connection_errors as exc:
            # The broker is unreachable: the tasks stay in its unacked hash if it kept its data (handed
            # out again after the visibility timeout); the outbox sweepers wake their work regardless.
            delivered: Any = self._delivered  # kombu declares it None at class level
            logger.warning(
                "broker.unacked_not_restored",
                extra={"count": len(delivered), "exception_type": type(exc).__qualname__},
            )
            delivered.clear()


class Channel(kombu_redis.Channel):
    QoS = QoS

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        transport = self.connection
        if transport is None or transport.client is None:
            # Closed, or its connection released (Connection.collect): a connection error, which every
            # clean-up path ignores and after which Celery reconnects, instead of an AttributeError.
            raise redis.exceptions.ConnectionError("the broker connection of this channel is closed")
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)
        return params


class Transport(kombu_redis.Transport):
    Channel = Channel


def install() -> None:
    """Make the redis:// and rediss:// broker URLs of every kombu connection in this process use
    `Transport` (for rediss:// kombu still enables TLS from the scheme's name)."""
    for scheme in ("redis", "rediss"):
        kombu.transport.TRANSPORT_ALIASES[scheme] = TRANSPORT
        kombu.transport._transport_cache.pop(scheme, None)  # resolved before: resolve again
