"""The limits every backend enforces on input (checked in ``es_core.validation``)."""

from __future__ import annotations

__all__ = ["MAX_EVENTS_PER_APPEND", "MAX_EVENT_TYPE_LENGTH", "MAX_PAYLOAD_BYTES", "MAX_STREAM_ID_LENGTH"]

MAX_STREAM_ID_LENGTH = 256
"""Characters; keeps ids well inside every backend's key limits."""

MAX_PAYLOAD_BYTES = 1024 * 1024
"""Default limit on one event's encoded data plus metadata (1 MiB); stores accept a lower one."""

MAX_EVENTS_PER_APPEND = 1000
"""One append is one transaction (one conditional batch on Cassandra): keep it bounded."""

MAX_EVENT_TYPE_LENGTH = 128
"""Characters of an event type name (``[A-Za-z][A-Za-z0-9_.:-]*``)."""
