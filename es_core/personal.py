"""Personal fields, sealed per subject so that forgetting the subject shreds them (crypto-shredding).

An event type's personal fields are data: ``PersonalData`` maps event types to field names
(``PersonalData.of(registry)`` reads each ``DomainEvent``'s ``personal_fields``) and says whose
they are, from the stream id (``subject``: by default the text after the stream's category
prefix, ``member-42`` -> ``42``). ``EventStore.protect`` attaches it with a ``KeyStore``.

On append, the personal fields present in an event's data are taken out and sealed together
with the subject's data key (AES-GCM, with the event type, subject and field names as associated
data) into one entry under ``SEALED_KEY``; everything else stays readable. On read they are put back, or, once the
subject is forgotten, each reads as ``FORGOTTEN``. Events, versions and positions never change.
Snapshots of a protected store are sealed whole with the stream subject's key.
"""

from __future__ import annotations

import base64
import os
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import accumulate
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import msgspec
from cryptography.exceptions import InvalidTag

from .errors import InvalidInputError, KeyStoreError, PersonalDataIntegrityError, SnapshotError
from .events import PayloadRow, PreparedEvent, RecordedEvent, Snapshot, StoredEvent
from .keys import KeyStore

if TYPE_CHECKING:
    from .codec import EventRegistry

__all__ = ["FORGOTTEN", "SEALED_KEY", "PersonalData", "Sealer", "subject_after_category"]

FORGOTTEN = "<forgotten>"
"""What every personal field of a forgotten subject reads as (a str, so personal fields are typed
``str``; ``EventRegistry`` checks this at registration)."""

SEALED_KEY = "$personal"
"""The data key under which an event's sealed personal fields are stored:
``{"subject": ..., "fields": [...], "sealed": base64(nonce + AES-GCM ciphertext)}``. Reserved:
an event whose data uses it is refused (``InvalidInputError``)."""

_SEALED_BYTES = b'"$personal"'
_ENTRY = b'"$personal":{'  # the sealed entry as _seal writes it: the payload's last key
_BEFORE_ENTRY = b",{"  # (as ints) what precedes a top-level last key
_SNAPSHOT_MAGIC = b"\x00sealed1"  # no JSON or msgpack state begins with a NUL byte
_NONCE = 12
_decode = msgspec.json.decode
_encode = msgspec.json.encode
_ROW_DATA = itemgetter(3)  # PayloadRow's data
_STORED_DATA = itemgetter(6)  # StoredEvent's data


def sealed_indexes(payloads: Sequence[bytes]) -> list[int]:
    """Indexes of the payloads that may hold a sealed entry. One search of the joined bytes
    in C, so a page without any costs no Python work per event (stored JSON objects begin with
    ``{`` and end with ``}``, so the marker cannot straddle two of them)."""
    joined = b"".join(payloads)
    start = joined.find(_SEALED_BYTES)
    if start < 0:
        return []
    ends = list(accumulate(map(len, payloads)))
    found = []
    while start >= 0:
        i = bisect_right(ends, start)
        found.append(i)
        start = joined.find(_SEALED_BYTES, ends[i])
    return found


def subject_after_category(stream_id: str) -> str:
    """``member-42`` -> ``42``: the text after the first ``-`` (the whole id when there is none)."""
    _category, dash, rest = stream_id.partition("-")
    return rest if dash and rest else stream_id


class PersonalData:
    """Which fields of which event types are personal, and whose (``subject`` of a stream id)."""

    def __init__(
        self,
        fields: Mapping[str, Iterable[str]],
        *,
        subject: Callable[[str], str] = subject_after_category,
    ) -> None:
        checked: dict[str, tuple[str, ...]] = {}
        for event_type, names in fields.items():
            names = tuple(names)
            if not names or not all(isinstance(n, str) and n and n != SEALED_KEY for n in names):
                raise InvalidInputError(f"personal fields of {event_type!r} must be non-empty field names")
            checked[event_type] = names
        self.fields: Mapping[str, tuple[str, ...]] = checked
        self.subject = subject

    @classmethod
    def of(cls, registry: EventRegistry, *, subject: Callable[[str], str] = subject_after_category) -> PersonalData:
        """From the ``personal_fields`` of a registry's event classes."""
        return cls(registry.personal_fields(), subject=subject)

    def __repr__(self) -> str:
        return f"PersonalData({dict(self.fields)!r})"


