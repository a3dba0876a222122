"""Per-domain token bucket and per-MX concurrency, shared by every worker through Redis."""

import asyncio
import uuid

from delivery.smtp.client import deliver_batch
from delivery.smtp.connection import MxRoute
from delivery.smtp.outcomes import Status
from delivery.smtp.throttle import DomainTokenBucket, MxConcurrency, redis_client
from delivery.tls.policy import Source, TlsPolicy

from .conftest import phi_message, run


def _prefix() -> str:
    return f"hm-test:{uuid.uuid4().hex}"


def test_two_clients_share_one_domain_bucket():
    async def scenario():
        prefix = _prefix()
        first, second = redis_client(), redis_client()  # two workers, two connections
        a = DomainTokenBucket(first, rate=0.01, burst=5, prefix=prefix)
        b = DomainTokenBucket(second, rate=0.01, burst=5, prefix=prefix)
        waits = [await (a if i % 2 else b).take("patients.test") for i in range(10)]
        other = await a.take("elsewhere.test")
        await first.aclose()
        await second.aclose()
        return waits, other

    waits, other = run(scenario())

    assert waits[:5] == [0] * 5
    assert all(w > 0 for w in waits[5:])  # the sixth token is refused whichever client asks
    assert other == 0  # buckets are per domain


def test_bucket_refills_at_its_rate():
    async def scenario():
        client = redis_client()
        bucket = DomainTokenBucket(client, rate=50, burst=1, prefix=_prefix())
        first = await bucket.take("patients.test")
        refused = await bucket.take("patients.test")
        await asyncio.sleep(refused + 0.01)
        later = await bucket.take("patients.test")
        await client.aclose()
        return first, refused, later

    first, refused, later = run(scenario())
    assert first == 0
    assert 0 < refused <= 0.02
    assert later == 0


def test_mx_concurrency_is_limited_across_clients_and_released():
    async def scenario():
        prefix = _prefix()
        one, two = redis_client(), redis_client()
        a = MxConcurrency(one, limit=2, prefix=prefix)
        b = MxConcurrency(two, limit=2, prefix=prefix)
        leases = [await a.acquire("mx.good.test"), await b.acquire("mx.good.test")]
        third = await a.acquire("mx.good.test")
        await b.release("mx.good.test", leases[0])
        fourth = await b.acquire("mx.good.test")
        await one.aclose()
        await two.aclose()
        return leases, third, fourth

    leases, third, fourth = run(scenario())
    assert all(leases)
    assert third is None
    assert fourth is not None


def test_rate_limited_messages_are_deferred_not_sent(kit, transport):
    async def scenario():
        client = redis_client()
        bucket = DomainTokenBucket(client, rate=0.01, burst=2, prefix=_prefix())
        messages = [phi_message(f"m{i}", f"p{i}@good.test") for i in range(4)]
        policy = TlsPolicy(domain="good.test", source=Source.STARTTLS_PROBE)
        outcomes = await deliver_batch(
            MxRoute.from_mx(kit["good"].mx()),
            messages,
            policy,
            transport=transport,
            throttle=bucket,
            throttle_wait=0.1,
        )
        await client.aclose()
        return outcomes

    outcomes = run(scenario())
    assert [o.status for o in outcomes] == [Status.DELIVERED] * 2 + [Status.DEFERRED] * 2
    assert outcomes[2].reason == "rate limited"
    assert len(kit["good"].messages) == 2


def test_full_mx_defers_the_batch_without_connecting(kit, transport):
    async def scenario():
        client = redis_client()
        limit = MxConcurrency(client, limit=1, prefix=_prefix())
        held = await limit.acquire("mx.good.test")
        policy = TlsPolicy(domain="good.test", source=Source.STARTTLS_PROBE)
        outcomes = await deliver_batch(
            MxRoute.from_mx(kit["good"].mx()),
            [phi_message("m", "p@good.test")],
            policy,
            transport=transport,
            concurrency=limit,
        )
        await limit.release("mx.good.test", held)
        await client.aclose()
        return outcomes

    (outcome,) = run(scenario())
    assert outcome.status == Status.DEFERRED
    assert outcome.reason == "MX concurrency limit reached"
    assert kit["good"].connections == 0


def test_a_worker_process_keeps_one_redis_client_across_rounds(settings):
    """The shared limits' client is the process's, made once (a client per round paid a connection
    and its script loads each time); another REDIS_URL gets a client of its own."""
    from delivery.smtp.pool import ProcessSessions, process_sessions_close

    process = ProcessSessions.current()
    try:
        first = process.redis()
        assert process.redis() is first
        assert process.run(first.ping()) is True  # usable on the process's loop, round after round
        assert process.run(first.ping()) is True
        settings.REDIS_URL = settings.REDIS_URL.rsplit("/", 1)[0] + "/5"
        other = process.redis()
        assert other is not first
        assert process.redis() is other
    finally:
        process_sessions_close()
