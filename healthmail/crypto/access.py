"""The gate between people and decrypted PHI.

While a person or API client is being served (`guarded()`, opened by TenantMiddleware), an
encrypted field decrypts only inside `audit.phi.phi_access(...)`, which records who read which
fields of which object and why. A view that forgets to record its access fails loudly instead of
leaking silently. Background work (delivery, imports, retention) is not guarded: it reads PHI as the
system, and records its own events where policy asks.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.db.models import Model


class PhiAccessNotRecorded(Exception):
    """PHI was about to be decrypted for a person without an audited access."""


@dataclass(frozen=True)
class Grant:
    model: str  # app_label.model_name
    fields: frozenset[str]
    object_ids: frozenset[str] | None  # None: any object of the model


_guarded: contextvars.ContextVar[bool] = contextvars.ContextVar("phi_guarded", default=False)
_grants: contextvars.ContextVar[tuple[Grant, ...]] = contextvars.ContextVar("phi_grants", default=())


@contextmanager
def guarded() -> Iterator[None]:
    token = _guarded.set(True)
    try:
        yield
    finally:
        _guarded.reset(token)


@contextmanager
def granted(grant: Grant) -> Iterator[None]:
    token = _grants.set((*_grants.get(), grant))
    try:
        yield
    finally:
        _grants.reset(token)


def check(instance: Model, field_name: str) -> None:
    if not _guarded.get():
        return
    model = instance._meta.label_lower
    object_id = str(instance.pk)
    for grant in _grants.get():
        if grant.model == model and field_name in grant.fields:
            if grant.object_ids is None or object_id in grant.object_ids:
                return
    raise PhiAccessNotRecorded(
        f"Reading {model}.{field_name} for a person needs an audited phi_access() "
        "naming the field and a purpose."
    )