class Sealer:
    """Seals and opens the personal fields of one store's events with a ``KeyStore``."""

    def __init__(self, personal: PersonalData, keys: KeyStore) -> None:
        self.personal = personal
        self.keys = keys

    # -- writing ---------------------------------------------------------------------------

    def seal_events(self, stream_id: str, events: list[PreparedEvent]) -> list[PreparedEvent]:
        """The events with their personal fields sealed (unchanged when they have none).
        ``SubjectForgottenError`` for a forgotten subject's personal fields: nothing is written."""
        fields = self.personal.fields
        for e in events:  # a reader would take the key for a sealed entry: refused in every event
            if _SEALED_BYTES in e.data and SEALED_KEY in _decode(e.data):
                raise InvalidInputError(f"event data may not use the reserved key {SEALED_KEY!r}")
        if not any(e.event_type in fields for e in events):
            return events
        subject = self.personal.subject(stream_id)
        return [self._seal(subject, e, fields[e.event_type]) if e.event_type in fields else e for e in events]

    def _seal(self, subject: str, event: PreparedEvent, names: tuple[str, ...]) -> PreparedEvent:
        data = _decode(event.data)  # the reserved key was refused by seal_events
        present = [n for n in names if n in data]
        if not present:
            return event
        plain = _encode({n: data.pop(n) for n in present})
        nonce = os.urandom(_NONCE)
        aad = _context(event.event_type, subject, present)
        sealed = nonce + self.keys.sealing_cipher(subject).encrypt(nonce, plain, aad)
        data[SEALED_KEY] = {"subject": subject, "fields": present, "sealed": base64.b64encode(sealed).decode()}
        return PreparedEvent(event.event_id, event.event_type, event.schema_version, _encode(data), event.metadata)

    def seal_snapshot(self, snapshot: Snapshot) -> Snapshot:
        subject = self.personal.subject(snapshot.stream_id)
        nonce = os.urandom(_NONCE)
        aad = _snapshot_context(snapshot, subject)
        state = _SNAPSHOT_MAGIC + nonce + self.keys.sealing_cipher(subject).encrypt(nonce, snapshot.state, aad)
        return msgspec.structs.replace(snapshot, state=state)

    # -- reading ---------------------------------------------------------------------------

    def open_data(self, stream_id: str, event_type: str, data: dict[str, Any]) -> None:
        """Put the sealed fields back into ``data`` (in place), or ``FORGOTTEN`` for each."""
        data.update(_decode(self._open_envelope(stream_id, event_type, data.pop(SEALED_KEY))))

    def _open_envelope(self, stream_id: str, event_type: str, envelope: object) -> bytes:
        """The sealed fields as the JSON object they were sealed from (``FORGOTTEN`` for each
        once the subject is forgotten)."""
        try:
            subject, names, sealed = envelope["subject"], envelope["fields"], envelope["sealed"]  # type: ignore[index]
            sealed = base64.b64decode(sealed)
            aad = "\x00".join((event_type, subject, *names)).encode()
        except (TypeError, KeyError, ValueError):
            raise PersonalDataIntegrityError(f"event {event_type} has a malformed sealed entry") from None
        if subject != self.personal.subject(stream_id):
            # the entry names its subject, and an edit to it must not pick another member's key
            # (or a forgotten member's placeholder): it is the stream's, or the entry is altered
            raise PersonalDataIntegrityError(
                f"the sealed entry of a {event_type} event in stream {stream_id!r} names another subject"
            )
        aead = self.keys.cipher(subject, create=False)
        if aead is None:
            if self.keys.status(subject) == "unknown":
                raise KeyStoreError(
                    f"no data key for subject {subject!r}: the key store is not the one their events were sealed with"
                )
            return _encode(dict.fromkeys(names, FORGOTTEN))
        try:
            return aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], aad)
        except (InvalidTag, ValueError):
            raise PersonalDataIntegrityError(
                f"the sealed fields of a {event_type} event of subject {subject!r} fail their integrity check"
            ) from None

    def _open_payload(self, stream_id: str, event_type: str, payload: bytes) -> bytes | None:
        """A stored payload with its sealed fields opened, or None when it has no sealed entry.
        ``_seal`` writes the entry last, so the fields are spliced in where it was, without
        decoding and re-encoding the rest; anything else takes the general path."""
        at = payload.rfind(_ENTRY)
        if at > 0 and payload.endswith(b"}}") and payload[at - 1] in _BEFORE_ENTRY:
            try:
                envelope = _decode(payload[at + len(_ENTRY) - 1 : -1])
            except msgspec.DecodeError:
                envelope = None
            if isinstance(envelope, dict):
                plain = self._open_envelope(stream_id, event_type, envelope)
                return payload[:at] + plain[1:-1] + b"}"
        data = _decode(payload)
        if not isinstance(data, dict) or SEALED_KEY not in data:
            return None
        self.open_data(stream_id, event_type, data)
        return _encode(data)

    def open_records(self, records: Iterable[RecordedEvent]) -> Iterator[RecordedEvent]:
        for record in records:
            if SEALED_KEY in record.data:
                self.open_data(record.stream_id, record.event_type, record.data)
            yield record

    def open_rows(self, stream_id: str, rows: list[PayloadRow]) -> list[PayloadRow]:
        """Payload rows (a replay of ``stream_id``) with sealed fields opened."""
        found = sealed_indexes(list(map(_ROW_DATA, rows)))
        if not found:
            return rows
        opened = list(rows)
        for i in found:
            version, event_type, schema_version, payload = rows[i]
            data = self._open_payload(stream_id, event_type, payload)
            if data is not None:
                opened[i] = (version, event_type, schema_version, data)
        return opened

    def open_stored_pages(self, pages: Iterable[list[StoredEvent]]) -> Iterator[list[StoredEvent]]:
        """Pages of stored events (the global log's, a split's) with sealed fields opened in
        their payload bytes, so that readers decoding lazily see what ``read_all`` shows."""
        for page in pages:
            found = sealed_indexes(list(map(_STORED_DATA, page)))
            if not found:
                yield page
                continue
            opened = list(page)
            for i in found:
                row = page[i]
                data = self._open_payload(row[0], row[4], row[6])
                if data is not None:  # rows may be the driver's plain tuples: rebuilt by field order
                    opened[i] = StoredEvent(*row[:6], data, *row[7:])
            yield opened

    def open_page(self, stored: Sequence[StoredEvent], records: list[RecordedEvent]) -> list[RecordedEvent]:
        """A stream read's records (decoded from ``stored``) with sealed fields opened."""
        for i in sealed_indexes(list(map(_STORED_DATA, stored))):
            record = records[i]
            if SEALED_KEY in record.data:
                self.open_data(record.stream_id, record.event_type, record.data)
        return records

    def open_snapshot(self, snapshot: Snapshot | None) -> Snapshot | None:
        """The snapshot's state opened; None once its subject is forgotten (the caller replays)."""
        if snapshot is None or not snapshot.state.startswith(_SNAPSHOT_MAGIC):
            return snapshot
        subject = self.personal.subject(snapshot.stream_id)
        aead = self.keys.cipher(subject, create=False)
        if aead is None:
            return None
        body = snapshot.state[len(_SNAPSHOT_MAGIC):]
        try:
            state = aead.decrypt(body[:_NONCE], body[_NONCE:], _snapshot_context(snapshot, subject))
        except (InvalidTag, ValueError):
            raise SnapshotError(f"sealed snapshot of {snapshot.stream_id!r} fails its integrity check") from None
        return msgspec.structs.replace(snapshot, state=state)


