"""reliability: evidence that the event store never loses or invents an event.

Scenarios, each seeded and bounded in count and time, each reporting the same figures (faults
injected, operations acknowledged, events lost, duplicates, invariant violations):

* ``crash``             a SQLite writer SIGKILLed at random points during appends
* ``races``             8+ processes racing commands through the Aggregate Service (SQLite, Cassandra)
* ``idempotency``       every command submitted up to 3 times, some copies concurrently
* ``bad-input``         a corpus of malformed inputs across the API, CLI, rule files and stored data
* ``fallback``          the store failing under the service's fallback policy, then reconciliation
* ``cassandra-failure`` a node of a 3-node cluster killed during a stream of commands (opt-in)

Run ``python -m reliability run`` (``make reliability``); see ``docs/reliability.md``.
"""

from .report import ScenarioResult, format_table, run_passed

__all__ = ["ScenarioResult", "format_table", "run_passed"]
