"""What a test costs, for measuring the schemathesis run (docs/api.md, "What a case costs"): load with
`-p tests.api.case_cost`; at the end each process writes the CPU and wall time of its tests' calls and
the queries they sent, by their first words, to CASE_COST_OUT.<pid> (default /tmp/case-cost)."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

_queries: Counter[str] = Counter()
_totals = {"calls": 0.0, "cpu": 0.0, "wall": 0.0}


def _words(sql: str) -> str:
    """The first words of a query; savepoint statements by their verb, as each names its own savepoint."""
    words = sql.split()
    if (
        words[:1] == ["SAVEPOINT"]
        or words[:2] == ["RELEASE", "SAVEPOINT"]
        or words[:3] == ["ROLLBACK", "TO", "SAVEPOINT"]
    ):
        return " ".join(words[:-1])
    return " ".join(words[:3])[:60]


def _count(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
    _queries[_words(sql)] += 1
    return execute(sql, params, many, context)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    from django.db import connection

    cpu, wall = time.process_time(), time.perf_counter()
    with connection.execute_wrapper(_count):
        yield
    _totals["cpu"] += time.process_time() - cpu
    _totals["wall"] += time.perf_counter() - wall
    _totals["calls"] += 1


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _totals["calls"]:
        return
    path = f"{os.environ.get('CASE_COST_OUT') or '/tmp/case-cost'}.{os.getpid()}"  # noqa: S108
    with open(path, "w") as out:
        out.write(
            f"calls {_totals['calls']:.0f} cpu {_totals['cpu']:.1f}s wall {_totals['wall']:.1f}s "
            f"queries {sum(_queries.values())}\n"
        )
        out.writelines(f"{count:8d}  {words}\n" for words, count in _queries.most_common(40))
