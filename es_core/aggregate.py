"""Aggregates: state changes only by applying events; commands decide and record new ones."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

import msgspec

from .codec import DomainEvent
from .errors import SnapshotError, UnhandledEventError

S = TypeVar("S", bound=msgspec.Struct)
Handler = Callable[[Any, Any], None]
_STATE_DECODERS: dict[type[msgspec.Struct], msgspec.json.Decoder[Any]] = {}


def applies(event_cls: type[DomainEvent]) -> Callable[[Handler], Handler]:
    """Mark an aggregate method as the handler that applies ``event_cls`` to the state."""

    def mark(fn: Handler) -> Handler:
        fn._applies_to = event_cls  # type: ignore[attr-defined]  # a marker on the function object, read by __init_subclass__
        return fn

    return mark


class Aggregate(Generic[S]):
    """Base of aggregates whose state is a ``msgspec.Struct`` (``State``), so snapshots are a
    fast, schema-checked encode of ``self.state``.

    Subclasses set ``aggregate_type`` (the stream id prefix), ``State``, and
    ``state_schema_version``: bump it whenever ``State`` changes shape, and snapshots written by
    older code are ignored instead of misread.
    """

    aggregate_type: ClassVar[str] = ""
    state_schema_version: ClassVar[int] = 1
    State: ClassVar[type[msgspec.Struct]]
    _handlers: ClassVar[dict[type[DomainEvent], Handler]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers = dict(cls._handlers)
        for value in vars(cls).values():
            target = getattr(value, "_applies_to", None)
            if target is not None:
                handlers[target] = value
        cls._handlers = handlers

    def __init__(self, aggregate_id: str) -> None:
        self.id = aggregate_id
        self.stream_id = self.stream_id_for(aggregate_id)  # once: every save and load names it
        self.version = 0  # events stored so far (as loaded or saved)
        self.pending: list[DomainEvent] = []
        self.state: S = self.State()  # type: ignore[assignment]  # State is S's class; a ClassVar cannot name S
        self.replayed_on_load = 0  # events applied after the snapshot (if any) at the last load
        self.snapshot_version = 0  # version of the snapshot this instance was loaded from or saved
        # where the repository loaded it from: "cache", "snapshot" (and the events after it) or
        # "events"; "" for an aggregate made in code
        self.loaded_from = ""

    @classmethod
    def stream_id_for(cls, aggregate_id: str) -> str:
        return f"{cls.aggregate_type}-{aggregate_id}" if cls.aggregate_type else aggregate_id

    def apply(self, event: DomainEvent) -> None:
        handler = self._handlers.get(type(event))
        if handler is None:
            raise UnhandledEventError(f"{type(self).__name__} has no handler for {type(event).event_type}")
        handler(self, event)

    def record(self, event: DomainEvent) -> None:
        """Apply a new event now and keep it for the next save."""
        self.apply(event)
        self.pending.append(event)

    # -- snapshots -----------------------------------------------------------------------

    def snapshot_state(self) -> bytes:
        return msgspec.json.encode(self.state)

    def restore_state(self, state: bytes) -> None:
        decoder = _STATE_DECODERS.get(self.State)
        if decoder is None:  # one per State class: a prepared decoder, not a type lookup per load
            decoder = _STATE_DECODERS[self.State] = msgspec.json.Decoder(self.State)
        try:
            self.state = decoder.decode(state)
        except msgspec.DecodeError as exc:  # includes ValidationError
            raise SnapshotError(f"{type(self).__name__} snapshot does not decode: {exc}") from exc

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id!r} v{self.version} {self.state!r}>"
