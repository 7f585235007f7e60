"""Per-stream version continuity: the backstop that turns a hole in a feed into an error.

A reader of the global log sees each stream's events in version order, one version after the
other. If it ever sees version 7 of a stream after version 5, or sees a stream for the first
time at version 7 while version 6 sits at a position it has not delivered, then an event was
skipped: a feed bug, a late commit below a settled position, a page lost in transit. This
module notices, and reports the hole as a :class:`StreamGap` (raised as
:class:`~es_core.errors.StreamGapError`, or handed to a callback the caller chooses). It never
steps over one silently.

What it can see, sentence by sentence:

* Within one run, every stream it remembers must go up by exactly one version per event; a
  jump is a hole, a repeat (a version at or below the last one seen) is a duplicate delivery.
* On the first sight of a stream at version ``v > 1`` it reads version ``v - 1`` of that stream
  (one ``read_stream`` call) and requires its position to be at or below ``after``: the position
  up to which everything was delivered before this run began. Anything else is a hole.
* A predecessor that cannot be read at all was removed by retention (``truncate_stream``); that
  is history deliberately dropped, not a hole, and it passes.
* Memory is bounded: it remembers at most ``max_streams`` streams, forgetting the one first
  seen longest ago. When it forgets one it raises ``after`` to the last position it checked, so a forgotten
  stream's next event is judged against a floor it has certainly delivered: no false alarm, at
  the price of not judging first sights below that floor.
* A hole in a stream whose later events never arrive cannot be seen here: there is nothing to
  compare with. The feed's own settling (``settled_position``) is the primary guarantee; this is
  its check.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import InvalidInputError, StreamGapError
from .events import RecordedEvent, StoredEvent
from .stores.base import EventStore

DEFAULT_MAX_STREAMS = 100_000
"""Streams remembered at once (about 100 bytes each); beyond it the earliest seen are forgotten."""


@dataclass(frozen=True, slots=True)
class StreamGap:
    """A break in one stream's versions, met at global ``position``.

    ``found_version`` above ``expected_version`` means events were skipped; at or below it, an
    event was delivered again."""

    stream_id: str
    expected_version: int
    found_version: int
    position: int

    @property
    def skipped(self) -> bool:
        return self.found_version > self.expected_version

    def describe(self) -> str:
        what = "skipped" if self.skipped else "repeated"
        return (
            f"stream {self.stream_id!r}: expected version {self.expected_version}, found "
            f"{self.found_version} at position {self.position} (events {what})"
        )


class VersionContinuity:
    """Checks records as a reader delivers them, in position order.

    ``after`` is the position up to which the reader had delivered everything before it
    started (its checkpoint; 0 from the beginning). With ``on_gap`` a hole is handed to the
    callback and ``check`` returns it; without, ``check`` raises ``StreamGapError``."""

    def __init__(
        self,
        store: EventStore,
        *,
        after: int,
        on_gap: Callable[[StreamGap], None] | None = None,
        max_streams: int = DEFAULT_MAX_STREAMS,
    ) -> None:
        if type(after) is not int or after < 0:
            raise InvalidInputError(f"after must be a non-negative int, not {after!r}")
        if type(max_streams) is not int or max_streams < 1:
            raise InvalidInputError(f"max_streams must be a positive int, not {max_streams!r}")
        if on_gap is not None and not callable(on_gap):
            raise InvalidInputError(f"on_gap must be callable, not {type(on_gap).__name__}")
        self.store = store
        self.after = after
        self.on_gap = on_gap
        self.max_streams = max_streams
        self.checked = after  # the last position checked: everything up to it was delivered
        self.first_sight_reads = 0
        self._versions: dict[str, int] = {}  # insertion order: the first forgotten is the first seen

    def check(self, record: RecordedEvent | StoredEvent) -> StreamGap | None:
        """Check one delivered record; the hole it reveals, or None."""
        versions, stream, version = self._versions, record.stream_id, record.version
        last = versions.get(stream)
        gap: StreamGap | None
        if last is not None:
            if version == last + 1:  # the common case, kept short: it runs once per event read
                versions[stream] = version
                self.checked = record.position
                return None
            gap = self._gap(stream, last + 1, record)
        else:
            gap = self._first_sight(record)
            if len(versions) >= self.max_streams:
                del versions[next(iter(versions))]
                self.after = self.checked  # see the module docstring: a floor delivered for certain
        versions[stream] = version if gap is None or gap.skipped else max(version, last or 0)
        if record.position > self.checked:
            self.checked = record.position
        return gap

    def check_stored(self, page: Sequence[StoredEvent]) -> list[StreamGap]:
        """``check`` for each of a page of stored events (rows in ``StoredEvent``'s field
        order), in order; the holes found (raised at the first without ``on_gap``). The same
        rules, with the next-version case inline: a subscription checks every event it reads."""
        versions, get, make = self._versions, self._versions.get, StoredEvent._make
        gaps: list[StreamGap] = []
        checked = self.checked
        for row in page:
            stream, version = row[0], row[1]
            last = get(stream)
            if last is not None and version == last + 1:
                versions[stream] = version
                checked = row[2]
                continue
            self.checked = checked
            gap = self.check(make(row))
            checked = self.checked
            if gap is not None:
                gaps.append(gap)
        self.checked = checked
        return gaps

    def forget(self, stream_id: str) -> None:
        """Stop remembering one stream (its next event is judged as a first sight)."""
        self._versions.pop(stream_id, None)

    def _first_sight(self, record: RecordedEvent | StoredEvent) -> StreamGap | None:
        if record.version == 1:
            return None
        self.first_sight_reads += 1
        previous = self.store.read_stream(record.stream_id, after=record.version - 2, upto=record.version - 1)
        if not previous:
            return None  # removed by retention: history dropped on purpose, not a hole
        if previous[0].position <= self.after:
            return None
        return self._gap(record.stream_id, record.version - 1, record)

    def _gap(self, stream: str, expected: int, record: RecordedEvent | StoredEvent) -> StreamGap:
        gap = StreamGap(stream, expected, record.version, record.position)
        if self.on_gap is None:
            raise StreamGapError(gap)
        self.on_gap(gap)
        return gap
