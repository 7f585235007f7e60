"""The census of decisions: how many grants and denials each rule set judged, by its name and
content hash. A rule file edited between runs (the same name, other limits) shows up as one
name with two hashes; decisions recorded before decisions named their rules count as
``unknown``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from es_core import EventStore

from .events import DECISIONS, DownloadDenied, new_registry

UNKNOWN = "unknown"


class RuleSetDecisions(msgspec.Struct, kw_only=True):
    """The decisions one rule set (one content) judged: grants (downloads, renewals, first
    plays) and denials, and the service times of the first and last."""

    rules: str
    digest: str
    grants: int = 0
    denials: int = 0
    first: datetime | None = None
    last: datetime | None = None

    @property
    def label(self) -> str:
        return f"{self.rules}@{self.digest}" if self.digest else self.rules


class DecisionCensus(msgspec.Struct, kw_only=True):
    rule_sets: list[RuleSetDecisions] = []

    def changed(self) -> dict[str, list[str]]:
        """Rule set names that judged with more than one content: name -> digests, in order."""
        digests: dict[str, list[str]] = {}
        for row in self.rule_sets:
            if row.digest:
                digests.setdefault(row.rules, []).append(row.digest)
        return {name: found for name, found in digests.items() if len(found) > 1}

    def as_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = msgspec.to_builtins(self)
        plain["changed"] = self.changed()
        return plain


def decision_census(store: EventStore) -> DecisionCensus:
    """Count every recorded decision by the rule set that judged it, in order of first use."""
    registry = new_registry()
    rows: dict[tuple[str, str], RuleSetDecisions] = {}
    for item in registry.decode_all(store.read_all()):
        event = item.event
        if not isinstance(event, DECISIONS):
            continue
        key = (event.rules or UNKNOWN, event.rules_digest)
        row = rows.get(key)
        if row is None:
            row = rows[key] = RuleSetDecisions(rules=key[0], digest=key[1])
        if isinstance(event, DownloadDenied):
            row.denials += 1
        else:
            row.grants += 1
        row.first = min(row.first or event.decided_at, event.decided_at)
        row.last = max(row.last or event.decided_at, event.decided_at)
    return DecisionCensus(rule_sets=list(rows.values()))
