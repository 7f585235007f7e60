"""``python -m es_core.subscriptions``: each command does what it says, and a refused command
exits 1, says why, and writes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from es_core import KeyStoreError, LocalKeyEncryptionKey, NewEvent, PersonalData, open_store
from es_core.subscriptions import Delivery, SQLiteCheckpoints, Subscription, checkpoints_for
from es_core.subscriptions.cli import main

NAME = "Ada's phone"


def demo_store(url: str, event: Callable[[int], NewEvent], *, behind: int = 0, protected: bool = False) -> str:
    """6 events (and ``behind`` more after it) and subscription "demo" that parked position 3."""
    store = open_store(url)
    if protected:
        store.protect(LocalKeyEncryptionKey.generate("kek-1"), PersonalData({"DeviceRegistered": ("device_name",)}))
    for i in range(6):
        store.append(f"member-{i % 2}", [event(i)])

    def handle(d: Delivery) -> None:
        if d.position == 3:
            raise ValueError("bad payload")

    checkpoints = checkpoints_for(store)
    Subscription(store, checkpoints, "demo", handle).catch_up()
    checkpoints.close()
    for i in range(6, 6 + behind):
        store.append(f"member-{i % 2}", [event(i)])
    store.close()
    return url


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A store of 6 events and subscription "demo" that parked the event at position 3."""
    return demo_store(f"sqlite:///{tmp_path}/events.db", lambda i: NewEvent(event_type="T", data={"i": i}))


def _run(url: str, *argv: str) -> int:
    return main(["--store", url, *argv])


def test_status_and_parked(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(url, "status", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["subscriptions"][0] | {"lag_seconds": 0} == {
        "name": "demo",
        "position": 6,
        "head": 6,
        "lag_events": 0,
        "lag_seconds": 0,
        "status": "active",
        "running": False,
        "owner": None,
        "parked": 1,
        "reset_to": None,
        "last_error": "",
    }
    assert _run(url, "status") == 0
    assert "demo" in capsys.readouterr().out
    assert _run(url, "parked", "demo", "--json") == 0
    parked = json.loads(capsys.readouterr().out)
    assert [(p["position"], p["attempts"]) for p in parked] == [(3, 3)]
    assert "ValueError: bad payload" in parked[0]["error"]


def test_changes(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(url, "pause", "demo") == 0
    assert _run(url, "reset", "demo", "--to", "2") == 0
    assert _run(url, "status", "--json") == 0
    row = json.loads(capsys.readouterr().out.splitlines()[-1])["subscriptions"][0]
    assert (row["status"], row["reset_to"]) == ("paused", 2)
    assert _run(url, "resume", "demo") == 0
    capsys.readouterr()
    assert _run(url, "parked", "demo", "--json") == 0
    parked_id = json.loads(capsys.readouterr().out)[0]["event_id"]
    assert _run(url, "skip", "demo", parked_id, "--reason", "written by a bad deploy") == 0
    capsys.readouterr()
    assert _run(url, "parked", "demo", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []


def test_refusals_exit_1_and_write_nothing(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = SQLiteCheckpoints(tmp_path / "events.db").get("demo")
    assert _run(url, "reset", "demo", "--to", "99") == 1
    assert "beyond the store's head" in capsys.readouterr().err
    assert _run(url, "reset", "demo", "--to", "-1") == 1
    assert _run(url, "pause", "nope") == 1
    assert "no subscription named 'nope'" in capsys.readouterr().err
    assert _run(url, "skip", "demo", "not-an-id", "--reason", "x") == 1
    assert _run(url, "promote", "model", "nope") == 1
    assert main(["--store", "memory://", "status"]) == 1
    assert SQLiteCheckpoints(tmp_path / "events.db").get("demo") == before
    with pytest.raises(SystemExit):
        _run(url, "skip", "demo", "6f1f0a52-3a51-4c49-9a4b-2f4f3b0d1e77")  # --reason is required


def test_a_separate_checkpoints_file(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--store", url, "--checkpoints", f"sqlite:///{tmp_path}/other.db", "status"]) == 0
    assert "no subscriptions" in capsys.readouterr().out
    assert main(["--store", url, "--checkpoints", "memory://", "status"]) == 1


@pytest.fixture
def protected_url(tmp_path: Path) -> str:
    """A protected store (device names sealed) whose subscription "demo" parked position 3 and
    is 2 events behind the head: both of them sealed."""
    return demo_store(
        f"sqlite:///{tmp_path}/protected.db",
        lambda i: NewEvent(event_type="DeviceRegistered", data={"device_name": f"{NAME} {i}"}),
        behind=2,
        protected=True,
    )


def test_every_command_works_on_a_protected_store_without_its_key(
    protected_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The operator's commands read positions, times and checkpoints, never personal fields:
    no key-encryption key is needed, and no name shows."""
    with pytest.raises(KeyStoreError):  # the events behind "demo" are sealed
        list(open_store(protected_url).read_all(after=6))
    assert _run(protected_url, "status", "--json") == 0
    row = json.loads(capsys.readouterr().out)["subscriptions"][0]
    assert (row["position"], row["head"], row["lag_events"], row["parked"]) == (6, 8, 2, 1)
    assert row["lag_seconds"] >= 0
    assert _run(protected_url, "status") == 0
    assert _run(protected_url, "promote", "live", "demo") == 1  # 2 behind: refused, having read the log
    assert "more than 0 events behind" in capsys.readouterr().err
    assert _run(protected_url, "promote", "live", "demo", "--max-lag", "2") == 0
    assert _run(protected_url, "parked", "demo", "--json") == 0
    out = capsys.readouterr().out
    parked = json.loads(out.splitlines()[-1])
    assert [(p["position"], p["event_type"]) for p in parked] == [(3, "DeviceRegistered")]
    for argv in (
        ("pause", "demo"),
        ("reset", "demo", "--to", "8"),
        ("resume", "demo"),
        ("skip", "demo", parked[0]["event_id"], "--reason", "a bad deploy"),
    ):
        assert _run(protected_url, *argv) == 0
    assert NAME not in out + capsys.readouterr().out
    state = SQLiteCheckpoints(tmp_path / "protected.db").get("demo")
    assert (state.status, state.reset_to) == ("active", 8)


def test_a_mistyped_store_path_is_refused_and_no_file_is_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in (["status"], ["pause", "nope"]):
        assert main(["--store", f"sqlite:///{tmp_path}/typo/events.db", *command]) == 1
        assert "no SQLite store at" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()


def test_promote_refuses_a_negative_lag_limit(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(url, "promote", "model", "demo", "--max-lag", "-5") == 1
    assert "max_lag_events must be an int >= 0" in capsys.readouterr().err
