"""Journey templates shipped with the product: data files in journeys/library/*.json, loaded into the
builder by "start from template". A template is a definition without the tenant's own choices (email
templates, sender domain): the builder shows those as problems at the steps until they are chosen.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from healthmail.errors import NotFound

from . import definition as spec

LIBRARY = Path(__file__).resolve().parent / "library"


@dataclass(frozen=True)
class JourneyTemplate:
    key: str
    name: str
    description: str
    definition: dict


@cache
def _load() -> dict[str, JourneyTemplate]:
    found = {}
    for path in sorted(LIBRARY.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        found[path.stem] = JourneyTemplate(path.stem, data["name"], data["description"], data["definition"])
    return found


def journey_templates() -> list[JourneyTemplate]:
    return list(_load().values())


def journey_template(key: str) -> JourneyTemplate:
    try:
        found = _load()[key]
    except KeyError:
        raise NotFound("No such journey template.") from None
    return JourneyTemplate(found.key, found.name, found.description, copy.deepcopy(found.definition))


# What a template leaves for the organization to choose: its email templates, and the email a
# "did not open" entry watches (one of its campaigns or journeys).
CHOICES_LEFT = (".template_id", "entry.send")


def missing_choices(definition: dict) -> list[spec.Problem]:
    """What a template leaves for the tenant to choose; everything else must already be valid."""
    return [p for p in spec.problems_of(definition) if not p.where.endswith(CHOICES_LEFT)]
