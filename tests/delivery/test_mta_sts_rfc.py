"""MTA-STS read exactly as RFC 8461 sections 3.1-3.3: the TXT record, the policy file, its media
type; the RFC's own examples are accepted and every departure from the grammar means "no policy",
with the reason logged."""

from __future__ import annotations

import logging

import pytest

from delivery.tls.mta_sts import (
    MAX_AGE_LIMIT,
    PolicyError,
    media_type_is_text_plain,
    parse_policy,
    txt_policy,
    txt_policy_id,
)
from delivery.tls.policy import Source, tls_policy_resolve
from delivery.tls.probe import starttls_prober

from .conftest import run
from .test_tls_policy import _fetcher

# RFC 8461 3.1 and 3.2, verbatim.
RFC_TXT = "v=STSv1; id=20160831085700Z;"
RFC_POLICY = (
    "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n"
    "mx: backupmx.example.com\r\nmax_age: 604800\r\n"
)


def test_the_rfc_examples_are_accepted():
    assert txt_policy_id((RFC_TXT,)) == "20160831085700Z"
    policy = parse_policy(RFC_POLICY, policy_id="20160831085700Z")
    assert policy.mode == "enforce"
    assert policy.mx == ("mail.example.com", "*.example.net", "backupmx.example.com")
    assert policy.max_age == 604800
    assert policy.allows("mx1.example.net")
    assert not policy.allows("a.mx1.example.net")  # the wildcard is one leftmost label only


def test_lf_lines_read_like_crlf_lines():
    assert parse_policy(RFC_POLICY.replace("\r\n", "\n"), policy_id="x") == parse_policy(
        RFC_POLICY, policy_id="x"
    )


@pytest.mark.parametrize(
    "records",
    [
        ("v=STSv1; id=20160831085700Z;", "v=spf1 -all"),  # other TXT records are discarded
        ("v=STSv1;id=abc",),
        ("v=STSv1 ; id=abc",),  # whitespace around the delimiter is allowed
        ("v=STSv1; id=abc; ext_1=value.with:colons",),  # extensions are ignored
        ("v=STSv1; id=" + "a" * 32,),
    ],
)
def test_valid_txt_records(records):
    assert txt_policy_id(records) is not None


@pytest.mark.parametrize(
    ("records", "reason"),
    [
        (("v=STSv1; id=a", "v=STSv1; id=b"), "2 v=STSv1 TXT records"),
        (("v=STSv1; id=a", "v=STSv1; id=a"), "2 v=STSv1 TXT records"),
        (("v=STSv1; id=",), "exactly one id"),
        (("v=STSv1; id=" + "a" * 33,), "exactly one id"),
        (("v=STSv1; id=2016-08-31",), "exactly one id"),
        (("v=STSv1; id=abc; id=def",), "exactly one id"),
        (("v=STSv1; id=abc; bad value",), "malformed field"),
        (("v=STSv1; id=abc; =x",), "malformed field"),
        (("V=STSv1; id=abc",), "no v=STSv1"),  # case-sensitive, and must come first
        (("id=abc; v=STSv1",), "no v=STSv1"),
        (("v=STSv2; id=abc",), "no v=STSv1"),
        (("v=STSv1",), "no v=STSv1"),
        ((), "no v=STSv1"),
    ],
)
def test_invalid_txt_records_mean_no_policy(records, reason):
    policy_id, why = txt_policy(records)
    assert policy_id is None
    assert reason in why


def _policy(**fields) -> str:
    values = {"version": "STSv1", "mode": "enforce", "mx": "mail.example.com", "max_age": "86400", **fields}
    return "".join(f"{name}: {value}\r\n" for name, value in values.items() if value is not None)


