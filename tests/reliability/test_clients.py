"""The client processes of the cluster scenarios, on SQLite: their histories check clean; a
killed writer's in-flight append is resolved by a retry from another process; a skewed handle
takes its time from the skewed clock."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from es_core import NewEvent, open_store
from reliability.checker import CheckReport, check
from reliability.clients import ClientConfig, events_of, resume
from reliability.cluster_scenarios import final_read
from reliability.history import Histories, HistoryWriter, load
from reliability.nemesis import kill_mid_append, skewed_store

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, role: str, process: str, url: str, **extra: object) -> Path:
    settings: dict[str, object] = {"operations": 25, **extra}
    config = ClientConfig(
        role=role,
        process=process,
        url=url,
        history=str(tmp_path / "histories" / f"{process}.jsonl"),
        stop=str(tmp_path / "stop"),
        prefix="t",
        seed=3,
        streams=["t-s0", "t-s1"],
        new_streams=["t-new0", "t-new1"],
        pace_s=0.0,
        **settings,  # type: ignore[arg-type]
    )
    return config.save(tmp_path / f"{process}.json")


def _spawn(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "reliability.clients", str(config)], cwd=ROOT)


def _checked(tmp_path: Path, url: str) -> tuple[Histories, CheckReport]:
    histories = load(tmp_path / "histories")
    with open_store(url) as store:
        raw, read_back = final_read(store, sorted(histories.streams()))
    return histories, check(histories, raw, read_back)


def test_writers_and_a_projection_on_sqlite_leave_histories_that_check_clean(tmp_path: Path) -> None:
    (tmp_path / "histories").mkdir()
    url = f"sqlite:///{tmp_path / 'events.db'}"
    open_store(url).close()  # created before the processes race to create it
    projection = _spawn(_config(tmp_path, "projection", "r0", url))
    started = tmp_path / "histories" / "r0.jsonl"
    while not (started.exists() and started.stat().st_size):  # it starts after nothing, so it sees all
        time.sleep(0.01)
    writers = [_spawn(_config(tmp_path, "writer", f"w{i}", url)) for i in range(2)]
    for w in writers:
        assert w.wait(timeout=120) == 0
    (tmp_path / "stop").touch()
    assert projection.wait(timeout=60) == 0
    histories, report = _checked(tmp_path, url)
    assert report.passed, report.problems[:5]
    assert report.operations == 50 and report.ok > 0 and report.fail > 0  # NO_STREAM races refuse some
    kinds = {op.kind for op in histories.operations.values()}
    assert kinds == {"exact", "any", "no_stream", "batch"}
    batches = [op for op in histories.operations.values() if op.kind == "batch" and op.outcome == "ok"]
    acks = [op.acknowledged for op in batches]
    assert acks and all((a.first_version - 1) // 10 != (a.last_version - 1) // 10 for a in acks if a)  # crossed
    assert histories.projections["r0"].done and report.events_seen == report.events_stored


def test_a_killed_writers_in_flight_append_is_resolved_by_a_retry_from_a_new_process(tmp_path: Path) -> None:
    (tmp_path / "histories").mkdir()
    url = f"sqlite:///{tmp_path / 'events.db'}"
    open_store(url).close()
    victim = _spawn(_config(tmp_path, "writer", "w0", url, operations=10_000))
    history = tmp_path / "histories" / "w0.jsonl"
    while not (history.exists() and history.stat().st_size > 2000):
        time.sleep(0.01)
    kill_mid_append(victim, history, timeout=30)
    resumer = _spawn(_config(tmp_path, "writer", "w0-resumed", url, operations=3, resume=[str(history)]))
    assert resumer.wait(timeout=60) == 0
    _, report = _checked(tmp_path, url)
    assert report.passed, report.problems[:5]
    assert report.unresolved == 0  # the resumer answered whatever was in flight


def test_resume_retries_only_unanswered_operations_and_a_retry_is_recognised(tmp_path: Path) -> None:
    dead = tmp_path / "dead.jsonl"
    log = HistoryWriter(dead, "w0")
    ids = ["00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"]
    log.write({"type": "invoke", "op": "w0-0", "attempt": 1, "kind": "exact", "stream": "s", "expected": 0,
               "ids": ids})  # fmt: skip
    log.write({"type": "invoke", "op": "w0-1", "attempt": 1, "kind": "any", "stream": "s", "expected": "any",
               "ids": ["00000000-0000-4000-8000-000000000003"]})  # fmt: skip
    log.write({"type": "fail", "op": "w0-1", "attempt": 1, "error": "ConcurrencyError"})
    log.close()
    with open_store("memory://") as store:
        out = HistoryWriter(tmp_path / "new.jsonl", "w1")
        assert resume(store, out, dead, retry_seconds=1) == 1
        out.close()
        assert [str(e.event_id) for e in store.read_stream("s")] == ids
        again = store.append("s", events_of("w0-0", ids), 0)  # the same attempt once more: recognised
        assert again.duplicate and (again.first_version, again.last_version) == (1, 2)
    answers = load(tmp_path).operations["w0-0"].attempts
    assert [(a.number, a.process, a.outcome) for a in answers] == [(1, "w0", None), (2, "w1", "ok")]


def test_a_skewed_store_stamps_events_with_its_own_clock(tmp_path: Path) -> None:
    with skewed_store("memory://", timedelta(seconds=-10)) as store:
        result = store.append("s", [NewEvent(event_type="Tick", data={})])
        lag = datetime.now(UTC) - result.recorded_at
        assert timedelta(seconds=9) < lag < timedelta(seconds=11)
