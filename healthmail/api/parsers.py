"""The API's JSON parser: refuses, at the door, JSON that is valid but that nothing behind it can hold.

PostgreSQL stores no NUL character (neither in text nor in jsonb), UTF-8 has no lone surrogates
(`"\\ud800"` parses in Python but cannot be encoded), and a number like `1e400` parses to infinity,
which JSON cannot render back. Each used to surface deep inside a handler (the idempotency store,
a text column, the renderer) as a 500. Refused here, every API operation answers 422 with the place
of the offending value, and 400 stays "could not read the body at all".
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import IO, Any

from rest_framework import exceptions, parsers

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _offence(value: object) -> str | None:
    if isinstance(value, str) and _UNSTORABLE.search(value):
        return "contains a NUL character or an unpaired surrogate, which cannot be stored"
    if isinstance(value, float) and not math.isfinite(value):
        return "is a number too large to represent"
    return None


def unstorable_values(data: object) -> dict[str, list[str]]:
    """Every key or value in `data` that cannot be stored, by its JSON path (`$.a[0].b`).
    Iterative, so the depth of the document does not matter."""
    found: dict[str, list[str]] = {}
    stack: list[tuple[str, object]] = [("$", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if _offence(key) is not None:
                    found[path] = [f"has a key that {_offence(key)}"]
                    continue
                stack.append((f"{path}.{key}", item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{index}]", item) for index, item in enumerate(value))
        elif (message := _offence(value)) is not None:
            found[path] = [message]
    return found


class StrictJSONParser(parsers.JSONParser):
    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise exceptions.ParseError("JSON parse error - nested too deeply") from exc
        found = unstorable_values(data)
        if found:
            # Offending keys are never part of a path, so the answer itself is storable.
            raise exceptions.ValidationError(found)
        return data
