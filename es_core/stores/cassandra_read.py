"""Reading streams from the Cassandra store: event rows across a stream's partitions, and the
one place they become ``StoredEvent`` (decoded by ``EventStore``, as every backend's are)."""

from __future__ import annotations

from typing import Any

from ..events import StoredEvent
from .cassandra_chain import Chain
from .cassandra_statements import MAX_LIMIT, MAX_VERSION, SELECT_PAYLOADS, SELECT_ROWS, SELECT_ROWS_DESC


def stored(stream_id: str, row: tuple[Any, ...]) -> StoredEvent:
    """An event row (``cassandra_schema.EVENT_COLUMNS``) as a ``StoredEvent``: the driver's
    UUID as its 16 bytes, everything else as stored."""
    event_id = row[1]
    return StoredEvent(
        stream_id, row[0], row[7], event_id.bytes if event_id is not None else b"", row[2], row[3], row[4], row[5],
        row[6],
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
    next_bucket: int | None = start
    last = start
    while next_bucket is not None:
        bucket = last = next_bucket
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
        next_bucket = following if following != bucket else None
    chain.remember_tail(stream_id, last)
    return out
