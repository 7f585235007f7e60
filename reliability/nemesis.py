"""The faults the cluster scenarios inject: skewed clocks, paused replicas, killed nodes and
killed clients. Each is seeded; none touches the machine's clock or another engineer's nodes.
"""

from __future__ import annotations

import random
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from es_core import EventStore, open_store

from .cluster import Cluster
from .history import read_records


def skewed_store(url: str, offset: timedelta) -> EventStore:
    """A store handle on a host whose clock is off by ``offset`` (behind when negative): the
    handle's one clock (``open_store(url, clock=...)``), as a real host has one clock."""
    clock = (lambda: datetime.now(UTC) + offset) if offset else None
    return open_store(url, clock=clock)


@dataclass(frozen=True)
class Pause:
    """SIGSTOP ``nodes`` ``at`` seconds into the run, SIGCONT them ``seconds`` later."""

    at: float
    nodes: tuple[str, ...]
    seconds: float


def pause_plan(rng: random.Random, addresses: list[str], cycles: int) -> list[Pause]:
    """Per cycle: one replica paused for 2-5 s (a quorum remains, but requests it coordinates
    outlive the client's timeout: outcomes unknown), then, after a short gap, two at once for
    1.5-4 s (no quorum: Paxos rounds left half-accepted, server-side timeouts)."""
    plan, t = [], rng.uniform(0.5, 1.5)
    for _ in range(cycles):
        one = rng.choice(addresses)
        plan.append(Pause(round(t, 2), (one,), round(rng.uniform(2.0, 5.0), 2)))
        t += plan[-1].seconds + rng.uniform(0.5, 1.5)
        two = (one, rng.choice([a for a in addresses if a != one]))
        plan.append(Pause(round(t, 2), two, round(rng.uniform(1.5, 4.0), 2)))
        t += plan[-1].seconds + rng.uniform(1.0, 2.0)
    return plan


@dataclass
class PauseNemesis:
    """Runs a pause plan on a thread; ``stop()`` ends it early and always resumes every node."""

    cluster: Cluster
    plan: list[Pause]
    injected: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        began = time.monotonic()
        try:
            for pause in self.plan:
                if self.done.wait(max(0.0, began + pause.at - time.monotonic())):
                    return
                for node in pause.nodes:
                    self.cluster.pause(node)
                    self.injected += 1
                self.done.wait(pause.seconds)
                for node in pause.nodes:
                    self.cluster.resume(node)
        finally:
            self.cluster.resume_all()

    def stop(self) -> None:
        self.done.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.cluster.resume_all()


@dataclass
class NodeKill:
    """SIGKILL a node ``at`` seconds in and start it again ``down`` seconds later (in the
    background: a start takes tens of seconds, while the clients go on)."""

    cluster: Cluster
    victim: str
    at: float
    down: float
    restart: subprocess.Popen[str] | None = None
    injected: int = 0
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        time.sleep(self.at)
        self.cluster.kill9(self.victim)
        self.injected += 1
        time.sleep(self.down)
        self.restart = self.cluster.start_later(self.victim)

    def finish(self) -> float:
        """Wait until the node is back (restarting it now if the clients ended first); returns
        the seconds waited."""
        begin = time.monotonic()
        if self._thread is not None:
            self._thread.join()
        assert self.restart is not None
        self.cluster.finish_start(self.restart, self.victim)
        return time.monotonic() - begin


def last_record_type(history: Path) -> str:
    try:
        records, _ = read_records(history)
    except OSError:
        return ""
    return records[-1]["type"] if records else ""


def kill_mid_append(process: subprocess.Popen[bytes], history: Path, timeout: float) -> bool:
    """SIGKILL ``process`` while its history ends with an invocation (an append in flight);
    returns whether the history still ended with one after the kill (False: the append had
    completed in between, or the process ended first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if last_record_type(history) == "invoke":
            process.kill()
            process.wait()
            return last_record_type(history) == "invoke"
        time.sleep(0.002)
    if process.poll() is None:
        process.kill()
        process.wait()
    return False
