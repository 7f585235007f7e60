"""``Subscription``: feeds the global log to a handler, from a stored checkpoint, for good.

One loop serves both catching up and following live: read the store's settled position, hand
over the events after the checkpoint in pages (each page's effects and its new position
committed together by the ``Checkpoints`` backend), and when there is nothing left, wait with a
growing pause (``poll``) and look again. ``catch_up`` stops when it has reached the settled
position it saw when it began; ``run`` goes on until told to stop.

A handler that raises is retried (``max_attempts`` in all), then the event is parked with its
error and the subscription goes on (``on_poison="park"``), or it stops before the event
(``on_poison="stop"``) until an operator resumes or skips. Each page's records pass through
``VersionContinuity`` first, so a hole in the feed raises ``StreamGapError`` (or reaches
``on_gap``) before anything of that page is applied.
"""

from __future__ import annotations

import math
import threading
import time
import traceback
import uuid
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from typing import Any

from ..codec import EventRegistry
from ..continuity import StreamGap, VersionContinuity
from ..encoding import StoredRecord
from ..errors import (
    InvalidSubscriptionError,
    StoreCorruptionError,
    SubscriptionBusyError,
    SubscriptionPausedError,
    SubscriptionRunningError,
    SubscriptionStoppedError,
)
from ..events import RecordedEvent, StoredEvent
from ..stores.base import EventStore
from ..validation import is_number
from .checkpoints import Checkpoints, Page
from .records import ACTIVE, PARK, PAUSED, STOP, STOPPED, Delivery, ParkedEvent, check_event_id, check_name, new_owner

Handler = Callable[[Delivery], None]
"""Called once per event (once per typed event when the subscription decodes)."""
ResetHook = Callable[[Any, int], None]
"""Called as ``on_reset(tx, position)`` in the same page as a reset: clear what the read model
holds past ``position`` (everything, for a rebuild from 0)."""
Progress = Callable[[int, int], None]
"""(position units done, position units to do), as ``ProjectionRunner`` reports them."""

MAX_PAGE_SIZE = 10_000
Record = RecordedEvent | StoredRecord


