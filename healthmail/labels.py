"""The label registry: every code a page may show (a gate refusal, a status, a bounce class, a
breakdown dimension) has one readable, translatable label, registered by the app that owns the code.

Core module: it knows no domain app. Apps register their codes in `AppConfig.ready()`:

    labels.register_choices("campaign_status", Campaign.Status)
    labels.register("gate", {"no_opt_in": _("Never opted in to the topic"), ...})

Templates print `{{ code|label:"gate" }}` ({% load labels %}); Python calls `label("gate", code)`.
A code without a label is a bug: it falls back to a readable form of the code so the page still
works, is logged, and raises `MissingLabel` when `LABELS_STRICT` is on (tests turn it on), so the
test that renders the pages fails on the first raw code.

Sources (a campaign, a journey) are named the same way: the app that owns a source type registers a
function that names its ids, so a lower app's page (the Sending page) shows "Flu campaign", never
the campaign's UUID.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.conf import settings
from django.db.models import Choices
from django.utils.translation import gettext_lazy as _

logger = logging.getLogger(__name__)

# kind -> code -> label (lazy translation strings). Filled once at start-up by AppConfig.ready().
_LABELS: dict[str, dict[str, Any]] = {}
# source type -> function(tenant, ids) -> {id: name}
_SOURCE_NAMERS: dict[str, Callable[[Any, list[str]], dict[str, str]]] = {}


class MissingLabel(LookupError):
    """A code reached a page without a registered label (raised only when LABELS_STRICT is on)."""


def register(kind: str, labels: Mapping[str, Any]) -> None:
    """Add labels of one kind. Registering the same code twice with another label is refused: one
    code, one meaning."""
    known = _LABELS.setdefault(kind, {})
    for code, text in labels.items():
        if code in known and str(known[code]) != str(text):
            raise ValueError(f"label {kind}:{code} registered twice ({known[code]!r} and {text!r})")
        known[code] = text


def register_choices(kind: str, choices: type[Choices]) -> None:
    """A TextChoices class's own labels (already written for people)."""
    register(kind, dict(zip(choices.values, choices.labels, strict=True)))


def kinds() -> list[str]:
    return sorted(_LABELS)


def codes(kind: str) -> set[str]:
    return set(_LABELS.get(kind, {}))


def all_codes() -> set[str]:
    return {code for known in _LABELS.values() for code in known}


def has_label(kind: str, code: str) -> bool:
    return code in _LABELS.get(kind, {})


def _fallback(code: str) -> str:
    return code.replace("_", " ").replace(".", " ").strip().capitalize()


def label(kind: str, code: Any) -> str:
    """The readable label of `code` in `kind`; "" for an empty code."""
    if code is None or code == "":
        return ""
    text = _LABELS.get(kind, {}).get(str(code))
    if text is not None:
        return str(text)
    if getattr(settings, "LABELS_STRICT", False):
        raise MissingLabel(f"no label for {kind}:{code}")
    logger.warning("labels.missing", extra={"kind": kind, "code": str(code)})
    return _fallback(str(code))


# --- Names of message sources ----------------------------------------------------------------------


def register_source_namer(source_type: str, namer: Callable[[Any, list[str]], dict[str, str]]) -> None:
    _SOURCE_NAMERS[source_type] = namer


def source_names(*, tenant: Any, sources: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """{(source type, id): what a person reads}: the campaign's or journey's name, or a plain
    description when the source has no name (an API message, a deleted campaign) — never the id."""
    by_type: dict[str, list[str]] = {}
    for source_type, source_id in sources:
        by_type.setdefault(source_type, []).append(source_id)
    names: dict[tuple[str, str], str] = {}
    for source_type, ids in by_type.items():
        namer = _SOURCE_NAMERS.get(source_type)
        found = namer(tenant, [i for i in ids if i]) if namer else {}
        kind_label = label("source_type", source_type)
        for source_id in ids:
            name = found.get(source_id)
            if name:
                names[(source_type, source_id)] = name
            elif source_id and namer is None:
                # A caller's own reference (an API message): theirs to read, not one of our ids.
                names[(source_type, source_id)] = f"{kind_label} {source_id}"
            elif source_id:
                names[(source_type, source_id)] = str(_("%(kind)s (not found)") % {"kind": kind_label})
            else:
                names[(source_type, source_id)] = str(
                    _("%(kind)s without a reference") % {"kind": kind_label}
                )
    return names
