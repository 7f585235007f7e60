"""The CQL the Cassandra store runs against ``events`` (``{ks}`` is the keyspace).

Kept apart so the append protocol, the readers and the feed share one spelling of each statement
(a handle prepares each text once).
"""

from __future__ import annotations

from .cassandra_schema import EVENT_COLUMNS

STATICS = (
    "SELECT DISTINCT stream_id, bucket, head, head_id, head_position, fence FROM {ks}.events"
    " WHERE stream_id = ? AND bucket IN ?"
)
_ROW = (
    "event_id = ?, event_type = ?, schema_version = ?, data = ?, metadata = ?, recorded_at = ?, position = ?"
    " WHERE stream_id = ? AND bucket = ? AND version = ?"
)
# The first new row and the partition's head in one conditional statement: the head conditions
# prove the stream is at the expected version (and refuse retries of its latest append, clocks
# behind the stream's last position and fenced positions); `event_id = null` is the row's
# IF NOT EXISTS. An append of one event is this statement alone.
FIRST_ROW_NEXT = (
    "UPDATE {ks}.events SET head = ?, head_id = ?, head_position = ?, "
    + _ROW
    + " IF head = ? AND head_id != ? AND head_position < ? AND fence < ? AND event_id = null"
)
FIRST_ROW_FIRST = (  # a partition's first append also starts its fence (null only before any append)
    "UPDATE {ks}.events SET head = ?, head_id = ?, head_position = ?, fence = ?, "
    + _ROW
    + " IF head = null AND fence = ? AND event_id = null"
)
INSERT_EVENT = (
    "INSERT INTO {ks}.events (stream_id, bucket, version, event_id, event_type, schema_version, data, metadata,"
    " recorded_at, position) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS"
)
_RANGE = " FROM {ks}.events WHERE stream_id = ? AND bucket = ? AND version > ? AND version <= ?"
SELECT_ROWS = "SELECT " + EVENT_COLUMNS + _RANGE + " LIMIT ?"
SELECT_ROWS_DESC = "SELECT " + EVENT_COLUMNS + _RANGE + " ORDER BY version DESC LIMIT ?"
SELECT_PAYLOADS = "SELECT version, event_type, schema_version, data, head" + _RANGE
SELECT_FROM = "SELECT " + EVENT_COLUMNS + " FROM {ks}.events WHERE stream_id = ? AND bucket = ? AND version >= ?"
SELECT_BY_ID = (
    "SELECT version, position, recorded_at FROM {ks}.events WHERE stream_id = ? AND bucket = ? AND event_id = ?"
)
HEAD_POSITION = "SELECT head_position FROM {ks}.events WHERE stream_id = ? AND bucket = ? LIMIT 1"
FENCE = "SELECT fence FROM {ks}.events WHERE stream_id = ? AND bucket = ? LIMIT 1"
RAISE_FENCE = "UPDATE {ks}.events SET fence = ? WHERE stream_id = ? AND bucket = ? IF fence < ?"
CREATE_FENCE = "UPDATE {ks}.events SET fence = ? WHERE stream_id = ? AND bucket = ? IF fence = null"

MAX_VERSION = (1 << 62) - 1
MAX_LIMIT = (1 << 31) - 1
