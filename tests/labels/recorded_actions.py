"""Every audit action the code base records, read from its source (so a new one needs a label).

`record(action=...)` is keyword-only; the finder reads each call's `action`:
- a string, or either branch of `"a" if x else "b"`;
- a name or attribute the module defines (a constant, an enum member: evaluated in the module);
- a local variable of the calling function (each value assigned to it);
- a parameter of the calling function: the function then forwards an action (`_record(incident,
  user, "incident.open")`), and its own callers' arguments are read the same way, prefix and all
  (`action=f"campaign.{action}"` in `transition_record`).
An argument it cannot read is reported as such: the test fails until it is taught, so no recorded
action escapes the label check.
"""

from __future__ import annotations

import ast
import enum
import importlib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_SKIP = {"tests", "docs", "bench", "node_modules", "migrations", ".venv", ".devstack"}
RECORDERS = {"record"}  # audit.record, services.record, audit_trail.record: all keyword-only


def _consent_kinds() -> list[str]:
    from consent.models import ConsentEvent

    return list(ConsentEvent.Kind.values)


def _review_kinds() -> list[str]:
    from campaigns.models import CampaignApproval

    return list(CampaignApproval.Kind.values)


# Parameters whose callers pass a value chosen at run time (a form's choice, an API field, a loop over
# review kinds): the values the parameter may take. (module, function, parameter) -> values.
DECLARED = {
    ("consent.services", "consent_record", "kind"): _consent_kinds,
    ("campaigns.services.workflow", "campaign_approve", "kind"): _review_kinds,
    ("campaigns.services.workflow", "campaign_reject", "kind"): _review_kinds,
}


@dataclass(frozen=True)
class Forwarder:
    """A function whose parameter `param` (position `index`) becomes the action, after `prefix`."""

    module: str  # where it is defined ("" for the recorders: called from everywhere)
    name: str
    param: str
    index: int
    prefix: str


def _modules() -> list[tuple[str, ast.Module, bool]]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if _SKIP & set(relative.parts):
            continue
        module = ".".join(relative.with_suffix("").parts).removesuffix(".__init__")
        package = path.name == "__init__.py"
        found.append((module, ast.parse(path.read_text(), filename=str(relative)), package))
    return found


def _imported_names(module: str, tree: ast.Module, package: bool) -> dict[str, str]:
    """{name: module it comes from} of every `from ... import name`, relative ones resolved."""
    here = module.split(".") if package else module.split(".")[:-1]
    found = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        base = here[: len(here) - node.level + 1] if node.level else []
        source = ".".join([*base, *([node.module] if node.module else [])])
        for alias in node.names:
            found[alias.asname or alias.name] = source
    return found


def _prefixed(expr: ast.expr) -> bool:
    """f"text{value}": a fixed start and one value."""
    return (
        isinstance(expr, ast.JoinedStr)
        and len(expr.values) == 2
        and isinstance(expr.values[0], ast.Constant)
        and isinstance(expr.values[1], ast.FormattedValue)
    )


