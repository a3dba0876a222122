"""Who did something: a user, an API key, the system, or a recipient. References only, never PHI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Actor:
    kind: str  # user | api_key | system | recipient | anonymous
    id: str
    user: Any = None  # the User instance when kind == "user", for foreign keys
    # For an API key: the id of the person who created it, answerable for what the key does (four
    # eyes: that person may not approve what the key submitted). None for keys nobody known created
    # (SMART access tokens, a creator since deleted).
    on_behalf_of_id: Any = None

    @property
    def reference(self) -> str:
        """ "kind:id", the form every `*_by` column and export stores (at most 80 characters)."""
        return f"{self.kind}:{self.id}"[:80]

    @property
    def person_id(self) -> Any:
        """The person behind this actor: the user, or the creator of the API key (None if neither)."""
        return self.user.pk if self.user is not None else self.on_behalf_of_id

    @classmethod
    def for_user(cls, user: Any) -> Actor:
        if user is None or not getattr(user, "is_authenticated", False):
            return cls.anonymous()
        return cls("user", str(user.pk), user)

    @classmethod
    def for_api_key(cls, api_key: Any) -> Actor:
        return cls("api_key", api_key.prefix, on_behalf_of_id=api_key.created_by_id)

    @classmethod
    def system(cls, component: str) -> Actor:
        return cls("system", component)

    @classmethod
    def anonymous(cls) -> Actor:
        return cls("anonymous", "")
