"""The disclosure policy: every aggregate a viewer without PHI access sees passes through `disclose`.

A count over contacts chosen by health information tells a viewer something about the people in it.
Small-cell suppression alone does not protect them: two allowed counts that differ by one extra
condition single a person out (differencing). The policy therefore combines four defences, so that
no answer, nor any set of answers within the budget, pins one person's clinical attribute down
(the argument is in docs/privacy.md):

1. **Noise, deterministic per query**: a sensitive count is released as `count + Laplace(scale)`,
   where the Laplace draw is derived from a keyed MAC of the tenant's index key over the canonical
   query. The same query always gets the same answer, so repeating it averages nothing away; two
   different queries get independent draws, so subtracting them leaves the noise of both.
2. **Rounding to a base** on top of the noise, and the released number never below `k`.
3. **Threshold on the cell and its complement**, applied to the released (noisy) value, so the
   masking decision is itself a function of the noisy answer and cannot be used as an oracle.
4. **Query auditing with a budget**: per actor, a window of recent sensitive queries; a new query
   whose symmetric difference with a recent one is (after noise of its own) under `k` is refused,
   and an actor gets at most `budget` distinct sensitive queries per window. Refusals depend on the
   noisy difference or on the actor's own query count, never on an exact person-level fact.

Viewers with PHI access (who may read the records themselves) get exact counts, masked only below
`k`. A zero is said honestly ("no contact matches") when the criteria use no PHI field, or when the
viewer has PHI access: then a zero says nothing about anyone's health that the viewer could not read.

Core module: it knows no domain app. Callers pass what the policy needs (the canonical query text,
whether the criteria are sensitive, the differences to recent queries) and render what it returns.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from healthmail.accounts.roles import role_can
from healthmail.crypto import blind
from healthmail.errors import ApplicationError

NOISE_KIND = "disclosure-noise"
PHI_SCOPE = "contacts:phi"


class QueryRefused(ApplicationError):
    """A sensitive count that the policy will not answer (too close to a recent one, or over budget)."""

    status_code = 422
    title = "Count not shown"


@dataclass(frozen=True)
class Policy:
    k: int  # smallest group ever shown as a number
    rounding_base: int  # sensitive counts are rounded to a multiple of this
    noise_scale: float  # Laplace scale b of the per-query noise (sensitivity 1: epsilon = 1 / b)
    budget: int  # distinct sensitive queries per actor per window
    window_hours: int  # how long a query stays "recent" for auditing and the budget
    compared: int  # how many recent queries a new one is compared with


@dataclass(frozen=True)
class Viewer:
    """Who is about to see an aggregate: an actor key ("user:<id>", "api_key:<id>") and PHI access."""

    key: str
    phi: bool
    # May choose people by clinical criteria at all. Members of a role that builds segments may (their
    # counts go through the policy); an API key only with the PHI scope, since a key's writes and
    # counts can be scripted without limit (tag one patient, count, compare).
    clinical_criteria: bool = True

    @classmethod
    def for_role(cls, *, user: Any, role: str | None) -> Viewer:
        return cls(key=f"user:{user.pk}", phi=role_can(role, "contacts.view_phi"))

    @classmethod
    def for_api_key(cls, api_key: Any) -> Viewer:
        phi = PHI_SCOPE in api_key.scopes
        return cls(key=f"api_key:{api_key.prefix}", phi=phi, clinical_criteria=phi)

    @classmethod
    def of(cls, request: Any) -> Viewer:
        """The viewer of a web request (a signed-in member) or an API request (a key)."""
        if getattr(request, "api_key", None) is not None:
            return cls.for_api_key(request.api_key)
        auth = getattr(request, "auth", None)
        if auth is not None and hasattr(auth, "scopes"):
            return cls.for_api_key(auth)
        return cls.for_role(user=request.user, role=getattr(request, "role", None))

    @classmethod
    def trusted(cls) -> Viewer:
        """Internal use (snapshots, sending): never shown to a person."""
        return cls(key="system", phi=True)


@dataclass(frozen=True)
class Disclosed:
    value: int | None  # the number that may be shown (None: masked)
    display: str  # what to print, e.g. "about 1,230", "fewer than 11", "0"
    exact: bool  # True when value is the true count
    empty: bool = False  # True only when the true count is 0 and saying so is safe

    def __str__(self) -> str:
        return self.display


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def policy_for(tenant: Any) -> Policy:
    """The platform defaults (environment), raised or coarsened by the tenant's own parameters."""
    k = int(_setting("DISCLOSURE_K", 11))
    base = int(_setting("DISCLOSURE_ROUNDING_BASE", 10))
    budget = int(_setting("DISCLOSURE_BUDGET", 200))
    # A tenant may be stricter than the platform, never looser.
    k = max(k, getattr(tenant, "disclosure_k", None) or 0)
    base = max(base, getattr(tenant, "disclosure_rounding_base", None) or 0)
    tenant_budget = getattr(tenant, "disclosure_budget", None)
    budget = min(budget, tenant_budget) if tenant_budget else budget
    return Policy(
        k=k,
        rounding_base=max(1, base),
        noise_scale=float(_setting("DISCLOSURE_NOISE_SCALE", 5.0)),
        budget=budget,
        window_hours=int(_setting("DISCLOSURE_WINDOW_HOURS", 24)),
        compared=int(_setting("DISCLOSURE_COMPARED_QUERIES", 20)),
    )