class _HandlerFailed(Exception):
    """A handler (or decoding) raised: the one kind of failure that counts as poison."""

    def __init__(self, record: Record, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.record = record
        self.cause = cause


class _PageRolledBack(Exception):
    """Raised inside a page to roll it back after a handler failed (backends that can)."""


class Subscription:
    """A named, durable subscription of ``handler`` to ``store``'s global log.

    Creating one registers ``name`` in ``checkpoints`` at position 0 if it is new (after every
    argument was checked: bad input writes nothing)."""

    def __init__(
        self,
        store: EventStore,
        checkpoints: Checkpoints,
        name: str,
        handler: Handler,
        *,
        registry: EventRegistry | None = None,
        on_reset: ResetHook | None = None,
        page_size: int = 500,
        max_attempts: int = 3,
        on_poison: str = PARK,
        on_gap: Callable[[StreamGap], None] | None = None,
        lease_seconds: float = 10.0,
        poll: tuple[float, float] = (0.001, 0.01),
    ) -> None:
        self.name = check_name(name)
        if not callable(handler):
            raise InvalidSubscriptionError(f"the handler must be callable, not {type(handler).__name__}")
        if on_reset is not None and not callable(on_reset):
            raise InvalidSubscriptionError(f"on_reset must be callable, not {type(on_reset).__name__}")
        if on_gap is not None and not callable(on_gap):
            raise InvalidSubscriptionError(f"on_gap must be callable, not {type(on_gap).__name__}")
        if type(page_size) is not int or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidSubscriptionError(f"page_size must be an int from 1 to {MAX_PAGE_SIZE}, not {page_size!r}")
        if type(max_attempts) is not int or max_attempts < 1:
            raise InvalidSubscriptionError(f"max_attempts must be a positive int, not {max_attempts!r}")
        if on_poison not in (PARK, STOP):
            raise InvalidSubscriptionError(f"on_poison must be {PARK!r} or {STOP!r}, not {on_poison!r}")
        if not is_number(lease_seconds) or not 0 < lease_seconds < math.inf:
            raise InvalidSubscriptionError(f"lease_seconds must be a positive number, not {lease_seconds!r}")
        if not (isinstance(poll, tuple | list) and len(poll) == 2 and all(is_number(p) for p in poll)
                and 0 < poll[0] <= poll[1] < math.inf):
            raise InvalidSubscriptionError(f"poll is (shortest, longest) pause, 0 < shortest <= longest, not {poll!r}")
        low, high = poll
        if registry is not None:
            registry.validate()
        self.store, self.checkpoints, self.handler = store, checkpoints, handler
        self.registry, self.on_reset, self.on_gap = registry, on_reset, on_gap
        self.page_size, self.max_attempts, self.on_poison = page_size, max_attempts, on_poison
        self.lease_seconds, self.poll = float(lease_seconds), (float(low), float(high))
        self.owner = new_owner()
        self.position = checkpoints.create(self.name).position
        self.delivered = 0  # records handed over by this object (parked and skipped included)
        self.parked_count = 0
        self._continuity: VersionContinuity | None = None
        self._skips: set[uuid.UUID] = set()
        self._renewed = 0.0

    def __repr__(self) -> str:
        return f"Subscription({self.name!r}, position={self.position})"

    # -- running ---------------------------------------------------------------------------

    def catch_up(self, *, progress: Progress | None = None, wait_for_lease: bool = False) -> int:
        """Handle every event up to the store's settled position as of now; returns how many
        records were handed over. Returns 0 at once while paused."""
        return self._run(catch_up=True, stop=None, progress=progress, wait_for_lease=wait_for_lease)

    def run(self, *, stop: threading.Event | None = None, wait_for_lease: bool = True) -> int:
        """Catch up, then follow new events as they settle, until ``stop`` is set. A second
        copy waits for the lease (or raises ``SubscriptionBusyError`` with ``wait_for_lease=False``).
        While paused it waits; a subscription stopped on a poison event raises."""
        return self._run(catch_up=False, stop=stop or threading.Event(), progress=None, wait_for_lease=wait_for_lease)

    def run_in_thread(self, *, stop: threading.Event | None = None) -> tuple[threading.Thread, threading.Event]:
        """``run`` on a daemon thread; set the returned event (and join the thread) to stop it."""
        stop = stop or threading.Event()
        thread = threading.Thread(target=self.run, kwargs={"stop": stop}, name=f"subscription {self.name}", daemon=True)
        thread.start()
        return thread, stop

    def rebuild(self, *, progress: Progress | None = None) -> int:
        """Start over from position 0 (through ``on_reset``), then catch up."""
        state = self.checkpoints.get(self.name)
        if self.checkpoints.is_running(state) and state.owner != self.owner:
            raise SubscriptionRunningError(f"subscription {self.name!r} is run by {state.owner}; stop it first")
        self.checkpoints._set(self.name, reset_to=0)
        return self.catch_up(progress=progress)

    def _run(self, *, catch_up: bool, stop: threading.Event | None, progress: Progress | None,
             wait_for_lease: bool) -> int:
        if not self._acquire(stop, wait_for_lease):
            return 0
        try:
            state = self.checkpoints.get(self.name)
            if state.status == STOPPED:
                raise SubscriptionStoppedError(
                    f"subscription {self.name!r} stopped at position {state.position}: {state.last_error}; "
                    "fix the handler and resume it, or skip the event"
                )
            self._continuity = None
            goal = self.store.settled_position() if catch_up else None
            start = state.reset_to if state.reset_to is not None else self.position
            handled, pause = 0, self.poll[0]
            while True:
                try:
                    upto = goal if goal is not None else self.store.settled_position()
                    done = self._drain(upto, progress, start, goal)
                except SubscriptionPausedError:
                    self._continuity = None  # records read but not applied are read again later
                    if catch_up:
                        return handled
                    done = 0
                handled += done
                if catch_up and (done == 0 or self.position >= goal):  # type: ignore[operator]
                    break
                if done:
                    pause = self.poll[0]
                    continue
                if stop is not None and stop.wait(pause):
                    break
                pause = min(pause * 2, self.poll[1])
                self._keep_lease()
            if progress is not None and goal is not None:
                progress(max(0, goal - start), max(0, goal - start))
            return handled
        finally:
            self.checkpoints.release(self.name, self.owner)

    def _acquire(self, stop: threading.Event | None, wait: bool) -> bool:
        pause = self.poll[0]
        while True:
            try:
                state = self.checkpoints.acquire(self.name, self.owner, self.lease_seconds)
            except SubscriptionBusyError:
                if not wait:
                    raise
                if stop is not None and stop.wait(pause):
                    return False
                if stop is None:
                    time.sleep(pause)
                pause = min(pause * 2, max(self.poll[1], 0.1))
                continue
            self.position = state.position
            self._renewed = time.monotonic()
            return True

    def _keep_lease(self) -> None:
        if time.monotonic() - self._renewed > self.lease_seconds / 3:
            self.checkpoints.renew(self.name, self.owner, self.lease_seconds)
            self._renewed = time.monotonic()

    def _lease_until(self) -> float:
        self._renewed = time.monotonic()
        return self.checkpoints.clock() + self.lease_seconds

    def _apply_reset(self, reset_to: int | None) -> None:
        if reset_to is None:
            return
        with self.checkpoints.page(self.name, self.owner, self.position, self._lease_until()) as page:
            if self.on_reset is not None:
                self.on_reset(page.handle, reset_to)
            page.position, page.reset_applied = reset_to, True
        self.position = reset_to
        self._continuity = None  # a new run of the log: the streams seen so far no longer count

    # -- pages -----------------------------------------------------------------------------

    def _drain(self, upto: int, progress: Progress | None, start: int, goal: int | None) -> int:
        """Pages of records after the checkpoint up to ``upto``; how many were handed over.
        Reads the subscription's row first: a pause stops it, a pending reset is applied."""
        state = self.checkpoints.get(self.name)
        if state.status == PAUSED:
            raise SubscriptionPausedError(f"subscription {self.name!r} is paused")
        if state.reset_to is not None:
            self._apply_reset(state.reset_to)
        if self._continuity is None:
            self._continuity = VersionContinuity(self.store, after=self.position, on_gap=self.on_gap)
        handled = 0
        if self.position >= upto:
            return 0
        self._skips = self.checkpoints.skip_ids(self.name)
        check = self._continuity.check_stored
        # one pass over the log for the whole drain: the store pages it lazily (a query per page
        # with a limit costs a third more than reading on); rows stay as stored until a
        # handler reads them (``StoredRecord``)
        for rows in self._pages(self.store.read_all_stored(after=self.position, page_size=self.page_size), upto):
            check(rows)  # raises on a hole before anything of the page is applied
            self._apply_page(rows)
            handled += len(rows)
            if progress is not None and goal is not None:
                progress(max(0, min(self.position, goal) - start), max(0, goal - start))
        return handled

    def _pages(self, stored: Iterable[list[StoredEvent]], upto: int) -> Iterator[list[StoredEvent]]:
        """The store's pages cut to ``page_size`` rows (the store's pages are only about that
        size) and to positions at or below ``upto``."""
        size = self.page_size
        pending: list[StoredEvent] = []
        for page in stored:
            last = len(page) and page[-1][2]
            if last > upto:
                page = page[:bisect_right(page, upto, key=_position)]
            if pending or len(page) != size:
                pending.extend(page)
                while len(pending) >= size:
                    yield pending[:size]
                    del pending[:size]
            else:
                yield page
            if last > upto:
                break  # positions may be sparse: nothing more is at or below `upto`
        if pending:
            yield pending

    def _apply_page(self, records: list[StoredEvent]) -> None:
        failed_at: int | None = None
        failure: _HandlerFailed | None = None
        try:
            with self.checkpoints.page(self.name, self.owner, self.position, self._lease_until()) as page:
                done, failure = self._deliver_all(records, page)
                if done < len(records):
                    if self.checkpoints.rolls_back:
                        raise _PageRolledBack
                    failed_at = done  # what came before stays applied; commit up to it
                if done:
                    page.position = records[done - 1][2]
        except _PageRolledBack:
            failed_at = 0  # the whole page was rolled back: go again, one record at a time
        else:
            self.position = page.position
            self.delivered += len(records) if failed_at is None else failed_at
        if failed_at is not None:
            for i, row in enumerate(records[failed_at:], failed_at):
                # the failing record has had its first attempt: max_attempts counts every call
                self._apply_one(_record(row), failure if i == done else None)

    def _deliver_all(self, records: list[StoredEvent], page: Page) -> tuple[int, _HandlerFailed | None]:
        """Hand over a page's records in order; how many went through before a handler failed,
        and its failure (None for unreadable stored bytes, which ``_apply_one`` meets again)."""
        if self.registry is not None or self._skips:
            for i, row in enumerate(records):
                try:
                    self._deliver(_record(row), page)
                except _HandlerFailed as failed:
                    return i, failed
            return len(records), None
        # the common case, in as few Python calls per record as can be: the named tuples made
        # with tuple.__new__ (a Delivery's own __new__ is a Python function)
        handler, tx, new, kind = self.handler, page.handle, tuple.__new__, StoredRecord
        for i, row in enumerate(records):
            try:
                handler(new(Delivery, (new(kind, row), None, tx)))
            except StoreCorruptionError:
                return i, None
            except Exception as exc:
                return i, _HandlerFailed(_record(row), exc)
        return len(records), None

    def _apply_one(self, record: Record, failed: _HandlerFailed | None = None) -> None:
        """Deliver ``record`` alone, up to ``max_attempts`` calls in all (``failed``: the first
        was made, in its page), then park it or stop."""
        error = failed
        for _attempt in range(self.max_attempts - (failed is not None)):
            try:
                with self.checkpoints.page(self.name, self.owner, self.position, self._lease_until()) as page:
                    self._deliver(record, page)
                    page.position = record.position
            except _HandlerFailed as failed:
                error = failed
                continue
            self.position = record.position
            self.delivered += 1
            return
        assert error is not None
        self._poisoned(record, error)

    def _poisoned(self, record: Record, failed: _HandlerFailed) -> None:
        text = _describe(failed.cause)
        if self.on_poison == STOP:
            self.checkpoints._set(self.name, status=STOPPED, last_error=f"event {record.event_id} at position "
                                  f"{record.position} failed {self.max_attempts} times: {text}")
            raise SubscriptionStoppedError(
                f"subscription {self.name!r} stopped before position {record.position} (event {record.event_id}): "
                f"{text}"
            ) from failed.cause
        parked = ParkedEvent(
            subscription=self.name, event_id=record.event_id, position=record.position, stream_id=record.stream_id,
            version=record.version, event_type=record.event_type, error=text, attempts=self.max_attempts,
            parked_at=self.checkpoints.clock(),
        )
        with self.checkpoints.page(self.name, self.owner, self.position, self._lease_until()) as page:
            page.parked.append(parked)
            page.position = record.position
        self.position = record.position
        self.delivered += 1
        self.parked_count += 1

    def _deliver(self, record: Record, page: Page) -> None:
        if self._skips and record.event_id in self._skips:
            return
        try:
            if self.registry is None:
                self.handler(Delivery(record, None, page.handle))
            else:
                for event in self.registry.decode(record):
                    self.handler(Delivery(record, event, page.handle))
        except StoreCorruptionError:
            raise  # the store's bytes are unreadable: not the handler's fault, so not poison
        except Exception as exc:  # the handler's (or decoding's) failure: poison, not a crash
            raise _HandlerFailed(record, exc) from exc

    # -- parked events ---------------------------------------------------------------------

    def retry_parked(self, event_id: uuid.UUID | str | None = None) -> dict[uuid.UUID, str]:
        """Hand parked events (one, or all) to the handler again, after a fix. Each that
        succeeds is removed from the parked table in the same page as its effect. Returns
        ``{event_id: "applied" | error text}``."""
        wanted = None if event_id is None else check_event_id(event_id)
        parked = [p for p in self.checkpoints.parked(self.name) if wanted is None or p.event_id == wanted]
        if wanted is not None and not parked:
            raise InvalidSubscriptionError(f"event {wanted} is not parked by subscription {self.name!r}")
        outcome: dict[uuid.UUID, str] = {}
        if not parked:
            return outcome
        held = self.checkpoints.get(self.name).owner == self.owner  # called beside this object's own run
        if not held:
            self._acquire(None, wait=False)
        try:
            for item in parked:
                # as stored, like every delivery: the handler gets a StoredRecord here too
                page_rows = next(iter(self.store.read_all_stored(after=item.position - 1, limit=1)), [])
                record = _record(page_rows[0]) if page_rows else None
                if record is None or record.event_id != item.event_id:
                    outcome[item.event_id] = "the event is no longer in the store"
                    continue
                start = self.checkpoints.get(self.name).position  # the position stays where it is
                try:
                    with self.checkpoints.page(self.name, self.owner, start, self._lease_until()) as page:
                        self._deliver(record, page)
                        page.resolved.append((item.event_id, "retried"))
                except _HandlerFailed as failed:
                    outcome[item.event_id] = _describe(failed.cause)
                    continue
                outcome[item.event_id] = "applied"
        finally:
            if not held:
                self.checkpoints.release(self.name, self.owner)
        return outcome


def _record(row: StoredEvent) -> StoredRecord:
    return tuple.__new__(StoredRecord, row)


_position = itemgetter(2)


def _describe(exc: BaseException) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" ({where.filename.rsplit('/', 1)[-1]}:{where.lineno} in {where.name})" if where else ""
    return f"{type(exc).__name__}: {exc}{at}"[:2000]


__all__ = ["ACTIVE", "Handler", "Progress", "ResetHook", "Subscription"]
