"""The scenarios' clients send a command again after a store error, under the same request id:
an attempt that landed is answered, not applied twice; a store that stays down is reported."""

from __future__ import annotations

import pytest

from downloads import AcquireLicense, DownloadService, MemberAccount
from es_core import StoreTimeoutError, StoreUnavailableError, open_store
from reliability.faults import FlakyStore
from reliability.workload import BASE_TIME, send_until_answered, service_for, subscribe_all, until_answered, world


def _bench() -> tuple[FlakyStore, DownloadService]:
    rules, catalogue = world()
    store = FlakyStore(open_store("memory://"))
    service = service_for(store, rules, catalogue)
    acks = subscribe_all(service, ["m"], "setup")
    assert [a.status for a in acks] == ["granted"] * 3
    return store, service


def _acquire(request_id: str) -> AcquireLicense:
    return AcquireLicense(
        member_id="m", at=BASE_TIME, request_id=request_id, device_id="phone", title_id="hidden-harbours"
    )


def _written_by(store: FlakyStore, request_id: str) -> int:
    stream = MemberAccount.stream_id_for("m")
    return sum(1 for e in store.read_stream(stream) if e.metadata.get("request_id") == request_id)


def test_a_send_that_landed_with_its_reply_lost_is_answered_by_the_retry_and_written_once() -> None:
    store, service = _bench()
    store.fail("timeout_after_write", calls=1)
    ack = send_until_answered(service, _acquire("r1"))
    assert store.failures == 1
    assert (ack.status, ack.attempts, ack.duplicate) == ("granted", 2, True)  # the first answer
    assert ack.license_id
    assert _written_by(store, "r1") == 1  # the granted licence, once


def test_a_store_that_stays_down_is_reported_after_the_last_send_and_nothing_is_written() -> None:
    store, service = _bench()
    store.fail("timeout")
    with pytest.raises(StoreTimeoutError):
        send_until_answered(service, _acquire("r2"), attempts=3)
    assert store.failures >= 3  # each send reached the store
    store.heal()
    assert _written_by(store, "r2") == 0


def test_until_answered_counts_calls_and_lets_other_errors_through_at_once() -> None:
    failures = iter([StoreUnavailableError("down"), StoreUnavailableError("down")])

    def call() -> str:
        error = next(failures, None)
        if error is not None:
            raise error
        return "read"

    assert until_answered(call) == ("read", 3)
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError):
        until_answered(broken)
    assert len(calls) == 1