def enabled() -> bool:
    """Tests switch the policy off (DISCLOSURE_ENABLED=False) to prove the attack suite can fail."""
    return bool(_setting("DISCLOSURE_ENABLED", True))


def canonical(query: Any) -> str:
    """One text per query: JSON with sorted keys and no spacing (what the noise is keyed by)."""
    return json.dumps(query, sort_keys=True, separators=(",", ":"), default=str)


def _uniform(tenant: Any, label: str) -> float:
    """A number in (0, 1) fixed by the tenant's index key and the label, unknown without the key."""
    digest = blind.blind_index(tenant, NOISE_KIND, label)
    return (int.from_bytes(digest[:8], "big") + 0.5) / 2.0**64


def noise(tenant: Any, label: str, scale: float) -> float:
    """A Laplace(0, scale) draw, deterministic in (tenant key, label): inverse CDF of a keyed uniform."""
    u = _uniform(tenant, label) - 0.5
    return -scale * math.copysign(1.0, u) * math.log(1.0 - 2.0 * abs(u))


def _rounded(value: float, base: int) -> int:
    return int(base * math.floor(value / base + 0.5))


def _masked(policy: Policy) -> Disclosed:
    return Disclosed(None, f"fewer than {policy.k}", exact=False)


def disclose(
    count: int,
    *,
    tenant: Any,
    viewer: Viewer,
    query: str,
    sensitive: bool,
    population: int | None = None,
) -> Disclosed:
    """What `viewer` may see of `count`, the true size of the group that `query` names.

    `sensitive`: the group is chosen by health information (a PHI criterion, a PHI campaign's
    audience). `population`: the size of the group the complement is taken in, when one exists.
    """
    policy = policy_for(tenant)
    if not enabled():
        return Disclosed(count, f"{count:,}", exact=True, empty=count == 0)
    if not sensitive or viewer.phi:
        if count == 0:
            return Disclosed(0, "0", exact=True, empty=True)
        if count < policy.k:
            return _masked(policy)
        return Disclosed(count, f"{count:,}", exact=True)
    released = _rounded(count + noise(tenant, query, policy.noise_scale), policy.rounding_base)
    if released < policy.k:
        return _masked(policy)
    if population is not None and population - released < policy.k:
        # The complement (everyone else) would be a small group: show only that it is nearly all.
        return Disclosed(None, "nearly all", exact=False)
    return Disclosed(released, f"about {released:,}", exact=False)


def disclose_many(
    counts: dict[str, int], *, tenant: Any, viewer: Viewer, query: str, sensitive: bool
) -> dict[str, Disclosed]:
    """Several cells of one report (each keyed by the report's query and the cell's name)."""
    total = sum(counts.values())
    return {
        name: disclose(
            count,
            tenant=tenant,
            viewer=viewer,
            query=f"{query}#{name}",
            sensitive=sensitive,
            population=total if sensitive else None,
        )
        for name, count in counts.items()
    }


def audit_check(
    *,
    tenant: Any,
    viewer: Viewer,
    query: str,
    used: Iterable[str],
    differences: Callable[[], dict[str, int]],
    spent: Iterable[str] | None = None,
    unit: str | None = None,
) -> None:
    """Refuse a sensitive query that would, with the viewer's recent ones, isolate a small group.

    `used`: the viewer's sensitive queries in the window (canonical texts, repeats included);
    `differences()`: for each recent answered query, how many people are in exactly one of it and
    this one (evaluated in the database, only when needed). `spent` and `unit`: the budget units of
    the recent queries and of this one (default: the queries themselves). The cells of one
    breakdown share a unit: they are disjoint groups, so together they cost what one count costs
    (parallel composition), while each is still compared like a query of its own.
    """
    if viewer.phi or not enabled():
        return
    policy = policy_for(tenant)
    used = set(used)
    if query in used:
        return  # the same query: the same answer, already given
    units = set(used if spent is None else spent)
    if (unit or query) not in units and len(units) >= policy.budget:
        raise QueryRefused(
            f"You have run {policy.budget} different counts on clinical criteria in the last "
            f"{policy.window_hours} hours, the most the privacy policy allows. Reuse a count you ran, "
            "or ask someone with PHI access.",
            code="disclosure_budget_spent",
        )
    for other, difference in differences().items():
        pair = "\x00".join(sorted((query, other)))
        if difference + noise(tenant, f"pair\x00{pair}", policy.noise_scale) < policy.k:
            raise QueryRefused(
                "These criteria pick almost the same people as a count you ran recently, so the "
                "difference could single someone out; this count is not shown. Change the criteria "
                "more, or ask someone with PHI access.",
                code="disclosure_too_close",
            )


# --- Registry: every view and API operation that shows an aggregate declares it --------------------


def shows_aggregates(view: Any) -> Any:
    """Mark a view (function or APIView class) whose counts all come from `disclose`.

    tests/privacy walks the URL configuration and the OpenAPI schema: a page or operation that
    shows a count without this mark fails the build."""
    view.shows_aggregates = True
    return view
