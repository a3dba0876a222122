"""The layer contracts of pyproject.toml ([tool.importlinter], run by `make lint`) hold today and
break on a new violation: each case below adds one import to the real graph and expects red."""

from __future__ import annotations

from pathlib import Path

import pytest
from importlinter.application import use_cases
from importlinter.application.app_config import settings as linter_settings
from importlinter.configuration import configure

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


class _GraphWith:
    """The real import graph plus the imports a case adds."""

    def __init__(self, builder, extra: list[tuple[str, str]]):
        self.builder, self.extra = builder, extra

    def build(self, **options):
        graph = self.builder.build(**options)
        for importer, imported in self.extra:
            graph.add_import(importer=importer, imported=imported, line_number=1, line_contents="import x")
        return graph


def _lint(extra: list[tuple[str, str]]) -> bool:
    """lint-imports as `make lint` runs it, on the real graph plus `extra`: True when all hold."""
    configure()
    real = linter_settings.GRAPH_BUILDER
    linter_settings.configure(GRAPH_BUILDER=_GraphWith(real, extra))
    try:
        return use_cases.lint_imports(
            config_filename=str(PYPROJECT), cache_dir=None, no_logo=True, is_debug_mode=True
        )
    finally:
        linter_settings.configure(GRAPH_BUILDER=real)


def test_the_contracts_hold_today(capsys):
    assert _lint([]) is True, capsys.readouterr().out
    assert "2 kept, 0 broken" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        pytest.param("healthmail.tenants.models", "contacts.models", id="foundation-imports-a-domain-app"),
        pytest.param(
            "healthmail.accounts.roles", "campaigns.services.campaigns", id="foundation-imports-campaigns"
        ),
        pytest.param("audit.services", "consent.models", id="audit-imports-a-domain-app"),
        pytest.param("healthmail.accounts.services", "audit.services", id="foundation-imports-audit"),
        pytest.param("contacts.services", "journeys.models", id="app-cycle-contacts-journeys"),
        pytest.param("delivery.engine.gate", "campaigns.models", id="delivery-imports-campaigns"),
        pytest.param("healthmail.tenants.models", "healthmail.sysmail.models", id="tenants-sysmail-cycle"),
        pytest.param("healthmail.tenants.services", "healthmail.accounts.roles", id="tenants-accounts-cycle"),
        pytest.param("healthmail.crypto.keys", "healthmail.web.middleware", id="crypto-web-cycle"),
    ],
)
def test_a_new_violation_breaks_a_contract(importer, imported, capsys):
    assert _lint([(importer, imported)]) is False
    out = capsys.readouterr().out
    assert "BROKEN" in out
    assert importer.rsplit(".", 1)[0].split(".")[-1] in out  # the report names where it came from
