"""Benchmarks of es_core against the least work possible (raw ``sqlite3``, the raw Cassandra
driver) and against the ``eventsourcing`` library, on the downloads domain's event mix.

Run ``python -m benchmarks run`` (the suite) or ``python -m benchmarks scaling``; see
``benchmarks/results/README.md`` for how the figures are made and read.
"""
