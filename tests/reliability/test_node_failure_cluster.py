"""The 3-node cluster's token plan and its clients' retries (the scenario itself runs under
ES_RELIABILITY_CLUSTER=1)."""

from __future__ import annotations

import time
from itertools import pairwise
from pathlib import Path

from downloads import RequestForgottenError, Subscribe
from es_core import StoreUnavailableError
from reliability.cluster import TOKENS_PER_NODE, Cluster
from reliability.node_failure import Stream, _submit
from reliability.workload import BASE_TIME


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


class _Scripted:
    """A service that answers each call with the next scripted exception."""

    def __init__(self, *errors: Exception) -> None:
        self.errors, self.calls = list(errors), 0

    def handle(self, command: object) -> object:
        self.calls += 1
        raise self.errors.pop(0)


def test_a_client_retries_store_errors_then_takes_a_forgotten_request_as_its_answer() -> None:
    command = Subscribe(member_id="m-1", at=BASE_TIME, request_id="r-1", plan="basic")
    service = _Scripted(StoreUnavailableError("node down"), RequestForgottenError("landed long ago"))
    stream = Stream()
    ack = _submit(service, command, stream, deadline=time.monotonic() + 30)
    assert service.calls == 2 and stream.errors_retried == 1 and stream.given_up == 0
    assert ack.status == "refused" and ack.error == "RequestForgottenError" and ack.attempts == 2
