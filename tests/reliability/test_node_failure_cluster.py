"""The 3-node cluster's token plan (the scenario itself runs under ES_RELIABILITY_CLUSTER=1)."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

from reliability.node_failure import TOKENS_PER_NODE, Cluster


def test_every_node_gets_its_own_evenly_spaced_tokens(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, ["127.0.0.1", "127.0.0.2", "127.0.0.3"])
    plan = {a: [int(t) for t in cluster.tokens(a).split(",")] for a in cluster.addresses}
    tokens = sorted(t for ts in plan.values() for t in ts)
    assert all(len(ts) == TOKENS_PER_NODE for ts in plan.values())
    assert len(set(tokens)) == 3 * TOKENS_PER_NODE  # no collision, whatever order nodes start in
    assert -(2**63) < tokens[0] and tokens[-1] < 2**63
    gaps = {b - a for a, b in pairwise(tokens)}
    assert max(gaps) - min(gaps) <= 1  # balanced: each node owns a third of the ring
    owner = {t: a for a, ts in plan.items() for t in ts}
    assert [owner[t] for t in tokens[:3]] == cluster.addresses  # interleaved around the ring
    env = cluster._env("127.0.0.2")
    assert env["ES_CASSANDRA_INITIAL_TOKEN"] == cluster.tokens("127.0.0.2")
    assert env["ES_CASSANDRA_NUM_TOKENS"] == str(TOKENS_PER_NODE)
