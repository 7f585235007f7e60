"""Counting what the Cassandra store sends: client requests (round trips) and, among them,
conditional statements (each one Paxos round on the server), through the driver's request-init
listener, so every request of every code path is counted, including concurrent ones."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

_CONDITIONAL = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b.*\bIF\b", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Counts:
    requests: int
    paxos: int

    def __sub__(self, other: Counts) -> Counts:
        return Counts(self.requests - other.requests, self.paxos - other.paxos)

    def per(self, n: int) -> dict[str, float]:
        return {"requests": round(self.requests / n, 3), "paxos_rounds": round(self.paxos / n, 3)}


class RequestCounter:
    """Counts the requests a session creates (``session.add_request_init_listener``)."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._lock = threading.Lock()
        self._requests = 0
        self._paxos = 0
        session.add_request_init_listener(self._on_request)

    def close(self) -> None:
        self._session.remove_request_init_listener(self._on_request)

    def _on_request(self, future: Any) -> None:
        conditional = self._conditional(future.query)
        with self._lock:
            self._requests += 1
            self._paxos += conditional

    def _conditional(self, query: Any) -> bool:
        """A conditional write (``IF ...``), or a batch holding one (a batch is one Paxos round)."""
        statements = getattr(query, "_statements_and_parameters", None)
        if statements is not None:
            return any(self._text(is_prepared, item) for is_prepared, item, _ in statements)
        text = getattr(getattr(query, "prepared_statement", None), "query_string", None)
        return bool(_CONDITIONAL.match(text or getattr(query, "query_string", "") or ""))

    def _text(self, is_prepared: bool, item: Any) -> bool:
        if is_prepared:  # a batch keeps only the prepared statement's id
            prepared = self._session.cluster._prepared_statements.get(item)
            item = prepared.query_string if prepared is not None else ""
        return bool(_CONDITIONAL.match(item))

    def counts(self) -> Counts:
        with self._lock:
            return Counts(self._requests, self._paxos)
