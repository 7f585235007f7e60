"""Typed events and their schema history.

A ``DomainEvent`` subclass names its ``event_type`` and current ``schema_version``. Older stored
shapes are brought up to date on every read by *upcasters*: pure steps keyed by
(event type, from-version). The ``EventRegistry`` checks the chains before any event is read,
so a gap, a duplicate step or a step to nowhere fails at start-up, not in production.

Step kinds, each returning zero or more (event type, schema version, data) shapes:

* ``upcaster(type, v)``          ``dict -> dict``, to (type, v + 1): added fields, renamed fields
* ``rename_type(old, v, new)``   to (new, new_version), optionally transforming the data
* ``split(type, v, fn, into)``   one stored event becomes several
* ``retire(type, upto)``         stored events of a retired type are dropped on read
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar
from uuid import UUID

import msgspec
import msgspec.inspect

from .encoding import NO_METADATA, StoredRecord, encode_data, encodes_as_strict_json
from .errors import (
    EventDecodeError,
    EventSourcingError,
    SchemaError,
    UnknownEventTypeError,
    UnsupportedSchemaVersionError,
    UpcasterChainError,
)
from .events import NewEvent, PreparedEvent, RecordedEvent
from .ids import time_ordered_id
from .validation import check_event_type

Shape = tuple[str, int, dict[str, Any]]
Step = Callable[[dict[str, Any]], list[Shape]]
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
E = TypeVar("E", bound="DomainEvent")
_json_decode = msgspec.json.decode
_json_encode = msgspec.json.encode


class DomainEvent(msgspec.Struct, frozen=True, kw_only=True):
    """Base of typed events. Subclasses set ``event_type`` and ``schema_version`` as class
    attributes; fields are the payload. ``first_schema_version`` is for types that begin life
    at a later version (e.g. the target of a rename). ``personal_fields`` names the fields that
    hold personal data (``str`` fields): a protected store seals them per subject, and they read
    as ``es_core.personal.FORGOTTEN`` once the subject is forgotten."""

    event_type: ClassVar[str] = ""
    schema_version: ClassVar[int] = 1
    first_schema_version: ClassVar[int] = 1
    personal_fields: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True)
class _StepInfo:
    step: Step
    targets: tuple[tuple[str, int], ...]  # declared, so chains can be validated before reading
    kind: str


@dataclass(frozen=True)
class UpcastStep:
    """One step :meth:`EventRegistry.trace` took: its kind (``upcast``, ``rename``, ``split`` or
    ``retired``), the shape it read, that shape's data, and the shapes it produced (none when a
    retired type is dropped)."""

    kind: str
    source: tuple[str, int]
    data: dict[str, Any]
    results: tuple[Shape, ...]


@dataclass(frozen=True)
class Decoded:
    """A stored record and one current-shape event decoded from it."""

    record: RecordedEvent
    event: DomainEvent


class EventRegistry:
    """Event classes by type name, plus the upcaster steps from every older stored shape.

    ``tolerant=True`` skips events of unknown types or newer schema versions instead of raising,
    counting them in ``skipped``: for reading a store while a deploy is rolled back.
    """

    MAX_STEPS = 64  # a longer chain is a cycle

    def __init__(self, *classes: type[DomainEvent], tolerant: bool = False) -> None:
        self._classes: dict[str, type[DomainEvent]] = {}
        self._steps: dict[tuple[str, int], _StepInfo] = {}
        self._retired: dict[str, int] = {}
        self._validated = False
        self._decoders: dict[type[DomainEvent], msgspec.json.Decoder[Any]] = {}
        self._current: dict[str, tuple[int, Callable[[bytes], DomainEvent]]] | None = None
        # per class that prepare() has checked once: (event type, schema version, encodes directly)
        self._prepared_as: dict[type[DomainEvent], tuple[str, int, bool]] = {}
        self.tolerant = tolerant
        self.skipped: Counter[tuple[str, int]] = Counter()
        for cls in classes:
            self.register(cls)

    # -- declaring -----------------------------------------------------------------------

    def register(self, cls: type[E]) -> type[E]:
        """Register an event class (usable as a class decorator)."""
        name = getattr(cls, "event_type", "")
        if not isinstance(cls, type) or not issubclass(cls, DomainEvent) or not name:
            raise UpcasterChainError(f"{cls!r} is not a DomainEvent subclass with an event_type")
        if name in self._classes and self._classes[name] is not cls:
            raise UpcasterChainError(f"event type {name!r} is registered twice")
        if cls.schema_version < cls.first_schema_version:
            raise UpcasterChainError(f"{name}: schema_version is below first_schema_version")
        _check_personal_fields(cls)
        self._classes[name] = cls
        self._changed()
        return cls

    def upcaster(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator form of ``add_upcaster``."""

        def decorate(fn: Upcaster) -> Upcaster:
            self.add_upcaster(event_type, from_version, fn)
            return fn

        return decorate

    def add_upcaster(self, event_type: str, from_version: int, fn: Upcaster) -> None:
        """A ``dict -> dict`` step from (type, v) to (type, v + 1)."""
        target = (event_type, from_version + 1)
        self._add(event_type, from_version, _StepInfo(lambda d: [(*target, fn(d))], (target,), "upcast"))

    def rename_type(
        self,
        old_type: str,
        old_version: int,
        new_type: str,
        new_version: int = 1,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        """Stored (old_type, old_version) reads as (new_type, new_version)."""
        target = (new_type, new_version)
        fn = transform or (lambda d: d)
        self._add(old_type, old_version, _StepInfo(lambda d: [(*target, fn(d))], (target,), "rename"))

    def split(
        self,
        event_type: str,
        from_version: int,
        fn: Callable[[dict[str, Any]], Iterable[Shape]],
        into: Iterable[tuple[str, int]],
    ) -> None:
        """One stored event becomes several; ``into`` declares the shapes ``fn`` may return."""
        targets = tuple(into)
        allowed = set(targets)

        def step(data: dict[str, Any]) -> list[Shape]:
            shapes = list(fn(data))
            for t, v, _ in shapes:
                if (t, v) not in allowed:
                    raise UpcasterChainError(f"split of {event_type} v{from_version} produced undeclared ({t}, v{v})")
            return shapes

        self._add(event_type, from_version, _StepInfo(step, targets, "split"))

    def retire(self, event_type: str, upto_version: int) -> None:
        """Events of a retired type (any stored version up to ``upto_version``) are dropped."""
        if event_type in self._retired:
            raise UpcasterChainError(f"event type {event_type!r} is retired twice")
        self._retired[event_type] = upto_version
        self._changed()

    def _add(self, event_type: str, from_version: int, info: _StepInfo) -> None:
        key = (event_type, from_version)
        if key in self._steps:
            raise UpcasterChainError(f"duplicate upcaster step from {event_type} v{from_version}")
        if not isinstance(from_version, int) or from_version < 1:
            raise UpcasterChainError(f"upcaster from-version must be >= 1, not {from_version!r}")
        self._steps[key] = info
        self._changed()

    def _changed(self) -> None:
        self._validated = False
        self._current = None

    # -- checking ------------------------------------------------------------------------

    def validate(self) -> None:
        """Check every chain ends at a registered current version. Raises ``UpcasterChainError``."""
        problems: list[str] = []
        for (t, v), info in sorted(self._steps.items()):
            cls = self._classes.get(t)
            if cls is not None and v >= cls.schema_version:
                problems.append(f"step from {t} v{v} starts at or after its current version v{cls.schema_version}")
            if t in self._retired:
                problems.append(f"step from {t} v{v} belongs to a retired type")
            for target in info.targets:
                if not self._leads_home(target, set()):
                    problems.append(f"step from {t} v{v} leads to {target[0]} v{target[1]}, which is nowhere")
        for name, cls in sorted(self._classes.items()):
            if name in self._retired:
                problems.append(f"{name} is both registered and retired")
            for v in range(cls.first_schema_version, cls.schema_version):
                if (name, v) not in self._steps:
                    problems.append(f"gap: {name} is at v{cls.schema_version} but has no step from v{v}")
        if problems:
            raise UpcasterChainError("upcaster registry is inconsistent: " + "; ".join(problems))
        self._validated = True

    def _leads_home(self, shape: tuple[str, int], seen: set[tuple[str, int]]) -> bool:
        t, v = shape
        cls = self._classes.get(t)
        if cls is not None and v == cls.schema_version:
            return True
        if t in self._retired and v <= self._retired[t]:
            return True
        if shape in seen or shape not in self._steps:
            return False
        seen.add(shape)
        return all(self._leads_home(target, seen) for target in self._steps[shape].targets)

    # -- reading and writing -------------------------------------------------------------

    @property
    def classes(self) -> Mapping[str, type[DomainEvent]]:
        return dict(self._classes)

    def personal_fields(self) -> dict[str, tuple[str, ...]]:
        """Personal field names by event type, for the classes that declare any."""
        return {name: cls.personal_fields for name, cls in self._classes.items() if cls.personal_fields}

    def current_version(self, event_type: str) -> int | None:
        cls = self._classes.get(event_type)
        return cls.schema_version if cls else None

    def encode(
        self,
        event: DomainEvent,
        *,
        event_id: UUID | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> NewEvent:
        """The store's ``NewEvent`` for a typed event."""
        cls = self._registered(event)
        return NewEvent(
            event_type=cls.event_type,
            schema_version=cls.schema_version,
            data=_to_builtins(event),
            event_id=event_id or time_ordered_id(),
            metadata=metadata if metadata is not None else {},
        )

    def prepare(
        self, event: DomainEvent, *, event_id: UUID | None = None, metadata: bytes = NO_METADATA
    ) -> PreparedEvent:
        """A typed event encoded for ``EventStore.append_prepared``, with ``metadata`` encoded
        already (``es_core.encoding.encode_metadata``), so a batch shares one encoding of it.

        A class whose fields can only hold strict JSON (no floats, which JSON cannot keep as NaN
        or infinity, and no ``Any``) is encoded straight from the struct; any other class goes
        through the same checks as ``EventStore.append``."""
        # one lookup on the hot path; a class's registration and type name cannot change later
        # (register refuses a second class for a name), so they are checked on first use only
        ready = self._prepared_as.get(type(event))
        if ready is None:
            cls = self._registered(event)
            ready = self._prepared_as[cls] = (check_event_type(cls.event_type), cls.schema_version,
                                              self.encodes_directly(cls))
        name, schema_version, direct = ready
        data = _json_encode(event) if direct else encode_data(_to_builtins(event))
        return PreparedEvent(event_id or time_ordered_id(), name, schema_version, data, metadata)

    @staticmethod
    def encodes_directly(cls: type[DomainEvent]) -> bool:
        """Whether ``prepare`` encodes ``cls`` straight from the struct, its fields holding only
        strict JSON, rather than through ``EventStore.append``'s checks (a float or ``Any`` field)."""
        return encodes_as_strict_json(msgspec.inspect.type_info(cls))

    def _registered(self, event: DomainEvent) -> type[DomainEvent]:
        cls = type(event)
        if self._classes.get(cls.event_type) is not cls:
            raise UnknownEventTypeError(cls.event_type or cls.__name__, cls.schema_version)
        return cls

    def upcast(self, event_type: str, schema_version: int, data: dict[str, Any]) -> list[Shape]:
        """Bring one stored shape to current shapes (zero, one or several). A step that fails on
        the payload (a key it expects is missing...) raises ``EventDecodeError``, naming it."""
        return self._walk(event_type, schema_version, data, None)

    def trace(self, event_type: str, schema_version: int, data: dict[str, Any]) -> list[UpcastStep]:
        """Every step :meth:`upcast` takes for one stored shape, in order, with the data each
        step read (to show or debug a chain; raises as ``upcast`` does)."""
        steps: list[UpcastStep] = []
        self._walk(event_type, schema_version, data, steps.append)
        return steps

    def _walk(
        self,
        event_type: str,
        schema_version: int,
        data: dict[str, Any],
        record: Callable[[UpcastStep], None] | None,
    ) -> list[Shape]:
        if not self._validated:
            self.validate()
        done: list[Shape] = []
        pending: list[Shape] = [(event_type, schema_version, data)]
        steps = 0
        while pending:
            t, v, d = pending.pop(0)
            cls = self._classes.get(t)
            if cls is not None and v == cls.schema_version:
                done.append((t, v, d))
                continue
            info = self._steps.get((t, v))
            if info is not None:
                steps += 1
                if steps > self.MAX_STEPS:
                    raise UpcasterChainError(f"upcasting {event_type} v{schema_version} does not terminate")
                try:
                    produced = info.step(copy.deepcopy(d))  # steps stay pure even if careless
                except EventSourcingError:
                    raise
                except Exception as exc:  # a step meeting a payload it cannot read (a missing key...)
                    raise EventDecodeError(
                        f"the {info.kind} step from {t} v{v} failed on a stored payload: {type(exc).__name__}: {exc}"
                    ) from exc
                if record is not None:
                    record(UpcastStep(info.kind, (t, v), d, tuple(produced)))
                pending[:0] = produced
                continue
            if t in self._retired and v <= self._retired[t]:
                if record is not None:
                    record(UpcastStep("retired", (t, v), d, ()))
                continue
            if cls is not None and v > cls.schema_version:
                raise UnsupportedSchemaVersionError(t, v, cls.schema_version)
            if cls is not None:
                raise UpcasterChainError(f"no upcaster from {t} v{v} to v{cls.schema_version}")
            raise UnknownEventTypeError(t, v)
        return done

    def decode(self, record: RecordedEvent | StoredRecord) -> list[DomainEvent]:
        """Current-shape typed events for one stored record (empty if retired or skipped)."""
        cls = self._classes.get(record.event_type)
        if self._validated and cls is not None and cls.schema_version == record.schema_version:
            shapes = [(record.event_type, record.schema_version, record.data)]  # the common case
        else:
            shapes = self._upcast_or_skip(record)
        return self._typed(shapes, record.event_type, record.schema_version, record.stream_id, record.version,
                           record.event_id)

    def decode_json(
        self, event_type: str, schema_version: int, data: bytes, *, stream_id: str = "", version: int = 0
    ) -> list[DomainEvent]:
        """Current-shape typed events straight from a stored JSON payload, for replays.

        A payload already at its type's current version is decoded into the event class in one
        step, skipping the intermediate dict; older shapes go through the upcasters as in
        ``decode``. ``stream_id`` and ``version`` only name the event in errors."""
        cls = self._classes.get(event_type)
        if self._validated and cls is not None and cls.schema_version == schema_version:
            try:
                return [self._decoder(cls).decode(data)]
            except msgspec.DecodeError as exc:  # includes ValidationError
                raise EventDecodeError(
                    f"stored event ({event_type} v{schema_version}, stream {stream_id!r} v{version}) "
                    f"does not fit {event_type}: {exc}"
                ) from exc
        try:
            payload = _json_decode(data)
        except msgspec.DecodeError as exc:
            raise EventDecodeError(f"stored event (stream {stream_id!r} v{version}) is not JSON: {exc}") from exc
        shapes = self._upcast_shape_or_skip(event_type, schema_version, payload)
        return self._typed(shapes, event_type, schema_version, stream_id, version)

    def current_decoders(self) -> Mapping[str, tuple[int, Callable[[bytes], DomainEvent]]]:
        """Each registered event type's current schema version and a function that decodes a
        JSON payload of that version straight into its class: ``decode_json``'s common case
        without its call, for replays. A payload that does not fit raises ``msgspec`` errors
        here; ``decode_json`` reports the same payload as ``EventDecodeError``."""
        if not self._validated:
            self.validate()
        current = self._current
        if current is None:
            current = self._current = {
                name: (cls.schema_version, self._decoder(cls).decode) for name, cls in self._classes.items()
            }
        return current

    def _decoder(self, cls: type[DomainEvent]) -> msgspec.json.Decoder[Any]:
        decoder = self._decoders.get(cls)
        if decoder is None:
            decoder = self._decoders[cls] = msgspec.json.Decoder(cls)
        return decoder

    def _typed(
        self, shapes: list[Shape], event_type: str, schema_version: int, stream_id: str, version: int,
        event_id: UUID | None = None,
    ) -> list[DomainEvent]:
        """Each current shape as its event class; the other arguments only name the stored
        event in errors (formatted on failure, so a replay pays nothing for them)."""
        events = []
        for t, _, d in shapes:
            try:
                events.append(msgspec.convert(d, self._classes[t]))
            except msgspec.ValidationError as exc:
                named = f"{event_id} " if event_id is not None else ""
                raise EventDecodeError(
                    f"stored event {named}({event_type} v{schema_version}, stream {stream_id!r} v{version}) "
                    f"does not fit {t}: {exc}"
                ) from exc
        return events

    def _upcast_or_skip(self, record: RecordedEvent | StoredRecord) -> list[Shape]:
        return self._upcast_shape_or_skip(record.event_type, record.schema_version, record.data)

    def _upcast_shape_or_skip(self, event_type: str, schema_version: int, data: dict[str, Any]) -> list[Shape]:
        try:
            return self.upcast(event_type, schema_version, data)
        except (UnknownEventTypeError, UnsupportedSchemaVersionError):
            if not self.tolerant:
                raise
            self.skipped[(event_type, schema_version)] += 1
            return []

    def decode_all(self, records: Iterable[RecordedEvent]) -> Iterator[Decoded]:
        """Decode a stream or the global log lazily, record by record."""
        for record in records:
            for event in self.decode(record):
                yield Decoded(record, event)


_to_builtins = msgspec.to_builtins

__all__ = ["Decoded", "DomainEvent", "EventRegistry", "SchemaError"]


def _check_personal_fields(cls: type[DomainEvent]) -> None:
    """Personal fields must be fields that can hold the ``FORGOTTEN`` placeholder (a str)."""
    fields = {f.name: f.type for f in msgspec.inspect.type_info(cls).fields}  # type: ignore[attr-defined]
    for name in cls.personal_fields:
        kind = fields.get(name)
        kinds = kind.types if isinstance(kind, msgspec.inspect.UnionType) else (kind,)
        if not any(isinstance(k, msgspec.inspect.StrType) for k in kinds):
            raise SchemaError(f"{cls.event_type}: personal field {name!r} is not a str field")
