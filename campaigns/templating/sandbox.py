"""The locked-down Jinja2 environment, and the static check of what a template may say.

Two layers. The static check (`analyze`) walks the parsed template and accepts only a small
grammar: text, whitelisted merge fields (`contact.first_name`), whitelisted filters and tests,
`if`/`elif`/`else`, `~` concatenation, literals, and `{% include "block-key" %}` of a known
reusable block. Everything else — attribute access on anything but a field namespace, calls,
subscripts, arithmetic, `set`, macros, imports — is refused with its line and column, so
`{{ ''.__class__ }}` and friends never reach a renderer. The runtime layer is Jinja2's
ImmutableSandboxedEnvironment with no globals, the same filter whitelist, no attribute access on
Python objects at all (dict keys only) and no arithmetic, in case anything slipped through.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import cast

from jinja2 import DictLoader, StrictUndefined, nodes
from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .fields import FieldSet
from .limits import ASSUMED_VALUE_CHARS, bound_or_none, context_value_length, render_limits

ALLOWED_FILTERS = frozenset(
    {
        "capitalize",
        "default",
        "d",
        "escape",
        "e",
        "lower",
        "replace",
        "title",
        "trim",
        "truncate",
        "upper",
        "striptags",
    }
)
ALLOWED_TESTS = frozenset({"defined", "undefined", "none", "string", "eq", "ne", "equalto", "in"})
MAX_SOURCE = 200_000
MAX_LITERAL = 1_000
_OFFSET = re.compile(r" at (\d+)$")


class RenderError(Exception):
    """A template could not be rendered (a value missing, a refused operation). Safe to show."""


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    line: int | None = None
    column: int | None = None


@dataclass
class Analysis:
    fields: set[str] = field(default_factory=set)
    blocks: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)


class _Environment(ImmutableSandboxedEnvironment):
    # Arithmetic could build huge strings ('a' * 10**9); templates have no use for it.
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    intercepted_unops = frozenset({"-", "+"})

    def __init__(self, blocks: Mapping[str, str], autoescape: bool):
        super().__init__(
            autoescape=autoescape,
            undefined=StrictUndefined,
            loader=DictLoader(dict(blocks)),
            auto_reload=False,
            cache_size=0,
        )
        self.globals.clear()
        self.filters = {name: f for name, f in self.filters.items() if name in ALLOWED_FILTERS}
        self.tests = {name: t for name, t in self.tests.items() if name in ALLOWED_TESTS}

    def is_safe_attribute(self, obj, attr, value) -> bool:
        return False  # merge values are dicts of strings: keys are read, attributes never

    def is_safe_callable(self, obj) -> bool:
        return False

    def call_binop(self, context, operator, left, right):
        raise SecurityError("arithmetic is not available in templates")

    def call_unop(self, context, operator, arg):
        raise SecurityError("arithmetic is not available in templates")


@functools.lru_cache(maxsize=64)
def _environment(blocks: tuple[tuple[str, str], ...], autoescape: bool) -> _Environment:
    return _Environment(dict(blocks), autoescape)


def environment(blocks: Mapping[str, str] | None = None, *, autoescape: bool = True) -> _Environment:
    """HTML parts autoescape merge values; subject, preheader and text parts are plain text."""
    return _environment(tuple(sorted((blocks or {}).items())), autoescape)


# --- Positions ------------------------------------------------------------------------------------


def _column(source: str, line: int | None, needle: str) -> int | None:
    """1-based column of `needle` on `line` (Jinja2 tracks lines only)."""
    if not line:
        return None
    lines = source.splitlines() or [""]
    text = lines[min(line, len(lines)) - 1]
    found = text.find(needle) if needle else -1
    if found < 0:
        opener = min((i for i in (text.find("{{"), text.find("{%")) if i >= 0), default=-1)
        return opener + 1 if opener >= 0 else 1
    return found + 1


def _position_of_offset(source: str, offset: int) -> tuple[int, int]:
    before = source[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def parse(source: str, env: _Environment | None = None) -> tuple[nodes.Template | None, Problem | None]:
    """The parsed template, or the syntax error with its line and column."""
    env = env or environment()
    if len(source) > MAX_SOURCE:
        return None, Problem("too_long", f"The template is longer than {MAX_SOURCE:,} characters.")
    parser = Parser(env, source)
    try:
        return parser.parse(), None
    except TemplateSyntaxError as error:
        message = (error.message or "syntax error").strip()
        offset = _OFFSET.search(message)
        if offset:  # a lexer error reports an absolute offset
            line, column = _position_of_offset(source, int(offset.group(1)))
            message = _OFFSET.sub("", message)
        else:
            line, token_column = error.lineno, _current_token_column(env, source, parser)
            if token_column is None:
                lines = source.splitlines() or [""]
                column = len(lines[min(line, len(lines)) - 1]) + 1
            else:
                column = token_column
        return None, Problem("syntax_error", f"Syntax error: {message}", line, column)


def _current_token_column(env: _Environment, source: str, parser: Parser) -> int | None:
    """Column of the token the parser stopped at: Jinja2 tracks lines only, so the tokens are
    replayed over the source to find where each one starts."""
    current = parser.stream.current
    if current.type == "eof":
        return None
    try:
        remaining = sum(1 for _ in parser.stream._iter) + len(parser.stream._pushed)
        tokens = list(env._tokenize(source, None))
    except TemplateError:
        return _column(source, current.lineno, str(current.value))
    index = len(tokens) - remaining - 1
    cursor = 0
    for position, token in enumerate(tokens):
        found = source.find(str(token.value), cursor)
        if found < 0:
            return _column(source, current.lineno, str(current.value))
        if position == index:
            return found - (source.rfind("\n", 0, found) + 1) + 1
        cursor = found + len(str(token.value))
    return _column(source, current.lineno, str(current.value))


# --- The static check -----------------------------------------------------------------------------

_STRUCTURE = (nodes.Template, nodes.Output, nodes.TemplateData, nodes.If, nodes.CondExpr)
_LOGIC = (nodes.And, nodes.Or, nodes.Not, nodes.Compare, nodes.Operand, nodes.Concat, nodes.Keyword)


def _dotted(node: nodes.Node) -> str | None:
    parts = []
    while isinstance(node, nodes.Getattr):
        parts.append(node.attr)
        node = node.node
    if isinstance(node, nodes.Name) and node.ctx == "load":
        parts.append(node.name)
        return ".".join(reversed(parts))
    return None


class _Checker:
    def __init__(self, source: str, field_set: FieldSet, blocks: Mapping[str, str], allow_include: bool):
        self.source = source
        self.fields = field_set
        self.blocks = blocks
        self.allow_include = allow_include
        self.result = Analysis()

    def refuse(self, node: nodes.Node, code: str, message: str, needle: str = "") -> None:
        line = getattr(node, "lineno", None)
        self.result.problems.append(Problem(code, message, line, _column(self.source, line, needle)))

    def visit(self, node: nodes.Node) -> None:
        if isinstance(node, nodes.Name | nodes.Getattr):
            self.merge_field(node)
            return
        if isinstance(node, nodes.Const):
            if isinstance(node.value, str) and len(node.value) > MAX_LITERAL:
                self.refuse(node, "literal_too_long", "A quoted text in a tag is too long.")
            elif not isinstance(node.value, str | int | bool | type(None)):
                self.refuse(node, "disallowed_expression", "Only text and whole numbers may be quoted.")
            return
        if isinstance(node, nodes.Filter):
            if node.name not in ALLOWED_FILTERS or node.dyn_args or node.dyn_kwargs:
                self.refuse(
                    node, "disallowed_filter", f"The filter “{node.name}” is not available.", node.name
                )
                return
        elif isinstance(node, nodes.Test):
            if node.name not in ALLOWED_TESTS or node.dyn_args or node.dyn_kwargs:
                self.refuse(node, "disallowed_filter", f"The test “{node.name}” is not available.", node.name)
                return
        elif isinstance(node, nodes.Include):
            self.include(node)
            return
        elif not isinstance(node, _STRUCTURE + _LOGIC):
            kind = type(node).__name__
            self.refuse(
                node,
                "disallowed_expression",
                f"This template construct ({kind}) is not allowed: use merge fields, filters, "
                "“if” and reusable blocks only.",
            )
            return
        for child in node.iter_child_nodes():
            self.visit(child)

    def merge_field(self, node: nodes.Name | nodes.Getattr) -> None:
        name = _dotted(node)
        if name is None or any(part.startswith("_") for part in name.split(".")):
            attr = getattr(node, "attr", "")
            self.refuse(node, "disallowed_expression", "Only merge fields can be read in a template.", attr)
            return
        if self.fields.get(name) is None:
            hint = "" if "." in name else " Merge fields look like contact.first_name."
            self.refuse(
                node, "unknown_merge_field", f"Unknown merge field “{name}”.{hint}", name.split(".")[-1]
            )
            return
        self.result.fields.add(name)

    def include(self, node: nodes.Include) -> None:
        template = node.template
        if not self.allow_include or not isinstance(template, nodes.Const) or node.ignore_missing:
            self.refuse(
                node, "disallowed_expression", "Reusable blocks cannot include other blocks.", "include"
            )
            return
        key = str(template.value)
        if key not in self.blocks:
            self.refuse(node, "unknown_block", f"There is no reusable block “{key}”.", key)
            return
        self.result.blocks.add(key)


def analyze(source: str, *, field_set: FieldSet, blocks: Mapping[str, str] | None = None) -> Analysis:
    """Which merge fields and blocks a template uses, and everything it may not say."""
    blocks = blocks or {}
    tree, problem = parse(source)
    if problem is not None:
        return Analysis(problems=[problem])
    tree = cast(nodes.Template, tree)  # parse gives a tree whenever it gives no problem
    checker = _Checker(source, field_set, blocks, allow_include=True)
    checker.visit(tree)
    result = checker.result
    for key in sorted(result.blocks):
        block_tree, block_problem = parse(blocks[key])
        if block_problem is not None:
            result.problems.append(
                Problem(
                    block_problem.code,
                    f"In block “{key}”: {block_problem.message}",
                    block_problem.line,
                    block_problem.column,
                )
            )
            continue
        block_checker = _Checker(blocks[key], field_set, {}, allow_include=False)
        block_checker.visit(cast(nodes.Template, block_tree))  # no problem: a tree
        result.fields |= block_checker.result.fields
        result.problems.extend(
            Problem(p.code, f"In block “{key}”: {p.message}", p.line, p.column)
            for p in block_checker.result.problems
        )
    if not result.problems:
        result.problems.extend(_size_problems(tree, blocks))
    return result


def _size_problems(tree: nodes.Template, blocks: Mapping[str, str]) -> list[Problem]:
    """A template that can grow past the part limit with ordinary merge values is refused when saved."""
    limit = render_limits().part_chars
    bound = _bound(tree, blocks, value_length=lambda name: ASSUMED_VALUE_CHARS, escape=False)
    if bound is None or bound <= limit:
        return []
    return [
        Problem(
            "output_too_large",
            f"This template can grow to more than {limit:,} characters when rendered (a filter such as "
            "“replace” repeated on its own output multiplies the text): simplify it.",
        )
    ]


def _bound(tree: nodes.Template, blocks: Mapping[str, str], *, value_length, escape: bool) -> int | None:
    def block_length(key: str) -> int:
        block_tree, _ = _parsed(blocks.get(key, ""))
        found = (
            None
            if block_tree is None
            else bound_or_none(
                block_tree, value_length=value_length, block_length=lambda _key: 0, escape=escape
            )
        )
        return found if found is not None else 0

    return bound_or_none(tree, value_length=value_length, block_length=block_length, escape=escape)


@functools.lru_cache(maxsize=256)
def _parsed(source: str) -> tuple[nodes.Template | None, Problem | None]:
    return parse(source)


@functools.lru_cache(maxsize=256)
def _compiled(source: str, blocks: tuple[tuple[str, str], ...], autoescape: bool):
    return _environment(blocks, autoescape).from_string(source)


def render_string(
    source: str, context: Mapping, *, blocks: Mapping[str, str] | None = None, autoescape: bool = True
) -> str:
    """Render an analyzed template. Errors become RenderError with a message safe to show.

    The output's size is bounded from the real merge values before anything is rendered, and counted
    (with the time spent) while it streams: no template holds a worker or a page past the limits."""
    limits = render_limits()
    blocks = blocks or {}
    tree, _ = _parsed(source)
    if tree is not None:
        bound = _bound(tree, blocks, value_length=context_value_length(context), escape=autoescape)
        if bound is not None and bound > limits.part_chars:
            raise RenderError(_too_large(limits.part_chars))
    try:
        template = _compiled(source, tuple(sorted(blocks.items())), autoescape)
        return _stream(template.generate(dict(context)), limits)
    except UndefinedError as error:
        raise RenderError(f"A merge field has no value: {error.message}") from None
    except SecurityError:
        raise RenderError("The template tried something templates may not do.") from None
    except TemplateError as error:
        raise RenderError(f"The template could not be rendered: {error.message}") from None
    except (ArithmeticError, AssertionError, LookupError, TypeError, ValueError):
        # A filter refusing its arguments (truncate shorter than its ending, say): the author's to fix.
        raise RenderError("The template could not be rendered: a filter refused its arguments.") from None


def _stream(chunks: Iterator[str], limits) -> str:
    deadline = time.monotonic() + limits.seconds
    out: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > limits.part_chars:
            raise RenderError(_too_large(limits.part_chars))
        if time.monotonic() > deadline:
            raise RenderError(f"The template took longer than {limits.seconds:g} s to render.")
        out.append(chunk)
    return "".join(out)


def _too_large(limit: int) -> str:
    return f"The rendered template could be longer than {limit:,} characters, the limit for one part."