def refuse_sealed_pages(pages: Iterable[list[StoredEvent]]) -> Iterator[list[StoredEvent]]:
    """Stored pages as they are, but ``KeyStoreError`` for one holding a sealed entry: a store
    whose events hold sealed fields must be opened with its key store (``EventStore.protect``)."""
    for page in pages:
        refuse_sealed_page(page)
        yield page


def refuse_sealed_page(page: Sequence[StoredEvent]) -> Sequence[StoredEvent]:
    for i in sealed_indexes(list(map(_STORED_DATA, page))):
        if SEALED_KEY in _decode(page[i][6]):
            raise _locked()
    return page


def refuse_sealed_rows(rows: list[PayloadRow]) -> list[PayloadRow]:
    for i in sealed_indexes(list(map(_ROW_DATA, rows))):
        if SEALED_KEY in _decode(rows[i][3]):
            raise _locked()
    return rows


def is_sealed_snapshot(snapshot: Snapshot | None) -> bool:
    return snapshot is not None and snapshot.state.startswith(_SNAPSHOT_MAGIC)


def _locked() -> KeyStoreError:
    return KeyStoreError("this event log holds sealed personal fields: open it with its key store (EventStore.protect)")


def _context(event_type: str, subject: str, names: list[str]) -> bytes:
    return "\x00".join((event_type, subject, *names)).encode()


def _snapshot_context(snapshot: Snapshot, subject: str) -> bytes:
    return f"{snapshot.stream_id}\x00{snapshot.version}\x00{snapshot.state_type}\x00{subject}".encode()
