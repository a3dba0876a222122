"""How large a rendered template may grow, known before it is rendered.

The sandbox has no loops, no arithmetic and no assignment, so the only ways a small template can
produce a large output are filters that grow text (`replace` chained on itself grows exponentially:
330 bytes became 20 MB) and long merge values. Every construct the static check admits has a
computable upper bound on its output length, so a template is measured — at save time with assumed
merge values, at render time with the real ones — and refused before a single character is built
when the bound passes the limit. Rendering then also counts what it actually emits and watches the
clock, in case a bound were ever wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from django.conf import settings
from jinja2 import nodes

# A merge value's length when the real one is not known yet (save-time check): long enough for any
# name, date or short note, so only templates that grow text on their own exceed the limit.
ASSUMED_VALUE_CHARS = 200
# Worst growth of one character: HTML escaping ('"' -> "&#34;") and Unicode case mapping ("ﬃ" -> "FFI").
_ESCAPE_GROWTH = 5
_CASE_GROWTH = 3
_SCALAR = 5  # True, False, None, a comparison


@dataclass(frozen=True)
class RenderLimits:
    part_chars: int  # one rendered part: subject, preheader, HTML body or text body
    message_chars: int  # every part of one message together
    seconds: float  # one part's rendering, checked while it streams


def render_limits() -> RenderLimits:
    return RenderLimits(
        part_chars=settings.TEMPLATE_MAX_PART_CHARS,
        message_chars=settings.TEMPLATE_MAX_MESSAGE_CHARS,
        seconds=settings.TEMPLATE_RENDER_SECONDS,
    )


ValueLength = Callable[[str], int]
BlockLength = Callable[[str], int]


def output_bound(
    tree: nodes.Node, *, value_length: ValueLength, block_length: BlockLength, escape: bool
) -> int:
    """An upper bound on the number of characters `tree` can render to."""
    return _Bound(value_length, block_length, escape).statements([tree])


class _Bound:
    def __init__(self, value_length: ValueLength, block_length: BlockLength, escape: bool):
        self.value_length = value_length
        self.block_length = block_length
        self.escape = escape

    @property
    def _escaping(self) -> int:
        return _ESCAPE_GROWTH if self.escape else 1

    def statements(self, body: list[nodes.Node]) -> int:
        return sum(self.statement(node) for node in body)

    def statement(self, node: nodes.Node) -> int:
        if isinstance(node, nodes.Template):
            return self.statements(node.body)
        if isinstance(node, nodes.Output):
            return sum(self.output(child) for child in node.nodes)
        if isinstance(node, nodes.If):
            branches = [node.body, *(branch.body for branch in node.elif_), node.else_]
            return max(self.statements(branch) for branch in branches)
        if isinstance(node, nodes.Include) and isinstance(node.template, nodes.Const):
            return self.block_length(str(node.template.value))
        raise _Unbounded(type(node).__name__)

    def output(self, node: nodes.Node) -> int:
        if isinstance(node, nodes.TemplateData):
            return len(node.data)
        return self.expression(node) * self._escaping

    def expression(self, node: nodes.Node) -> int:
        if isinstance(node, nodes.Const):
            return len(str(node.value))
        if isinstance(node, nodes.Name | nodes.Getattr):
            return self.value_length(_dotted(node))
        if isinstance(node, nodes.Concat):  # `~` escapes its operands when autoescaping
            return sum(self.expression(child) for child in node.nodes) * self._escaping
        if isinstance(node, nodes.CondExpr):
            return max(self.expression(node.expr1), self.expression(node.expr2) if node.expr2 else 0)
        if isinstance(node, nodes.And | nodes.Or):  # Jinja2 returns one of the operands
            return max(self.expression(node.left), self.expression(node.right), _SCALAR)
        if isinstance(node, nodes.Not | nodes.Compare | nodes.Test):
            return _SCALAR
        if isinstance(node, nodes.Filter):
            return self.filter(node)
        raise _Unbounded(type(node).__name__)

    def filter(self, node: nodes.Filter) -> int:
        if node.node is None:  # a {% filter %} block's node: a statement, never measured here
            raise _Unbounded("filter block")
        length = self.expression(node.node)
        arguments: dict[int | str, nodes.Expr] = {
            **dict(enumerate(node.args)),
            **{str(k.key): k.value for k in node.kwargs},
        }
        name = node.name
        if name == "replace":
            return self._replace(length, arguments)
        if name in ("escape", "e"):
            return length * _ESCAPE_GROWTH
        if name in ("upper", "lower", "title", "capitalize"):
            return length * _CASE_GROWTH
        if name in ("trim", "striptags"):
            return length
        if name == "truncate":
            end = arguments.get(2, arguments.get("end"))
            return length + (self.expression(end) if end is not None else 3)
        if name in ("default", "d"):
            fallback = arguments.get(0, arguments.get("default_value"))
            return max(length, self.expression(fallback) if fallback is not None else 0)
        raise _Unbounded(f"filter {name}")

    def _replace(self, length: int, arguments: dict[int | str, nodes.Expr]) -> int:
        old = arguments.get(0, arguments.get("old"))
        new = arguments.get(1, arguments.get("new"))
        count = arguments.get(2, arguments.get("count"))
        if old is None or new is None:
            raise _Unbounded("replace without arguments")
        plain = (nodes.Const, nodes.Name, nodes.Getattr)
        if self.escape and not (isinstance(old, plain) and isinstance(new, plain)):
            length *= _ESCAPE_GROWTH  # escaped markup as an argument: Jinja2 escapes the input first
        # The shortest `old` can be is what decides how often it occurs: a merge value may be empty.
        old_length = len(str(old.value)) if isinstance(old, nodes.Const) else 0
        new_length = self.expression(new)
        if old_length and new_length <= old_length:
            return length
        occurrences = length + 1 if old_length == 0 else length // old_length
        if isinstance(count, nodes.Const) and isinstance(count.value, int) and count.value >= 0:
            occurrences = min(occurrences, count.value)
        return length + occurrences * (new_length - old_length)


class _Unbounded(Exception):
    """A construct the bound does not know: the static check refuses it anyway."""


def _dotted(node: nodes.Node) -> str:
    parts = []
    while isinstance(node, nodes.Getattr):
        parts.append(node.attr)
        node = node.node
    parts.append(getattr(node, "name", ""))
    return ".".join(reversed(parts))


def context_value_length(context: Mapping) -> ValueLength:
    """Lengths of the real merge values (a nested mapping, as the renderer receives it)."""

    def length(name: str) -> int:
        value: object = context
        for part in name.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return 0  # missing: StrictUndefined refuses it when rendered
            value = value[part]
        return len(str(value))

    return length


def bound_or_none(tree: nodes.Node, **kwargs) -> int | None:
    """The bound, or None for a construct that has none (the static check names it)."""
    try:
        return output_bound(tree, **kwargs)
    except _Unbounded:
        return None
