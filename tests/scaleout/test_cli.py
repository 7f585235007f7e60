"""``python -m downloads whatif --engine dask`` as a user runs it: through a real ``dask
scheduler`` and two ``dask worker`` processes on loopback, through a local cluster it starts
itself, and refusing bad engine options with one line and exit code 2."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import KEK, STRICT_RULES, WORKERS_START

ROOT = Path(__file__).resolve().parents[2]
DASK = Path(sys.executable).parent / "dask"


def run(*args: str, timeout: float = 300, **environ: str) -> subprocess.CompletedProcess[str]:
    """The command, with ``environ`` added to an environment that holds no ES_KEK of its own."""
    env = {k: v for k, v in os.environ.items() if k != "ES_KEK"} | environ
    return subprocess.run(
        [sys.executable, "-m", "downloads", *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout, env=env
    )


def whatif_json(history_url: str, *engine: str, **environ: str) -> dict[str, Any]:
    done = run(
        "whatif", "--store", history_url, "--rules", str(STRICT_RULES), "--changes", "30", "--json", *engine, **environ
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    report.pop("wall_seconds")
    return report


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``dask scheduler`` and two ``dask worker`` processes, stopped after the module."""
    from distributed import Client

    logs = tmp_path_factory.mktemp("dask-logs")
    address = f"tcp://127.0.0.1:{free_port()}"
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str) -> None:
        log = (logs / f"{name}.log").open("wb")
        started.append(subprocess.Popen([str(DASK), *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))

    try:
        start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1], "--no-dashboard")
        for n in (1, 2):
            start(f"worker{n}", "worker", address, "--nthreads", "1", "--no-dashboard", "--name", f"w{n}")
        with Client(address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=WORKERS_START)
        yield address
    finally:
        for process in reversed(started):
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def test_whatif_through_a_running_scheduler_and_two_workers(history_url: str, scheduler: str) -> None:
    serial = whatif_json(history_url)
    assert serial["newly_denied"] > 0
    assert whatif_json(history_url, "--engine", "dask", "--scheduler", scheduler) == serial
    assert whatif_json(history_url, "--engine", "dask", "--scheduler", scheduler, "--splits", "3") == serial


def test_whatif_on_a_local_cluster_it_starts(history_url: str) -> None:
    assert whatif_json(history_url, "--engine", "dask", "--workers", "1") == whatif_json(history_url)


def test_a_protected_store_on_a_local_cluster_it_starts(protected_history_url: str) -> None:
    """The local cluster's workers inherit ES_KEK from the command's environment."""
    kek = {"ES_KEK": KEK.to_text()}
    serial = whatif_json(protected_history_url, **kek)
    assert serial["newly_denied"] > 0
    assert whatif_json(protected_history_url, "--engine", "dask", "--workers", "1", **kek) == serial


def test_a_running_clusters_workers_need_the_key_in_their_own_environment(
    protected_history_url: str, scheduler: str
) -> None:
    """The workers started without ES_KEK cannot open the store, whatever the command holds:
    one line naming the variable, exit 2, and the key shown nowhere."""
    done = run("whatif", "--store", protected_history_url, "--rules", str(STRICT_RULES), "--engine", "dask",
               "--scheduler", scheduler, ES_KEK=KEK.to_text())
    assert (done.returncode, done.stdout, done.stderr.count("\n")) == (2, "", 1), done.stderr
    assert "a worker cannot open the protected store: no key-encryption key: set the environment variable ES_KEK" in (
        done.stderr
    )
    assert KEK.to_text().partition(":")[2] not in done.stderr


def test_the_table_says_the_same(history_url: str, scheduler: str) -> None:
    args = ("whatif", "--store", history_url, "--rules", str(STRICT_RULES))
    serial, on_cluster = run(*args), run(*args, "--engine", "dask", "--scheduler", scheduler)
    assert serial.returncode == on_cluster.returncode == 0, on_cluster.stderr
    assert on_cluster.stdout == serial.stdout and "newly denied" in serial.stdout


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--engine", "spark"), "error: unknown engine 'spark'; known: serial, dask"),
        (("--engine", "dask", "--workers", "0"), "error: --workers must be a whole number >= 1, not '0'"),
        (("--engine", "dask", "--workers", "two"), "error: --workers must be a whole number >= 1, not 'two'"),
        (("--engine", "dask", "--splits", "0"), "error: --splits must be a whole number >= 1, not '0'"),
        (("--engine", "dask", "--workers", "1", "--scheduler", "tcp://127.0.0.1:1"),
         "error: give --workers or --scheduler, not both"),
        (("--workers", "2"), "error: --workers needs --engine dask"),
        (("--engine", "dask", "--scratch", "sqlite:///x.db"), "error: --scratch is for the serial engine"),
    ],
)
def test_bad_engine_options_are_one_line_and_exit_2(history_url: str, options: tuple[str, ...], message: str) -> None:
    done = run("whatif", "--store", history_url, "--rules", str(STRICT_RULES), *options)
    assert done.returncode == 2
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1 and done.stdout == ""


def test_a_scheduler_that_does_not_answer_is_one_line_and_exit_2(history_url: str) -> None:
    port = free_port()
    started = time.monotonic()
    done = run("whatif", "--store", history_url, "--rules", str(STRICT_RULES), "--engine", "dask",
               "--scheduler", f"tcp://127.0.0.1:{port}")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: no Dask scheduler answers at tcp://127.0.0.1:{port}")
    assert done.stderr.count("\n") == 1 and time.monotonic() - started < 120
