"""The two-proportion z-test an A/B comparison is judged by (no SciPy: the normal tail is erfc).

H0: both variants have the same rate. With x successes out of n in each arm, the pooled rate
p = (x1 + x2) / (n1 + n2) gives the standard error sqrt(p (1 - p) (1/n1 + 1/n2)), z is the
difference of the rates over it, and the two-sided p-value is P(|Z| >= |z|) = erfc(|z| / sqrt 2).
The normal approximation needs enough of both outcomes in each arm (at least 5 successes and 5
failures, the usual textbook rule); below that no verdict is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_OUTCOMES = 5
ALPHA = 0.05


@dataclass(frozen=True)
class ProportionTest:
    rate_a: float
    rate_b: float
    z: float | None  # None: the test does not apply (see `note`)
    p_value: float | None
    note: str

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < ALPHA


def two_proportion_test(
    *, successes_a: int, trials_a: int, successes_b: int, trials_b: int
) -> ProportionTest:
    """The pooled two-sided z-test of successes_a/trials_a against successes_b/trials_b."""
    for name, successes, trials in (("A", successes_a, trials_a), ("B", successes_b, trials_b)):
        if trials < 0 or successes < 0 or successes > trials:
            raise ValueError(f"variant {name}: {successes} successes out of {trials} is not a proportion")
    if not trials_a or not trials_b:
        return ProportionTest(0.0, 0.0, None, None, "No messages sent in one of the variants yet.")
    rate_a, rate_b = successes_a / trials_a, successes_b / trials_b
    small = min(successes_a, trials_a - successes_a, successes_b, trials_b - successes_b)
    if small < MIN_OUTCOMES:
        return ProportionTest(
            rate_a,
            rate_b,
            None,
            None,
            f"Too few results to judge: each variant needs at least {MIN_OUTCOMES} of each outcome.",
        )
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    error = math.sqrt(pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b))
    z = (rate_a - rate_b) / error
    p_value = math.erfc(abs(z) / math.sqrt(2))
    if p_value < ALPHA:
        leader = "A" if rate_a > rate_b else "B"
        note = (
            f"Variant {leader} did better, and the difference is statistically significant "
            f"(two-proportion z-test, z = {z:.2f}, p = {p_value:.3f} < {ALPHA})."
        )
    else:
        note = (
            f"The difference could be chance: not statistically significant "
            f"(two-proportion z-test, z = {z:.2f}, p = {p_value:.3f} ≥ {ALPHA})."
        )
    return ProportionTest(rate_a, rate_b, z, p_value, note)
