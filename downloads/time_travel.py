"""State in the past, in two times.

Every event of a member has two times: ``at``, when the member acted (the business time, as
their device said, within the rules' clock bounds), and ``recorded_at``, when the store wrote
it (the recording time). They differ when a request arrives late, and so do the two ways of
asking for a past state:

* *as it was known* at a recording time: the events recorded by then, in their order. What the
  service itself knew at that moment; what an audit of its decisions needs.
  (``DownloadService.member(id, known_by=t)``, the repository's ``as_of``.)
* *as it happened* by a business time: the events known now (or known by a recording time)
  whose ``at`` is at or before it, applied in stream order. What the member's account looked
  like at that moment, with what arrived late put back where it happened.
  (``DownloadService.member(id, happened_by=t)``, this module.)

"As it happened" cannot use snapshots (a snapshot may hold events that happened later), so it
replays the whole stream.
"""

from __future__ import annotations

from datetime import datetime

from es_core import EventRegistry, EventStore, HistoryTruncatedError, InvalidInputError

from .member import MemberAccount


def member_as_it_happened(
    store: EventStore,
    registry: EventRegistry,
    member_id: str,
    happened_by: datetime,
    *,
    known_by: datetime | None = None,
) -> MemberAccount:
    """The member with every event that happened by ``happened_by`` (and was recorded by
    ``known_by``, when given). ``version`` is the stream version of the last event applied."""
    for name, moment in (("happened_by", happened_by), ("known_by", known_by)):
        if moment is not None and (not isinstance(moment, datetime) or moment.tzinfo is None):
            raise InvalidInputError(f"{name} must be a timezone-aware datetime, not {moment!r}")
    member = MemberAccount(member_id)
    records = store.read_stream(member.stream_id)
    if records and records[0].version != 1:
        raise HistoryTruncatedError(
            f"{member.stream_id!r}: events before version {records[0].version} were archived; "
            "state as it happened needs every event"
        )
    for record in records:
        if known_by is not None and record.recorded_at > known_by:
            break  # recorded after the moment asked about: not known yet
        for event in registry.decode(record):
            if event.at <= happened_by:  # type: ignore[attr-defined]  # every downloads event has `at`
                member.apply(event)
                member.version = record.version
    return member
