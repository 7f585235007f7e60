"""Unknown outcomes (issue 14, finding 1): every answer that leaves a write's outcome open is the
retryable ``StoreOutcomeUnknownError``, and a retry with the same event ids lands the events
exactly once, whether the first attempt landed or not.

On a real node the conditional write really runs (or really does not), and then the driver's
own error object is raised in place of its answer, as when the reply is lost: a coordinator
lost mid-request, a client timeout, or Cassandra's CAS_WRITE_UNKNOWN after a partial accept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("cassandra", reason="the Cassandra driver is an optional extra")
import cassandra
import cassandra.connection
from cassandra import WriteType
from cassandra.query import BatchStatement

from es_core import (
    Expect,
    NewEvent,
    StoreOutcomeUnknownError,
    StoreTimeoutError,
    StoreUnavailableError,
    event_id_from,
)
from es_core.stores.cassandra import CassandraStore
from es_core.stores.cassandra_errors import translate_driver_error
from tests.cassandra.driver_errors import cas_write_unknown

Sid = Callable[..., str]


def test_cas_write_unknown_is_a_retryable_unknown_outcome() -> None:
    """Before the fix, protocol v5's 0x1700 fell through to a plain, non-retryable StoreError."""
    error = translate_driver_error(cas_write_unknown())
    assert isinstance(error, StoreTimeoutError) and isinstance(error, StoreUnavailableError)
    assert "may or may not have landed" in str(error) and "same event ids" in str(error)


# -- on a real node ----------------------------------------------------------------------------

LOST_ANSWERS: dict[str, Callable[[], BaseException]] = {
    "cas-write-unknown": cas_write_unknown,
    "cas-write-timeout": lambda: cassandra.WriteTimeout("timed out", write_type=WriteType.CAS),
    "client-timeout": lambda: cassandra.OperationTimedOut(errors={}, last_host="127.0.0.1:9042"),
    "connection-lost": lambda: cassandra.connection.ConnectionShutdown("connection closed with the request in flight"),
}


def is_append_write(statement: Any) -> bool:
    """The conditional write of an append: a batch, or the statement that sets a partition's head."""
    if isinstance(statement, BatchStatement):
        return True
    prepared = getattr(statement, "prepared_statement", None)
    query = getattr(prepared, "query_string", "") or ""
    return query.startswith("UPDATE") and "SET head" in query


class LoseAnswers:
    """Wraps the store's ``session.execute``: the next ``times`` append writes run (or are dropped,
    with ``land=False``) and then raise ``error()`` instead of returning the driver's answer."""

    def __init__(self, store: CassandraStore, error: Callable[[], BaseException], *, land: bool, times: int = 1):
        self.real = store.session.execute
        self.error, self.land, self.left, self.injected = error, land, times, 0

    def __call__(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        if self.left > 0 and is_append_write(statement):
            self.left -= 1
            self.injected += 1
            if self.land:
                self.real(statement, *args, **kwargs)
            raise self.error()
        return self.real(statement, *args, **kwargs)


@pytest.fixture
def lose(layout: CassandraStore, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., LoseAnswers]]:
    def install(error: Callable[[], BaseException], *, land: bool, times: int = 1) -> LoseAnswers:
        wrapper = LoseAnswers(layout, error, land=land, times=times)
        monkeypatch.setattr(layout.session, "execute", wrapper)
        return wrapper

    yield install


def events(stream: str, n: int, start: int = 0) -> list[NewEvent]:
    return [
        NewEvent(event_type="Tick", data={"i": start + i}, event_id=event_id_from("req", stream, start + i))
        for i in range(n)
    ]


def assert_exactly_once(store: CassandraStore, stream: str, sent: list[NewEvent]) -> None:
    stored = store.read_stream(stream)
    assert [e.version for e in stored] == list(range(1, len(stored) + 1))
    ids = [e.event_id for e in stored]
    assert len(ids) == len(set(ids))
    for e in sent:
        assert ids.count(e.event_id) == 1


@pytest.mark.cassandra
@pytest.mark.parametrize("landed", [True, False], ids=["landed", "not-landed"])
@pytest.mark.parametrize("answer", list(LOST_ANSWERS))
def test_a_retry_after_an_unknown_outcome_lands_exactly_once(
    layout: CassandraStore, lose: Callable[..., LoseAnswers], sid: Sid, answer: str, landed: bool
) -> None:
    s = sid("unknown")
    first = events(s, 2)
    layout.append(s, first, Expect.NO_STREAM)
    batch = events(s, 3, start=2)
    injected = lose(LOST_ANSWERS[answer], land=landed)
    with pytest.raises(StoreOutcomeUnknownError):
        layout.append(s, batch, 2)
    assert injected.injected == 1
    result = layout.append(s, batch, 2)  # the caller's retry: same ids, same expected version
    assert (result.first_version, result.last_version) == (3, 5)
    assert result.duplicate is landed
    assert_exactly_once(layout, s, first + batch)


@pytest.mark.cassandra
@pytest.mark.parametrize(
    "expected", [Expect.NO_STREAM, Expect.ANY, Expect.STREAM_EXISTS, 9], ids=lambda e: getattr(e, "name", str(e))
)
def test_every_expected_version_mode_recognises_the_retry(
    layout: CassandraStore, lose: Callable[..., LoseAnswers], sid: Sid, expected: Any
) -> None:
    s = sid("modes")
    before = [] if expected is Expect.NO_STREAM else events(s, 9)
    if before:
        layout.append(s, before)  # 9 events: with bucket width 10 the next batch crosses a boundary
    batch = events(s, 4, start=len(before))
    lose(cas_write_unknown, land=True)
    with pytest.raises(StoreOutcomeUnknownError):
        layout.append(s, batch, expected)
    result = layout.append(s, batch, expected)
    assert result.duplicate and result.last_version == len(before) + 4
    assert_exactly_once(layout, s, before + batch)


@pytest.mark.cassandra
def test_a_retry_whose_answer_is_lost_too_still_lands_once(
    layout: CassandraStore, lose: Callable[..., LoseAnswers], sid: Sid
) -> None:
    s = sid("twice")
    batch = events(s, 2)
    lose(cas_write_unknown, land=True, times=2)
    for _ in range(2):
        with pytest.raises(StoreOutcomeUnknownError):
            layout.append(s, batch, Expect.NO_STREAM)
    assert layout.append(s, batch, Expect.NO_STREAM).duplicate
    assert_exactly_once(layout, s, batch)
