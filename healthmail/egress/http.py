"""HTTP to a target the SSRF guard checked: connect to the checked address (no second DNS lookup),
verify TLS against the host name, follow no redirect, read a bounded answer."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass

from .ssrf import Target, UnsafeTarget, ensure_connectable


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        ensure_connectable(self._address, self.port)
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float, context: ssl.SSLContext):
        super().__init__(target.host, target.port, timeout=timeout, context=context)
        self._address = target.address
        self._context = context

    def connect(self) -> None:
        ensure_connectable(self._address, self.port)
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


def pinned_connection(
    target: Target, *, timeout: float, ca_file: str | None = None
) -> http.client.HTTPConnection:
    """A connection to `target.address` only (the `connect` checks it again right before dialling)."""
    if target.scheme == "https":
        context = ssl.create_default_context(cafile=ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return _PinnedHTTPSConnection(target, timeout, context)
    return _PinnedHTTPConnection(target, timeout)


class FetchFailed(Exception):
    """A GET that gave no usable answer; the message says why, without the answer's content."""


@dataclass(frozen=True)
class Fetched:
    content_type: str
    body: bytes


def _read(response: http.client.HTTPResponse, max_bytes: int, deadline: float) -> bytes:
    body = b""
    while chunk := response.read1(8192):
        body += chunk
        if len(body) > max_bytes:
            raise FetchFailed(f"the answer is larger than {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise TimeoutError
    return body


def fetch(
    target: Target, *, timeout: float, max_bytes: int, accept: str, ca_file: str | None = None
) -> Fetched:
    """GET a checked target: 200 only (a redirect is not followed), at most `max_bytes`, all of it
    within `timeout` seconds (a server sending a byte at a time does not stretch it)."""
    deadline = time.monotonic() + timeout
    connection = pinned_connection(target, timeout=timeout, ca_file=ca_file)
    try:
        connection.request("GET", target.path, headers={"Accept": accept, "User-Agent": "HealthMail"})
        response = connection.getresponse()
        if response.status != 200:
            raise FetchFailed(f"the server answered {response.status}")
        declared = response.getheader("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise FetchFailed(f"the answer is larger than {max_bytes} bytes")
        return Fetched(response.getheader("Content-Type", ""), _read(response, max_bytes, deadline))
    except UnsafeTarget:
        raise FetchFailed("not a public address") from None
    except TimeoutError:
        raise FetchFailed("no answer in time") from None
    except (OSError, http.client.HTTPException) as failure:
        raise FetchFailed(f"the connection failed ({type(failure).__name__})") from None
    finally:
        connection.close()
