"""Reading streams from the Cassandra store: event rows across a stream's partitions, and the
one place stored rows become ``RecordedEvent``."""

from __future__ import annotations

from typing import Any

import msgspec

from ..events import RecordedEvent
from .base import moment
from .cassandra_chain import Chain
from .cassandra_statements import MAX_LIMIT, MAX_VERSION, SELECT_PAYLOADS, SELECT_ROWS, SELECT_ROWS_DESC

_decode = msgspec.json.decode


def record(stream_id: str, row: tuple[Any, ...]) -> RecordedEvent:
    """An event row (``cassandra_schema.EVENT_COLUMNS``) as a ``RecordedEvent``."""
    return RecordedEvent(
        stream_id=stream_id,
        version=row[0],
        position=row[7],
        event_id=row[1],
        event_type=row[2],
        schema_version=row[3],
        data=_decode(row[4]),
        metadata=_decode(row[5]),
        recorded_at=moment(row[6]),
    )


def stream_rows(
    chain: Chain,
    session: Any,
    prepare: Any,
    stream_id: str,
    after: int,
    upto: int | None,
    limit: int | None,
    reverse: bool,
    payloads: bool = False,
) -> list[tuple[Any, ...]]:
    """Rows of the stream's events with ``after < version <= upto`` (at most ``limit``), following
    the chain of partitions; ``payloads`` selects (version, type, schema version, data, head)."""
    high = MAX_VERSION if upto is None else upto
    want = MAX_LIMIT if limit is None else limit
    select, head_at = (prepare(SELECT_PAYLOADS), 4) if payloads else (prepare(SELECT_ROWS), 8)

    def fetch(bucket: int, got: int) -> list[tuple[Any, ...]]:
        values = (stream_id, bucket, after, high) if payloads else (stream_id, bucket, after, high, want - got)
        return list(session.execute(select, values))

    start, first_rows = 0, None
    if after:
        # usually version after+1 sits in its own bucket: one read finds it (a load after a
        # snapshot is then two round trips); otherwise the heads say where it overflowed to
        nominal = after // chain.width
        first_rows = None if reverse else fetch(nominal, 0)
        if first_rows and first_rows[0][0] == after + 1:
            start = nominal
        else:
            located = chain.locate(stream_id, after + 1)
            if located is None:
                return []
            start = located[0]
            if start != nominal:
                first_rows = None
    out: list[tuple[Any, ...]] = []
    if reverse:
        for bucket, _ in reversed(chain.chain(stream_id, start, upto=high)):
            rows = session.execute(prepare(SELECT_ROWS_DESC), (stream_id, bucket, after, high, want - len(out)))
            out.extend(r for r in rows if r[0] is not None)
            if len(out) >= want:
                break
        return out
    bucket: int | None = start
    last = start
    while bucket is not None:
        last = bucket
        rows = first_rows if first_rows is not None and bucket == start else fetch(bucket, len(out))
        if rows:
            head = rows[-1][head_at]
            out.extend(r for r in rows if r[0] is not None)
        else:  # nothing after `after` here (or truncated): the statics still name the next partition
            statics = chain.statics(stream_id, [bucket]).get(bucket)
            head = statics.head if statics else None
        if head is None or head >= high or len(out) >= want:
            break
        following = head // chain.width
        bucket = following if following != bucket else None
    chain.remember_tail(stream_id, last)
    return out