def _called(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _functions(tree: ast.Module):
    """(function, every call inside it) for each function, and (None, calls) for module level."""
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    inside = {id(c) for f in functions for c in ast.walk(f) if isinstance(c, ast.Call)}
    for function in functions:
        yield function, [c for c in ast.walk(function) if isinstance(c, ast.Call)]
    yield None, [c for c in ast.walk(tree) if isinstance(c, ast.Call) and id(c) not in inside]


def _params(function) -> list[str]:
    if function is None:
        return []
    args = function.args
    return [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]


class _Finder:
    def __init__(self) -> None:
        self.modules = _modules()
        self.forwarders: dict[str, set[Forwarder]] = {
            name: {Forwarder("", name, "action", -1, "")} for name in RECORDERS
        }
        self.imports = {
            module: _imported_names(module, tree, package) for module, tree, package in self.modules
        }
        self.actions: set[str] = set()
        self.unread: list[str] = []

    def _value(self, module: str, tree, function, expr: ast.expr, prefix: str, where: str) -> None:
        """Add the actions `expr` stands for (with `prefix`); a parameter makes `function` a forwarder."""
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            self.actions.add(prefix + expr.value)
        elif isinstance(expr, ast.IfExp):
            self._value(module, tree, function, expr.body, prefix, where)
            self._value(module, tree, function, expr.orelse, prefix, where)
        elif (
            isinstance(expr, ast.JoinedStr)
            and len(expr.values) == 2
            and isinstance(expr.values[0], ast.Constant)
        ):
            inner = expr.values[1]
            assert isinstance(inner, ast.FormattedValue)
            self._value(module, tree, function, inner.value, prefix + str(expr.values[0].value), where)
        elif isinstance(expr, ast.Name) and expr.id in _params(function):
            params = _params(function)
            index = params.index(expr.id)
            if params and params[0] in ("self", "cls"):
                index -= 1
            positional = expr.id not in [a.arg for a in function.args.kwonlyargs]
            forwarder = Forwarder(module, function.name, expr.id, index if positional else -1, prefix)
            known = self.forwarders.setdefault(function.name, set())
            if forwarder not in known:
                known.add(forwarder)
                self.changed = True
        elif isinstance(expr, ast.Name) and function is not None and self._assigned(function, expr.id):
            for value in self._assigned(function, expr.id):
                self._value(module, tree, function, value, prefix, where)
        elif isinstance(expr, ast.Name | ast.Attribute):
            try:
                value = eval(ast.unparse(expr), vars(importlib.import_module(module)))  # noqa: S307 our own source
            except Exception:  # noqa: BLE001 reported below as unread
                value = None
            if isinstance(value, enum.Enum):
                value = value.value
            if isinstance(value, str):
                self.actions.add(prefix + value)
            else:
                self.unread.append(f"{where}: {ast.unparse(expr)}")
        else:
            self.unread.append(f"{where}: {ast.unparse(expr)}")

    @staticmethod
    def _assigned(function, name: str) -> list[ast.expr]:
        return [
            node.value
            for node in ast.walk(function)
            if isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
        ]

    def run(self) -> None:
        self.changed = True
        while self.changed:
            self.changed = False
            self.actions.clear()
            self.unread.clear()
            for module, tree, _package in self.modules:
                for function, calls in _functions(tree):
                    for call in calls:
                        for forwarder in list(self.forwarders.get(_called(call), ())):
                            expr = self._argument(call, forwarder)
                            if expr is None or not self._calls(module, call, forwarder):
                                continue
                            where = f"{module}:{call.lineno}"
                            declared = DECLARED.get((forwarder.module, forwarder.name, forwarder.param))
                            if declared is not None and not isinstance(expr, ast.Constant):
                                self.actions |= {forwarder.prefix + value for value in declared()}
                            else:
                                self._value(module, tree, function, expr, forwarder.prefix, where)

    def _calls(self, module: str, call: ast.Call, forwarder: Forwarder) -> bool:
        """The call is to this forwarder: a recorder, an attribute of that name (`services.x(...)`),
        or a bare name in its own module or imported from it (two modules' `_record` differ)."""
        if not forwarder.module or isinstance(call.func, ast.Attribute):
            return True
        return module == forwarder.module or self.imports[module].get(forwarder.name) == forwarder.module

    @staticmethod
    def _argument(call: ast.Call, forwarder: Forwarder) -> ast.expr | None:
        for keyword in call.keywords:
            if keyword.arg == forwarder.param:
                return keyword.value
        if 0 <= forwarder.index < len(call.args):
            return call.args[forwarder.index]
        return None


def recorded_actions() -> tuple[set[str], list[str]]:
    """(every action recorded, the call sites whose action could not be read)."""
    finder = _Finder()
    finder.run()
    return set(finder.actions), sorted(set(finder.unread))
