"""Retention: archive, then drop, the events a kept snapshot already covers (Netflix expired
pre-snapshot events "like log rotation"). Archive first, delete second, so a crash in between
leaves events in both places, never in neither.

``archive_before_snapshot`` does it for one stream; ``RetentionPolicy`` says it as data for a
stream category (keep the last N events, or those younger than T, always behind a snapshot) and
``apply_retention`` runs policies over a store and reports what it archived and deleted.
Archives hold events as stored: sealed personal fields stay sealed (``EventStore.read_stream``'s
``as_stored``), so forgetting a subject shreds their archived fields too.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from .errors import HistoryTruncatedError, InvalidInputError
from .events import RecordedEvent
from .repository import Repository

Archive = Callable[[list[RecordedEvent]], None]


class JsonlArchive:
    """Appends archived events to a JSON-lines file, one record per line, fsynced."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, events: list[RecordedEvent]) -> None:
        with self.path.open("ab") as out:
            for event in events:
                out.write(msgspec.json.encode(event) + b"\n")
            out.flush()
            os.fsync(out.fileno())

    def read(self) -> Iterable[RecordedEvent]:
        if not self.path.exists():
            return
        with self.path.open("rb") as lines:
            for line in lines:
                yield msgspec.json.decode(line, type=RecordedEvent)


def archive_before_snapshot(
    repository: Repository[Any],
    aggregate_id: str,
    archive: Archive | None = None,
) -> int:
    """Move the events before the latest usable snapshot into ``archive`` (or drop them when
    ``archive`` is None) and delete them from the store. Returns how many were removed.

    Loads keep working: they start from the snapshot. Loads *before* the snapshot's version
    then raise ``HistoryTruncatedError``."""
    aggregate = repository.aggregate_cls(aggregate_id)
    snapshot = repository._usable_snapshot(aggregate, None, None)
    if snapshot is None:
        raise HistoryTruncatedError(
            f"{aggregate.stream_id!r} has no usable snapshot; archiving would lose its state"
        )
    events = repository.store.read_stream(aggregate.stream_id, upto=snapshot.version - 1, as_stored=True)
    if not events:
        return 0
    if archive is not None:
        archive(events)
    return repository.store.truncate_stream(aggregate.stream_id, snapshot.version)


class RetentionPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What to keep of the streams of one category (``member`` for ``member-*``), as data.

    Events a usable snapshot covers may go, except the last ``keep_last`` of the stream and
    those recorded less than ``keep_younger_than`` seconds ago (either or both; with neither,
    everything before the snapshot goes, as ``archive_before_snapshot`` does). ``archive``:
    copy them to the archive before deleting (the default); False deletes them outright."""

    category: str
    keep_last: int | None = None
    keep_younger_than: float | None = None  # seconds
    archive: bool = True

    def __post_init__(self) -> None:
        if not self.category or "-" in self.category:
            raise InvalidInputError(f"a retention category is a stream id prefix without '-', not {self.category!r}")
        if self.keep_last is not None and (type(self.keep_last) is not int or self.keep_last < 0):
            raise InvalidInputError(f"keep_last must be a non-negative int, not {self.keep_last!r}")
        if self.keep_younger_than is not None and not self.keep_younger_than >= 0:
            raise InvalidInputError(f"keep_younger_than must be >= 0 seconds, not {self.keep_younger_than!r}")


def load_policies(source: str | os.PathLike[str] | Mapping[str, Any]) -> list[RetentionPolicy]:
    """Policies from a TOML file (or its parsed mapping): one ``[category]`` table each, e.g.
    ``[member]`` with ``keep_last = 200`` and ``keep_younger_than = 7776000``. Unknown keys and
    bad values are ``InvalidInputError`` naming the category."""
    if isinstance(source, Mapping):
        tables = source
    else:
        try:
            tables = tomllib.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InvalidInputError(f"cannot read retention policies from {source}: {exc}") from exc
    policies = []
    for category, table in tables.items():
        try:
            policies.append(msgspec.convert({**table, "category": category}, RetentionPolicy))
        except (msgspec.ValidationError, TypeError) as exc:
            raise InvalidInputError(f"retention policy [{category}]: {exc}") from exc
    return policies


class StreamRetention(msgspec.Struct, frozen=True, kw_only=True):
    """What a policy run did to one stream: events before ``kept_from`` were removed."""

    stream_id: str
    kept_from: int
    archived: int
    deleted: int


class RetentionReport(msgspec.Struct, kw_only=True):
    streams_examined: int = 0
    streams_without_snapshot: int = 0
    archived: int = 0
    deleted: int = 0
    streams: list[StreamRetention] = []

    def as_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


def apply_retention(
    repositories: Iterable[Repository[Any]],
    policies: Iterable[RetentionPolicy],
    *,
    archive: Archive | None = None,
    streams: Iterable[str] | None = None,
    now: datetime | None = None,
) -> RetentionReport:
    """Apply each policy to the streams of its category, through the repository whose
    aggregate type is that category (it finds the usable snapshot). ``streams``: the stream ids
    to consider (default: every stream in the global log, a full read). A policy with
    ``archive=True`` needs ``archive``. A stream without a usable snapshot is left whole."""
    by_type = {r.aggregate_cls.aggregate_type: r for r in repositories}
    chosen = {p.category: p for p in policies}
    for category, policy in chosen.items():
        if category not in by_type:
            raise InvalidInputError(f"no repository for retention category {category!r}")
        if policy.archive and archive is None:
            raise InvalidInputError(f"the policy for {category!r} archives: pass an archive")
    report = RetentionReport()
    if not chosen:
        return report
    stores = {id(r.store): r.store for r in by_type.values()}
    if streams is None:
        streams = sorted({e.stream_id for store in stores.values() for e in store.read_all()})
    for stream_id in streams:
        category, dash, aggregate_id = stream_id.partition("-")
        rule = chosen.get(category)
        if rule is None or not dash:
            continue
        report.streams_examined += 1
        done = _apply(by_type[category], aggregate_id, rule, archive, now)
        if done is None:
            report.streams_without_snapshot += 1
        elif done.deleted or done.archived:
            report.streams.append(done)
            report.archived += done.archived
            report.deleted += done.deleted
    return report


def _apply(
    repository: Repository[Any], aggregate_id: str, policy: RetentionPolicy, archive: Archive | None,
    now: datetime | None,
) -> StreamRetention | None:
    store = repository.store
    aggregate = repository.aggregate_cls(aggregate_id)
    snapshot = repository._usable_snapshot(aggregate, None, None)
    if snapshot is None:
        return None
    stream_id = aggregate.stream_id
    keep_from = snapshot.version  # the snapshot's own event stays, as in archive_before_snapshot
    if policy.keep_last is not None:
        keep_from = min(keep_from, store.stream_version(stream_id) - policy.keep_last + 1)
    events = store.read_stream(stream_id, upto=keep_from - 1, as_stored=True) if keep_from > 1 else []
    if policy.keep_younger_than is not None and events:
        cutoff = (now or store.clock()) - timedelta(seconds=policy.keep_younger_than)
        young = next((e.version for e in events if e.recorded_at >= cutoff), None)
        if young is not None:
            keep_from = young
            events = [e for e in events if e.version < young]
    if not events:
        return StreamRetention(stream_id=stream_id, kept_from=keep_from, archived=0, deleted=0)
    if policy.archive:
        assert archive is not None  # checked before the run
        archive(events)
    deleted = store.truncate_stream(stream_id, keep_from)
    return StreamRetention(
        stream_id=stream_id, kept_from=keep_from, archived=len(events) if policy.archive else 0, deleted=deleted
    )
