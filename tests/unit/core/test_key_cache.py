"""How long another process's ``forget`` takes to reach this one: ``KeyStore.cache_seconds``.

Two key stores on one key table stand for two processes. The clock is ``time.monotonic`` as
``es_core.keys`` sees it, moved by hand, so the bound docs/forgetting.md states is checked
without waiting for it."""

from __future__ import annotations

import pytest

from es_core import InvalidInputError, LocalKeyEncryptionKey
from es_core.keys import KeyStore, MemoryKeyTable

KEK = LocalKeyEncryptionKey(bytes(range(32)), "kek-cache")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr("es_core.keys.time.monotonic", clock)
    return clock


def two_processes(cache_seconds: float = 30.0) -> tuple[KeyStore, KeyStore]:
    table = MemoryKeyTable()
    first = KeyStore(table, KEK, cache_seconds=cache_seconds)
    first.open(may_initialise=True)
    other = KeyStore(table, KEK, cache_seconds=cache_seconds)
    other.open(may_initialise=False)
    return first, other


def test_another_process_sees_a_forget_once_its_cached_key_expires(clock: Clock) -> None:
    first, other = two_processes()
    assert other.cipher("42", create=True) is not None  # created and cached by `other`
    first.forget("42", at=1)
    clock.now += 29.9
    assert other.cipher("42", create=False) is not None  # still inside the documented 30 s
    clock.now += 0.2
    assert other.cipher("42", create=False) is None  # past it: forgotten here too


def test_the_forgetting_process_sees_it_at_once(clock: Clock) -> None:
    first, _ = two_processes()
    assert first.cipher("42", create=True) is not None
    first.forget("42", at=1)
    assert first.cipher("42", create=False) is None


def test_no_cache_means_no_delay(clock: Clock) -> None:
    first, other = two_processes(cache_seconds=0)
    assert other.cipher("42", create=True) is not None
    first.forget("42", at=1)
    assert other.cipher("42", create=False) is None


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), True, "30"])
def test_a_cache_time_that_is_not_a_finite_non_negative_number_is_refused(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="cache_seconds"):
        KeyStore(MemoryKeyTable(), KEK, cache_seconds=bad)  # type: ignore[arg-type]


def test_an_expired_key_forgotten_meanwhile_leaves_memory_when_next_asked_for(clock: Clock) -> None:
    first, other = two_processes()
    assert other.cipher("42", create=True) is not None
    first.forget("42", at=1)
    clock.now += 30.1
    assert other.cipher("42", create=False) is None
    assert "42" not in other._cache  # not only unused: gone


def test_the_cache_holds_at_most_its_bound_expired_keys_first(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("es_core.keys.CACHE_ENTRIES", 5)
    first, _ = two_processes()
    for subject in "abc":
        first.cipher(subject, create=True)
    clock.now += 31  # a, b, c expire
    for subject in "defgh":
        first.cipher(subject, create=True)
    assert sorted(first._cache) == ["d", "e", "f", "g", "h"]  # the expired went first
    first.cipher("i", create=True)
    assert sorted(first._cache) == ["e", "f", "g", "h", "i"]  # then the oldest
    assert first.cipher("d", create=False) is not None  # dropped from memory, still in the table
