"""The engine's message builder: the fast path gives what build_message gives (decoded), refuses what
it refuses, and the rules deciding paths and retries."""

from __future__ import annotations

import email
import email.policy
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from delivery.engine import decide
from delivery.engine.compose import build_simple
from delivery.models import EncryptionPolicy, Message
from delivery.smtp.message import UnsafeMessage, build_message
from delivery.smtp.outcomes import Outcome, RetrySchedule, Status

HEADERS = [
    ("From", '"Synthetic Clinic, A" <care@mail.clinic-a.test>'),
    ("To", "pat@patients.test"),
    ("Subject", "Your appointment"),
    ("Date", "Mon, 05 Jan 2026 10:00:00 +0000"),
    ("Message-ID", "<abc@mail.clinic-a.test>"),
    ("List-Unsubscribe", "<https://healthmail.test/p/unsubscribe/" + "t" * 180 + "/>"),
    ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
]


def _parts(data: bytes) -> tuple[dict, list[tuple[str, str]]]:
    parsed = email.message_from_bytes(data, policy=email.policy.SMTP)
    headers = {name: str(parsed[name]) for name, _ in HEADERS}
    parts = [
        (part.get_content_type(), part.get_content()) for part in parsed.walk() if not part.is_multipart()
    ]
    return headers, parts


body_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=400)


@settings(max_examples=300, deadline=None)
@given(text=body_text, html=st.one_of(st.none(), body_text))
def test_the_fast_builder_matches_build_message(text, html):
    fast = build_simple(HEADERS, text=text, html=html)
    slow = build_message(HEADERS, text=text, html=html)

    assert fast is not None
    assert _parts(fast) == _parts(slow)
    assert all(len(line) <= 998 for line in fast.split(b"\r\n"))
    assert b"\n" not in fast.replace(b"\r\n", b"")


def test_the_fast_builder_keeps_long_urls_whole_and_leaves_unicode_headers_to_build_message():
    fast = build_simple(HEADERS, text="hi", html="<p>hi</p>")
    assert b"\r\nList-Unsubscribe: <https://healthmail.test/p/unsubscribe/" + b"t" * 180 + b"/>\r\n" in fast
    assert build_simple([("Subject", "Résultats")], text="x") is None  # RFC 2047: the email package


@pytest.mark.parametrize("value", ["a\r\nBcc: x@y.test", "a\nb", "a\x00b", "=?utf-8?q?a=0D=0ABcc:_x?="])
def test_the_fast_builder_refuses_header_injection(value):
    with pytest.raises(UnsafeMessage):
        build_simple([("Subject", value)], text="x")


P = EncryptionPolicy


@pytest.mark.parametrize(
    ("policy", "waiver", "path", "expected"),
    [
        (P.TLS_ELSE_PORTAL, False, decide.Path.DIRECT, decide.Path.PORTAL),
        (P.TLS_ELSE_PORTAL, True, decide.Path.DIRECT, decide.Path.WAIVER),
        (P.TLS_ELSE_FAIL, True, decide.Path.DIRECT, decide.Path.WAIVER),
        (P.TLS_ELSE_FAIL, False, decide.Path.DIRECT, None),
        (P.PORTAL_ALWAYS, True, decide.Path.PORTAL, None),
        (P.TLS_ELSE_PORTAL, True, decide.Path.WAIVER, decide.Path.PORTAL),
        (P.TLS_ELSE_FAIL, True, decide.Path.WAIVER, None),
    ],
)
def test_a_refusal_never_leads_to_plaintext_without_a_waiver(policy, waiver, path, expected):
    fallback = decide.after_refusal(
        path=path, encryption_policy=policy, waiver_allowed=waiver, reason="no TLS"
    )

    assert fallback.path == expected
    if expected is None:
        assert fallback.state in (Message.State.FAILED, Message.State.DEFERRED)
        assert "no TLS" in fallback.reason


def test_only_non_phi_opportunistic_mail_skips_verified_tls():
    assert decide.needs_verified_tls(uses_phi=False, encryption_policy=P.OPPORTUNISTIC) is False
    for policy in (P.TLS_ELSE_PORTAL, P.TLS_ELSE_FAIL, P.PORTAL_ALWAYS):
        assert decide.needs_verified_tls(uses_phi=False, encryption_policy=policy) is True
    assert decide.needs_verified_tls(uses_phi=True, encryption_policy=P.OPPORTUNISTIC) is True


def test_a_message_held_for_the_portal_stays_there():
    assert (
        decide.first_path(encryption_policy=P.TLS_ELSE_PORTAL, previous_path="portal") == decide.Path.PORTAL
    )
    assert decide.first_path(encryption_policy=P.TLS_ELSE_PORTAL, previous_path="") == decide.Path.DIRECT


def test_retries_back_off_and_never_started_sends_come_back_soon():
    now = datetime(2026, 1, 5, tzinfo=UTC)
    schedule = RetrySchedule(jitter=0)
    kwargs = {"first_attempt_at": now, "now": now, "schedule": schedule, "soon": timedelta(seconds=5)}

    limited = decide.retry_after(
        outcome=Outcome("k", Status.DEFERRED, reason="rate limited"), attempt=3, **kwargs
    )
    third = decide.retry_after(
        outcome=Outcome("k", Status.DEFERRED, code=451, reply="later"), attempt=3, **kwargs
    )
    late = decide.retry_after(
        outcome=Outcome("k", Status.DEFERRED, code=451),
        attempt=9,
        **{**kwargs, "first_attempt_at": now - timedelta(days=5)},
    )

    assert limited.not_before == now + timedelta(seconds=5)
    assert third.not_before == now + timedelta(minutes=20)
    assert third.reason == "451 later"
    assert late.state == Message.State.EXPIRED


def test_batched_tokens_share_the_transport_buckets_rate():
    """Taking tokens 4 at a time, two workers together still get no more than the burst."""
    import asyncio

    from delivery.engine.transport import BatchedTokenBucket
    from delivery.smtp.throttle import DomainTokenBucket, redis_client

    async def scenario():
        prefix = f"hm-test:{uuid.uuid4().hex}"
        first, second = redis_client(), redis_client()
        a = BatchedTokenBucket(first, rate=0.01, burst=10, prefix=prefix, chunk=4)
        b = BatchedTokenBucket(second, rate=0.01, burst=10, prefix=prefix, chunk=4)
        plain = DomainTokenBucket(first, rate=0.01, burst=10, prefix=prefix)  # a per-message taker
        granted = [await a.take("patients.test") == 0 for _ in range(6)]
        granted += [await b.take("patients.test") == 0 for _ in range(6)]
        granted.append(await plain.take("patients.test") == 0)
        await asyncio.gather(first.aclose(), second.aclose())
        return granted

    granted = asyncio.run(scenario())

    assert granted[:6] == [True] * 6
    # a took 8 (two chunks), b the 2 left one at a time: never more than the burst, whatever the
    # chunks; the 2 tokens a holds unused are lost (the rate errs low).
    assert granted[6:] == [True, True, False, False, False, False, False]
