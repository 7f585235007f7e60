"""Given / when / then for aggregate tests: given these past events, when this command runs,
then exactly these new events are recorded (or this error is raised)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .aggregate import Aggregate
from .codec import DomainEvent

A = TypeVar("A", bound=Aggregate[Any])


class Scenario(Generic[A]):
    def __init__(self, aggregate_cls: type[A], aggregate_id: str = "test") -> None:
        self.aggregate = aggregate_cls(aggregate_id)
        self._error: BaseException | None = None
        self._ran = False

    def given(self, *events: DomainEvent) -> Scenario[A]:
        for event in events:
            self.aggregate.apply(event)
            self.aggregate.version += 1
        return self

    def when(self, command: Callable[[A], object]) -> Scenario[A]:
        self._ran = True
        try:
            command(self.aggregate)
        except Exception as exc:
            self._error = exc
        return self

    def then(self, *expected: DomainEvent) -> A:
        """Assert the command succeeded and recorded exactly ``expected``; returns the aggregate."""
        assert self._ran, "call when() before then()"
        if self._error is not None:
            raise AssertionError(f"expected events, but the command raised {self._error!r}") from self._error
        assert self.aggregate.pending == list(expected), (
            f"recorded events differ:\n  got      {self.aggregate.pending}\n  expected {list(expected)}"
        )
        return self.aggregate

    def then_raises(self, error: type[BaseException], match: str | None = None) -> BaseException:
        """Assert the command raised ``error`` (with ``match`` in its message) and recorded nothing."""
        assert self._ran, "call when() before then_raises()"
        assert isinstance(self._error, error), f"expected {error.__name__}, got {self._error!r}"
        if match is not None:
            assert match in str(self._error), f"{match!r} not in {str(self._error)!r}"
        assert not self.aggregate.pending, f"a failed command recorded events: {self.aggregate.pending}"
        return self._error


def given(aggregate_cls: type[A], *events: DomainEvent, aggregate_id: str = "test") -> Scenario[A]:
    return Scenario(aggregate_cls, aggregate_id).given(*events)