@pytest.mark.parametrize(
    "text",
    [
        _policy(max_age="+600"),
        _policy(max_age="6e2"),
        _policy(max_age="600.0"),
        _policy(max_age="-1"),
        _policy(max_age="0x258"),
        _policy(max_age="12345678901"),  # 11 digits
        _policy(max_age=str(MAX_AGE_LIMIT + 1)),
        _policy(max_age="600 seconds"),
        _policy(max_age=""),
        _policy(max_age=None),
        _policy(mode="Enforce"),
        _policy(mode="strict"),
        _policy(mode=None),
        _policy(version="stsv1"),
        _policy(version=None),
        _policy(mx=""),  # an empty mx line
        _policy(mx=None),  # enforce with no mx
        _policy(mx="*"),
        _policy(mx="mail.*.example.com"),  # a wildcard only as the whole leftmost label
        _policy(mx="*mail.example.com"),
        _policy(mx="*.*.example.com"),
        _policy(mx="mail..example.com"),
        _policy(mx="mail.example.com."),
        _policy(mx="-mail.example.com"),
        _policy(mx="mail example.com"),
        _policy() + "mode: testing\r\n",  # a field required once, twice
        _policy() + "max_age: 60\r\n",
        " " + _policy(),  # a line may not start with whitespace
        _policy() + "no colon here\r\n",
        _policy().replace("\r\n", "\r"),  # a bare CR is not a line end
        _policy().replace("\r\nmx:", "\r\n\r\nmx:"),  # no empty line between fields
        _policy() + "ext: \x01\r\n",
    ],
)
def test_departures_from_the_grammar_are_refused(text):
    with pytest.raises(PolicyError):
        parse_policy(text, policy_id="x")


@pytest.mark.parametrize(
    "text",
    [
        _policy(max_age="0"),  # "non-negative integer seconds" (RFC 8461 3.2)
        _policy(max_age=str(MAX_AGE_LIMIT)),
        _policy(max_age="0000086400"),  # up to ten plain digits
        _policy(mode="none", mx=None),  # mx may be absent only in mode none
        _policy(mode="testing"),
        _policy(mx="*.example.net"),
        _policy(mx="MAIL.Example.COM"),
        _policy() + "extension_1: some value\r\n",
        "version:STSv1\nmode:   enforce\t\nmx: mail.example.com\nmax_age: 1",  # WSP after ":" and at the end
    ],
)
def test_what_the_grammar_allows_is_accepted(text):
    parse_policy(text, policy_id="x")


@pytest.mark.parametrize(
    ("content_type", "accepted"),
    [
        ("text/plain", True),
        ("text/plain; charset=utf-8", True),
        ("TEXT/PLAIN;charset=us-ascii", True),
        ("text/html", False),
        ("text/plainx", False),
        ("text/plain-text", False),
        ("application/octet-stream", False),
        ("", False),
    ],
)
def test_media_type(content_type, accepted):
    assert media_type_is_text_plain(content_type) is accepted


def test_a_policy_served_as_html_is_not_used_and_the_reason_is_logged(kit, transport, caplog):
    kit.policy_server.publish("enforce.test", mode="enforce", mx=["mx.elsewhere.test"])
    kit.policy_server.content_types["mta-sts.enforce.test"] = "text/html"
    resolver = kit.resolver(
        mx={"enforce.test": [kit["good"].mx()]}, txt={"_mta-sts.enforce.test": ["v=STSv1; id=e1"]}
    )
    with caplog.at_level(logging.INFO, logger="delivery.tls.policy"):
        policy = run(
            tls_policy_resolve(
                "enforce.test", resolver=resolver, fetcher=_fetcher(kit), prober=starttls_prober(transport)
            )
        )
    assert policy.source == Source.STARTTLS_PROBE
    assert "media type is not text/plain" in policy.reason
    assert any(getattr(r, "reason", "") == "policy media type is not text/plain" for r in caplog.records)


def test_several_sts_records_mean_no_policy_and_the_reason_is_logged(kit, transport, caplog):
    kit.policy_server.publish("enforce.test", mode="enforce", mx=["mx.elsewhere.test"])
    resolver = kit.resolver(
        mx={"enforce.test": [kit["good"].mx()]},
        txt={"_mta-sts.enforce.test": ["v=STSv1; id=e1", "v=STSv1; id=e2"]},
    )
    with caplog.at_level(logging.INFO, logger="delivery.tls.policy"):
        policy = run(
            tls_policy_resolve(
                "enforce.test", resolver=resolver, fetcher=_fetcher(kit), prober=starttls_prober(transport)
            )
        )
    assert policy.source == Source.STARTTLS_PROBE  # the enforce policy was not applied
    assert kit.policy_server.requests == []  # nor even fetched
    assert any("2 v=STSv1 TXT records" in getattr(r, "reason", "") for r in caplog.records)
