"""Request ids are idempotency keys: the one place that says whether a command repeats a
request already answered.

A member remembers the answers to its latest ``REQUEST_MEMORY`` requests (in its state, so
snapshots keep them), each with what the request asked: its command type and fields. A command
whose request id is remembered is either a retry (the same command type and fields: it gets the
first answer and writes nothing) or a reuse of the key for another request, which is refused
with ``RequestReusedError`` naming the request id and every field that differs. The command's
``at`` may differ: a client may re-stamp a retry.

Older requests are beyond the member's memory. Their events are still in the store, and event
ids derive from the request id, so a forgotten retry is recognised there (``DownloadService``
asks the store before it refuses or answers a request that would write nothing) and refused
with ``RequestForgottenError``, never executed twice.

The member is where request ids are remembered, so the check that an id is not reused for
another member is best effort: a ``DownloadService`` remembers which member each of its latest
``RECENT_REQUESTS`` answered request ids belonged to, and refuses the id for another member.
Across processes, or beyond that window, an id reused for another member is taken as that
member's own request (a durable check would need a global index of request ids, a second write
outside the member's stream).
"""

from __future__ import annotations

from typing import Any

import msgspec

from .answers import Answer
from .commands import Command
from .errors import RequestReusedError

REQUEST_MEMORY = 16
"""Answers to the member's latest requests kept for retries (client retries come within
seconds; an older retry is still recognised by the store through its derived event ids)."""

_ENVELOPE = frozenset({"member_id", "at", "request_id"})


class RememberedRequest(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A request the member answered: its command type and fields, and the answer."""

    command: str
    fields: dict[str, str]
    answer: Answer


def request_fields(command: Command) -> dict[str, str]:
    """What a request asks, beyond who and when: the command's own fields, as text."""
    return {f: str(getattr(command, f)) for f in command.__struct_fields__ if f not in _ENVELOPE}


def fields_of_payload(payload: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """(command type, fields) of a command's JSON payload (``Command.payload()``)."""
    return str(payload.get("type", "")), {k: str(v) for k, v in payload.items() if k not in _ENVELOPE and k != "type"}


def check_same_request(
    command: Command, first_command: str, first_fields: dict[str, str], first_member: str | None = None
) -> None:
    """Raise ``RequestReusedError`` unless ``command`` repeats the request first seen as
    ``first_command`` with ``first_fields`` (for ``first_member``, when that is known)."""
    differences: dict[str, tuple[str, str]] = {}
    if first_member is not None and first_member != command.member_id:
        differences["member_id"] = (first_member, command.member_id)
    if command.name != first_command:
        differences["command"] = (first_command, command.name)
    else:
        now = request_fields(command)
        for name in sorted(set(first_fields) | set(now)):
            if first_fields.get(name) != now.get(name):
                differences[name] = (first_fields.get(name, ""), now.get(name, ""))
    if differences:
        listed = "; ".join(f"{name} was {a!r}, now {b!r}" for name, (a, b) in differences.items())
        raise RequestReusedError(
            f"request id {command.request_id!r} was already used for another request "
            f"({listed}); nothing was written and the first answer stands; send a new request id for a new request",
            request_id=command.request_id,
            differences=differences,
        )
