"""Who did something: a user, an API key, the system, or a recipient. References only, never PHI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Actor:
    kind: str  # user | api_key | system | recipient | anonymous
    id: str
    user: Any = None  # the User instance when kind == "user", for foreign keys

    @property
    def reference(self) -> str:
        """ "kind:id", the form every `*_by` column and export stores (at most 80 characters)."""
        return f"{self.kind}:{self.id}"[:80]

    @classmethod
    def for_user(cls, user) -> Actor:
        if user is None or not getattr(user, "is_authenticated", False):
            return cls.anonymous()
        return cls("user", str(user.pk), user)

    @classmethod
    def for_api_key(cls, api_key) -> Actor:
        return cls("api_key", api_key.prefix)

    @classmethod
    def system(cls, component: str) -> Actor:
        return cls("system", component)

    @classmethod
    def anonymous(cls) -> Actor:
        return cls("anonymous", "")
