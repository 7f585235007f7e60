"""Snapshot policies, as data. A policy looks at an aggregate just saved and says whether to
snapshot it; ``keep`` bounds how many snapshots per stream survive pruning."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidInputError


@dataclass(frozen=True)
class SnapshotPolicy:
    """``every``: snapshot when ``every`` events have been stored since the last snapshot.
    ``replayed_more_than``: snapshot when the last load had to replay more than that many events.
    Either may be ``None``; both ``None`` disables snapshots. ``keep`` snapshots survive pruning."""

    every: int | None = None
    replayed_more_than: int | None = None
    keep: int = 2
    #: whether the policy can ever say yes (derived once: the repository asks on every save)
    enabled: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("every", "replayed_more_than"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise InvalidInputError(f"snapshot policy {name} must be an int >= 1 or None, not {value!r}")
        if not isinstance(self.keep, int) or self.keep < 1:
            raise InvalidInputError(f"snapshot policy keep must be an int >= 1, not {self.keep!r}")
        object.__setattr__(self, "enabled", self.every is not None or self.replayed_more_than is not None)

    def should_snapshot(self, version: int, last_snapshot_version: int, replayed_on_load: int) -> bool:
        if self.every is not None and version - last_snapshot_version >= self.every:
            return True
        return self.replayed_more_than is not None and replayed_on_load > self.replayed_more_than

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SnapshotPolicy:
        """From rule data such as ``{"every": 100, "keep": 2}``."""
        unknown = set(data) - {"every", "replayed_more_than", "keep"}
        if unknown:
            raise InvalidInputError(f"unknown snapshot policy keys: {sorted(unknown)}")
        return cls(**dict(data))


NO_SNAPSHOTS = SnapshotPolicy()
