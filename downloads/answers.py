"""One answer to a command, and the envelope the service returns it in.

``Answer`` is what the member is told: granted or denied, by which rule and limit, when to try
again, which licence, what is left. A rule check returns one (a denial), the member aggregate
returns one for every command it decides, remembers it for retries (``requests.py``), and the
service wraps it in an ``Outcome`` with what only the service knows: which request it answers,
how many events this call wrote, whether it was a retry, and whether the fallback answered.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class Answer(msgspec.Struct, frozen=True, array_like=True, omit_defaults=True, gc=False):
    """Encoded as an array: members keep the answers to their latest requests in every snapshot."""

    granted: bool
    reason: str = ""
    rule: str | None = None
    limit: int | None = None
    retry_at: datetime | None = None
    license_id: str | None = None
    remaining: int | None = None
    resets_at: datetime | None = None

    @property
    def status(self) -> str:
        return "granted" if self.granted else "denied"


def denied(rule: str, reason: str, limit: int | None = None, retry_at: datetime | None = None) -> Answer:
    """A rule's denial: the rule id, the member-facing reason, the limit, and when it frees up."""
    return Answer(False, reason, rule, limit, retry_at)


# what the fallback answered with (``Outcome.fallback``)
FALLBACK_DENY, FALLBACK_PROVISIONAL = "deny", "provisional"


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """What a command came to: the ``answer``, and the request it answers. ``events`` is how
    many events this call wrote (0 for a retry and for a command with nothing to do);
    ``duplicate`` marks a retry of a known request; ``fallback`` is empty when the service
    decided, ``"deny"`` or ``"provisional"`` when the store could not be reached (see
    ``downloads.fallback``). The answer's fields read through: ``outcome.granted`` is
    ``outcome.answer.granted``."""

    command: str
    member_id: str
    request_id: str
    at: datetime
    answer: Answer
    events: int = 0
    duplicate: bool = False
    fallback: str = ""

    # -- the answer's fields, read through -----------------------------------------------

    @property
    def granted(self) -> bool:
        return self.answer.granted

    @property
    def reason(self) -> str:
        return self.answer.reason

    @property
    def rule(self) -> str | None:
        return self.answer.rule

    @property
    def limit(self) -> int | None:
        return self.answer.limit

    @property
    def retry_at(self) -> datetime | None:
        return self.answer.retry_at

    @property
    def license_id(self) -> str | None:
        return self.answer.license_id

    @property
    def remaining(self) -> int | None:
        return self.answer.remaining

    @property
    def resets_at(self) -> datetime | None:
        return self.answer.resets_at

    @property
    def status(self) -> str:
        return self.answer.status

    @property
    def provisional(self) -> bool:
        """Granted by the fallback without the store, to be confirmed or revoked later."""
        return self.fallback == FALLBACK_PROVISIONAL

    def as_dict(self) -> dict[str, Any]:
        """Plain data, the answer's fields flattened beside the envelope's."""
        plain: dict[str, Any] = msgspec.to_builtins(self)
        del plain["answer"]
        return {**plain, **msgspec.to_builtins(msgspec.structs.asdict(self.answer))}
