"""Driver errors built the way the driver builds them, for tests of the error boundary."""

from __future__ import annotations

import struct

import cassandra.protocol
from cassandra import ConsistencyLevel
from cassandra.protocol_features import ProtocolFeatures


def cas_write_unknown(received: int = 1, blockfor: int = 2) -> BaseException:
    """What the driver raises for protocol v5's CAS_WRITE_UNKNOWN (0x1700): the error body as a
    server sends it (code, message, consistency, received, blockfor), decoded by the driver."""
    message = f"CAS operation result is unknown - proposal accepted by {received} but not a quorum.".encode()
    body = struct.pack(">iH", 0x1700, len(message)) + message
    body += struct.pack(">Hii", ConsistencyLevel.SERIAL, received, blockfor)
    decoded = cassandra.protocol.ProtocolHandler.decode_message(
        5, ProtocolFeatures(), {}, 0, 0, cassandra.protocol.ErrorMessage.opcode, body, None, None
    )
    return decoded.to_exception()
