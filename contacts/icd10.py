"""ICD-10-CM conditions as a hierarchy: a code matches its category and every subcategory above it.

ICD-10-CM codes are built by extension: the category is the first three characters (E11, type 2
diabetes mellitus) and each further character is a subcategory (E11.6, with other specified
complications; E11.65, with hyperglycemia). So "E11" must find everyone coded E11.0 to E11.9 and
below. Codes are stored as keyed tokens (blind index), which cannot be prefix-searched, so each
stored condition also gets the token of every ancestor (`condition_with_ancestors`), and a segment
asking for E11 matches the E11 token.

Names for the builder's search come from the CMS ICD-10-CM tabular list as shipped in the
simple-icd-10-cm package (MIT licence; the CMS/NCHS code set is public domain), read on first use.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path
from xml.etree import ElementTree

_SPACES = re.compile(r"\s+")
MAX_RESULTS = 20


def canonical(code: str) -> str:
    """Upper case, no spaces, and the dot after the category (E119 -> E11.9)."""
    code = _SPACES.sub("", str(code)).upper()
    if len(code) > 3 and "." not in code:
        code = f"{code[:3]}.{code[3:]}"
    return code.rstrip(".")


@functools.lru_cache(maxsize=8192)
def condition_with_ancestors(code: str) -> tuple[str, ...]:
    """The code, its category and each subcategory between: E11.65 -> (E11, E11.6, E11.65)."""
    code = canonical(code)
    if len(code) <= 3:
        return (code,)
    category, rest = code.split(".", 1)
    return (category, *(f"{category}.{rest[:length]}" for length in range(1, len(rest) + 1)))


@functools.lru_cache(maxsize=1)
def _catalogue() -> tuple[tuple[str, str], ...]:
    """(code, name) of every category and code of the packaged ICD-10-CM tabular list.

    Read straight from the package's copy of the CMS tabular XML (one pass, about a second):
    importing the package itself builds its whole tree, far slower than a web request allows."""
    spec = importlib.util.find_spec("simple_icd_10_cm")
    if spec is None or not spec.submodule_search_locations:
        return ()
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    tabular = sorted(data.glob("icd10*tabular*.xml"))
    if not tabular:
        return ()
    found = []
    for _, element in ElementTree.iterparse(tabular[-1]):  # noqa: S314 - the package's own CMS file
        if element.tag == "diag":
            name, desc = element.findtext("name"), element.findtext("desc")
            if name and desc:
                found.append((name.strip(), desc.strip()))
            element.clear()
    return tuple(sorted(found))


def condition_search(query: str) -> list[dict[str, str]]:
    """Conditions whose code starts with, or whose name contains, every word of the query."""
    words = [word for word in query.lower().split() if word][:5]
    if not words:
        return []
    prefix = canonical(query) if len(words) == 1 else ""
    found = [
        (code, name)
        for code, name in _catalogue()
        if (prefix and code.startswith(prefix)) or all(word in name.lower() for word in words)
    ]
    # Broadest first (categories before their codes), so "hypertension" offers I10 before H40.051.
    found.sort(key=lambda item: (len(item[0]), item[0]))
    return [{"value": code, "label": f"{code} {name}"} for code, name in found[:MAX_RESULTS]]
