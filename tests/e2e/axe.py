"""axe-core in every browser test: each page a test visits is checked when it loads, after every htmx
swap, and once more when the test ends (or its browser context closes).

axe-core comes from the npm registry (package.json) and is read from node_modules, then given to each
browser context as an init script, so no page of ours has to load it (a coming Content-Security-Policy
would forbid that). The page reports through a Playwright binding; the Python side only appends to a
list, because calling Playwright from inside an event callback of the sync API can deadlock.

Serious and critical violations fail the test. Minor and moderate ones go to the triage list
artifacts/axe-triage.jsonl, one JSON line per rule per page, triaged in docs/accessibility.md.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

FAILING_IMPACTS = frozenset({"serious", "critical"})
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
TRIAGE = ARTIFACTS / "axe-triage.jsonl"  # minor and moderate violations, for triage
CHECKED = ARTIFACTS / "axe-pages.jsonl"  # which pages each test had checked (the report's coverage)

# Rules for WCAG 2.0/2.1 A and AA plus axe's best practices. Only the top document is checked: the
# portal shows the sender's HTML in a sandboxed frame without scripts, which the template lint checks.
RUN_OPTIONS = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]},
    "iframes": False,
    "resultTypes": ["violations"],
}

# Runs in every document before its own scripts.
PAGE_SCRIPT = Path(__file__).with_name("axe_page.js")


def axe_source() -> str:
    path = Path(settings.FRONTEND_NODE_MODULES) / "axe-core" / "axe.min.js"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: run `make frontend`")
    return path.read_text()


@dataclass
class Violation:
    url: str
    rule: str
    impact: str
    help: str
    help_url: str
    targets: list[str]
    html: list[str]

    @property
    def fails(self) -> bool:
        return self.impact in FAILING_IMPACTS

    def describe(self) -> str:
        shown = "; ".join(
            f"{target} -> {html}" for target, html in zip(self.targets[:3], self.html[:3], strict=False)
        )
        return (
            f"[{self.impact}] {self.rule} on {self.url}: {self.help} ({len(self.targets)} element(s)) {shown}"
        )


@dataclass
class AxeAudit:
    """The violations one test's pages showed, keyed so a page checked twice reports once."""

    test_id: str
    found: dict[tuple[str, str, str], Violation] = field(default_factory=dict)
    pages_checked: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    ignored: set[str] = field(default_factory=set)

    def watch(self, context) -> None:
        """Check every page of `context`: axe in each document, a report binding, a final run on close."""
        context.add_init_script(script=axe_source())
        page_script = PAGE_SCRIPT.read_text().replace("__OPTIONS__", json.dumps(RUN_OPTIONS))
        context.add_init_script(script=page_script)
        context.expose_binding("__axeReport", lambda _source, report: self.record(report))
        close = context.close

        def close_after_checking(**kwargs):
            self.check_open_pages(context)
            close(**kwargs)

        context.close = close_after_checking

    def record(self, report: dict) -> None:
        url = report["url"]
        if url in self.ignored:
            return
        self.pages_checked.add(url)
        if report.get("error"):
            self.errors.append(f"axe could not check {url}: {report['error']}")
        for item in report["violations"]:
            targets = [node["target"] for node in item["nodes"]]
            key = (url, item["id"], "|".join(targets))
            self.found[key] = Violation(
                url=url,
                rule=item["id"],
                impact=item["impact"] or "minor",
                help=item["help"],
                help_url=item["helpUrl"],
                targets=targets,
                html=[node["html"] for node in item["nodes"]],
            )

    def check_open_pages(self, context) -> None:
        """Run axe on every open page now and wait for it, so the last state of each page counts too."""
        for page in context.pages:
            if page.is_closed() or not page.url.startswith("http"):
                continue
            try:
                page.evaluate("() => window.__healthmailAxeRun && window.__healthmailAxeRun('end')")
            except Exception as error:  # noqa: BLE001 - a page that crashed or navigated away has nothing to check
                self.pages_checked.add(f"{page.url} (not checked: {error.__class__.__name__})")

    def failures(self) -> list[Violation]:
        return [violation for violation in self.found.values() if violation.fails]

    def verdict(self) -> str:
        """What fails the test ("" when nothing does): serious/critical violations and axe errors."""
        problems = [violation.describe() for violation in self.failures()] + self.errors
        if not problems:
            return ""
        return "Accessibility (axe-core) serious/critical violations:\n" + "\n".join(problems)

    def forget(self) -> None:
        """For the test that breaks a page on purpose: it asserts the violations itself, and the pages
        that had them are not reported again (the final run when the context closes)."""
        self.ignored |= {violation.url for violation in self.found.values()}
        self.found.clear()
        self.errors.clear()

    def write_triage(self) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with CHECKED.open("a") as checked:
            checked.write(json.dumps({"test": self.test_id, "pages": sorted(self.pages_checked)}) + "\n")
        rest = [violation for violation in self.found.values() if not violation.fails]
        if not rest:
            return
        lines = [
            json.dumps(
                {
                    "test": self.test_id,
                    "url": violation.url,
                    "rule": violation.rule,
                    "impact": violation.impact,
                    "help": violation.help,
                    "elements": len(violation.targets),
                    "targets": violation.targets[:5],
                    "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
                }
            )
            for violation in rest
        ]
        with TRIAGE.open("a") as triage:
            triage.write("\n".join(lines) + "\n")
