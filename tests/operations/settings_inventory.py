"""An inventory of configuration, read from the source with `ast` (nothing is imported or run):

- which settings the project's code reads: `settings.NAME`, `getattr(settings, "NAME", ...)` on
  `django.conf.settings` under any alias, and calls of a module's own reader helpers (a function
  whose body does `getattr(settings, <its first parameter>, ...)`, e.g. `_setting("NAME", 5)`);
- which environment variables each setting of a settings module is read from: `env(...)`,
  `env.<type>(...)` and `env_secret(...)` (which also reads NAME_FILE) anywhere in its assignment;
- which variables docs/operations.md documents (a table row naming it in backquotes, with a default).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = (
    "healthmail",
    "audit",
    "contacts",
    "consent",
    "segmentation",
    "campaigns",
    "delivery",
    "retention",
    "bench",
)
SETTINGS_MODULES = ("base.py", "production.py", "dev.py")


@dataclass(frozen=True)
class SettingRead:
    name: str
    where: str  # path:line


def _settings_aliases(tree: ast.Module) -> set[str]:
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "django.conf":
            aliases.update(alias.asname or alias.name for alias in node.names if alias.name == "settings")
    return aliases


def _is_settings(node: ast.AST, aliases: set[str]) -> bool:
    return isinstance(node, ast.Name) and node.id in aliases


def _reader_helpers(tree: ast.Module, aliases: set[str]) -> set[str]:
    """Functions that read the setting their first parameter names: `def _setting(name, default)`."""
    helpers = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef) or not node.args.args:
            continue
        parameter = node.args.args[0].arg
        for call in ast.walk(node):
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Name)
                and call.func.id == "getattr"
                and len(call.args) >= 2
                and _is_settings(call.args[0], aliases)
                and isinstance(call.args[1], ast.Name)
                and call.args[1].id == parameter
            ):
                helpers.add(node.name)
    return helpers


def _literal(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _imported(tree: ast.Module) -> set[str]:
    return {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


def reader_helpers(source: str) -> set[str]:
    tree = ast.parse(source)
    return _reader_helpers(tree, _settings_aliases(tree))


def settings_read(
    source: str, filename: str = "<source>", imported_helpers: frozenset[str] = frozenset()
) -> list[SettingRead]:
    """The project settings one module's source reads (upper-case names only). `imported_helpers`:
    reader helpers defined elsewhere in the project, counted where this module imports them."""
    tree = ast.parse(source, filename)
    aliases = _settings_aliases(tree)
    helpers = _reader_helpers(tree, aliases) | (_imported(tree) & imported_helpers)
    found = []
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Attribute) and _is_settings(node.value, aliases):
            name = node.attr
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
            if node.func.id == "getattr" and len(node.args) >= 2 and _is_settings(node.args[0], aliases):
                name = _literal(node.args[1])
            elif node.func.id in helpers:
                name = _literal(node.args[0])
        if name and name.isupper():
            found.append(SettingRead(name, f"{filename}:{node.lineno}"))
    return found


def project_files(root: Path = ROOT) -> Iterable[Path]:
    for package in PROJECT_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" not in path.parts and "settings" not in path.relative_to(root).parts[:2]:
                yield path


def project_settings_read(root: Path = ROOT) -> dict[str, list[str]]:
    sources = {str(path.relative_to(root)): path.read_text(encoding="utf-8") for path in project_files(root)}
    helpers = frozenset().union(*(reader_helpers(source) for source in sources.values()))
    reads: dict[str, list[str]] = {}
    for relative, source in sources.items():
        for read in settings_read(source, relative, helpers):
            reads.setdefault(read.name, []).append(read.where)
    return reads


def _env_variables(node: ast.AST) -> list[str]:
    """Environment variables an expression reads through env(...), env.x(...) or env_secret(...)."""
    names = []
    for call in ast.walk(node):
        if not isinstance(call, ast.Call) or not call.args:
            continue
        func = call.func
        is_env = (isinstance(func, ast.Name) and func.id == "env") or (
            isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "env"
        )
        is_secret = isinstance(func, ast.Name) and func.id == "env_secret"
        variable = _literal(call.args[0])
        if variable and (is_env or is_secret):
            names.append(variable)
            if is_secret:
                names.append(f"{variable}_FILE")
    return names


def settings_environment(source: str) -> dict[str, list[str]]:
    """For every upper-case setting a settings module assigns: the environment variables it reads
    (an empty list: a constant or a value derived from other settings)."""
    tree = ast.parse(source)
    found: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id.isupper():
                found.setdefault(target.id, []).extend(_env_variables(value))
    return found


def all_settings_environment(root: Path = ROOT) -> dict[str, list[str]]:
    merged: dict[str, list[str]] = {}
    for module in SETTINGS_MODULES:
        source = (root / "healthmail" / "settings" / module).read_text(encoding="utf-8")
        for name, variables in settings_environment(source).items():
            merged.setdefault(name, []).extend(variables)
    return merged


def environment_variables_read(root: Path = ROOT) -> set[str]:
    """Every variable the settings modules read, including those inside helpers and nested dicts."""
    variables: set[str] = set()
    for module in SETTINGS_MODULES:
        tree = ast.parse((root / "healthmail" / "settings" / module).read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == "env_secret":
                continue  # the helper's own env(f"{name}_FILE") reads a variable its callers name
            variables.update(_env_variables(node))
    return variables


_ROW = re.compile(r"^\|(?P<names>[^|]*)\|(?P<default>[^|]*)\|(?P<meaning>[^|]*)\|")


def documented_variables(markdown: str) -> dict[str, str]:
    """{variable: its default cell} from the table rows of the guide (a row may name several)."""
    documented = {}
    for line in markdown.splitlines():
        match = _ROW.match(line.strip())
        if not match:
            continue
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", match["names"]):
            documented[name] = match["default"].strip()
    return documented


def configuration_gaps(
    *,
    reads: dict[str, list[str]],
    environment: dict[str, list[str]],
    documented: dict[str, str],
    exempt: set[str],
) -> dict[str, str]:
    """{setting: what is missing} for every setting the code reads: an environment variable in the
    settings modules, a documentation row for each of its variables, a default in that row."""
    gaps = {}
    for name in sorted(reads):
        if name in exempt:
            continue
        variables = environment.get(name) or []
        if not variables:
            gaps[name] = f"no environment variable (read at {reads[name][0]})"
            continue
        undocumented = [v for v in variables if v not in documented]
        if undocumented:
            gaps[name] = f"{', '.join(undocumented)} not in docs/operations.md"
        elif not all(documented[v] for v in variables):
            gaps[name] = "documented without a default"
    return gaps
