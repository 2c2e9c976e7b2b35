"""Why the MLflow gateway answers a request itself instead of forwarding it."""

from __future__ import annotations

from dataclasses import dataclass, field

from .auth import BASIC_CHALLENGE

READ_ONLY = ("MLflow is read-only here: the platform writes the results, and this gateway passes only the reads "
             "it knows")
NOT_YOURS = "These artifacts are not yours: a run's artifacts are readable by its owner and admins only"
ADMINS_ONLY = "Only admins read this through the MLflow gateway"


@dataclass(eq=False)
class Refusal(Exception):
    """An answer `{"detail": ...}` with `status` (and `headers`), given instead of MLflow's."""

    status: int
    detail: str
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.status} {self.detail}"


def sign_in_needed(detail: str) -> Refusal:
    """401 with the Basic challenge: a browser asks for the user name and token, as git does."""
    return Refusal(401, detail, [(b"www-authenticate", BASIC_CHALLENGE)])
