"""Who is acting: the value every service call carries for scoping, roles and audit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dropyard.errors import Forbidden, NotFound

ActorKind = Literal["operator", "user", "token", "system"]
_RANK = {"viewer": 0, "member": 1, "admin": 2}


@dataclass(frozen=True)
class Actor:
    """An operator (the CLI on the server: every account) or a member of one account."""

    kind: ActorKind
    name: str
    account_id: int | None = None
    role: str = "admin"
    source: str = ""

    @property
    def is_operator(self) -> bool:
        return self.kind in ("operator", "system")

    def require_account(self, account_id: int, *, what: str = "object") -> None:
        """Another tenant's object does not exist for this actor: NotFound, never Forbidden."""
        if not self.is_operator and self.account_id != account_id:
            raise NotFound(f"{what} not found")

    def require_role(self, role: str) -> None:
        if self.is_operator:
            return
        if _RANK.get(self.role, -1) < _RANK[role]:
            raise Forbidden(f"this needs the {role} role; you are {self.role}")

    def require_operator(self) -> None:
        if not self.is_operator:
            raise Forbidden("only the operator of this installation may do this")


def operator(source: str = "cli") -> Actor:
    return Actor(kind="operator", name="operator", source=source)


SYSTEM = Actor(kind="system", name="dropyard", source="internal")
