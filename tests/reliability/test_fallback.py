"""The fallback policy (downloads.fallback) against a store that fails on demand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from downloads import (
    AcquireLicense,
    ClockSkewError,
    DownloadService,
    Outcome,
    RegisterDevice,
    RenewLicense,
    RequestReusedError,
    RuleFileError,
    Subscribe,
)
from downloads.fallback import (
    CONFIRMED,
    STORE_UNAVAILABLE,
    FallbackPolicy,
    FallbackService,
    JournalError,
    ProvisionalJournal,
)
from es_core import InvalidInputError, StoreUnavailableError, open_store
from reliability.faults import FlakyStore
from reliability.outage import FakeClock, run_fallback
from reliability.workload import world

T = datetime(2026, 3, 16, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


class Bench:
    """A member with a phone, a service over a flaky store, and a fallback around it."""

    def __init__(self, tmp_path: Path, policy: FallbackPolicy) -> None:
        rules, catalogue = world()
        self.store = FlakyStore(open_store("memory://"))
        self.now = T  # the service's clock, which the member's device agrees with
        self.service = DownloadService(self.store, rules, catalogue, clock=lambda: self.now)
        self.clock = FakeClock()
        self.journal_path = tmp_path / "grants.jsonl"
        self.fallback = FallbackService(self.service, policy, self.journal_path, clock=self.clock)
        self.n = 0
        self.fallback.handle(Subscribe(member_id="m", at=T, request_id="join", plan="standard"))
        self.fallback.handle(RegisterDevice(member_id="m", at=T, request_id="phone", device_id="phone"))

    def acquire(self, title: str = "after-circuit", request_id: str | None = None) -> Outcome:
        self.n += 1
        self.now = T + self.n * MINUTE
        return self.fallback.handle(
            AcquireLicense(
                member_id="m",
                at=self.now,
                request_id=request_id or f"get-{self.n}",
                device_id="phone",
                title_id=title,
            )
        )


def grant_policy(**changes: object) -> FallbackPolicy:
    return FallbackPolicy(**{"mode": "grant_provisionally", "max_provisional_per_member": 1, **changes})  # type: ignore[arg-type]


def test_deny_answers_try_later_and_writes_nothing(tmp_path: Path) -> None:
    bench = Bench(tmp_path, FallbackPolicy(mode="deny", retry_after_seconds=90))
    head = bench.store.inner.head_position()
    bench.store.fail("unavailable")
    outcome = bench.acquire()
    assert not outcome.granted and outcome.rule == STORE_UNAVAILABLE and outcome.fallback == "deny"
    assert outcome.retry_at == outcome.at + timedelta(seconds=90)
    assert "try again after" in outcome.reason
    assert bench.store.inner.head_position() == head
    assert bench.fallback.journal is not None and not bench.fallback.journal.pending()


def test_provisional_grants_are_capped_journalled_and_repeatable(tmp_path: Path) -> None:
    bench = Bench(tmp_path, grant_policy())
    bench.store.fail("timeout")
    first = bench.acquire(request_id="a")
    assert first.granted and first.provisional and first.license_id
    assert bench.acquire(request_id="a") == first  # a client retry while the store is out: same answer
    capped = bench.acquire(request_id="b")
    assert not capped.granted and capped.rule == STORE_UNAVAILABLE and "unconfirmed" in capped.reason
    lines = bench.journal_path.read_text().splitlines()
    assert len(lines) == 1 and '"op":"grant"' in lines[0]


def test_reconcile_confirms_what_the_rules_allow_and_revokes_the_rest(tmp_path: Path) -> None:
    bench = Bench(tmp_path, grant_policy(max_provisional_per_member=2))
    for _ in range(2):
        assert bench.acquire().granted  # 2 of the title's 3 a year, for real
    bench.store.fail("unavailable")
    third, fourth = bench.acquire(), bench.acquire()  # provisional: only one of them can stand
    assert third.provisional and fourth.provisional
    bench.store.heal()
    report = bench.fallback.reconcile()
    assert [o.request_id for o in report.confirmed] == [third.request_id]
    assert [o.request_id for o in report.revoked] == [fourth.request_id]
    assert report.complete and report.pending == 0
    assert report.confirmed[0].license_id == third.license_id  # the licence id the device already has
    assert bench.fallback.reconcile().confirmed == []  # nothing twice
    assert not ProvisionalJournal(bench.journal_path).pending()  # durable


def test_a_write_that_landed_before_its_reply_was_lost_is_not_written_twice(tmp_path: Path) -> None:
    bench = Bench(tmp_path, grant_policy())
    bench.store.fail("timeout_after_write")
    outcome = bench.acquire(request_id="lost-reply")
    assert outcome.provisional
    landed = bench.store.inner.head_position()
    bench.store.heal()
    report = bench.fallback.reconcile()
    assert [o.duplicate for o in report.confirmed] == [True]
    assert bench.store.inner.head_position() == landed


def test_a_retry_once_the_store_is_back_settles_the_request(tmp_path: Path) -> None:
    bench = Bench(tmp_path, grant_policy())
    bench.store.fail("unavailable")
    provisional = bench.acquire(request_id="x")
    bench.store.heal()
    bench.clock.now += 60
    real = bench.fallback.handle(
        AcquireLicense(member_id="m", at=provisional.at, request_id="x", device_id="phone", title_id="after-circuit")
    )
    assert real.granted and not real.provisional and real.fallback == "" and real.events == 1
    assert bench.fallback.journal is not None
    assert bench.fallback.journal.resolved[("m", "x")].result == CONFIRMED


def test_the_circuit_breaker_stops_calling_a_failing_store(tmp_path: Path) -> None:
    bench = Bench(tmp_path, FallbackPolicy(mode="deny", trip_after_failures=2, cool_down_seconds=10))
    bench.store.fail("unavailable")
    bench.acquire(), bench.acquire()
    calls = bench.store.calls
    for _ in range(5):
        assert bench.acquire().fallback == "deny"
    assert bench.store.calls == calls and bench.fallback.stats.short_circuited == 5
    bench.clock.now += 10
    bench.store.heal()
    assert bench.acquire().fallback == ""  # the probe after the cool-down finds the store back
    assert not bench.fallback.circuit_open


def test_other_errors_are_not_hidden(tmp_path: Path) -> None:
    bench = Bench(tmp_path, grant_policy())
    with pytest.raises(Exception, match="no licence"):
        bench.fallback.handle(RenewLicense(member_id="m", at=T, request_id="r", license_id="lic-none"))


def test_the_policy_is_data(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        '[fallback]\nmode = "grant_provisionally"\nmax_provisional_per_member = 2\n'
        'provisional_commands = ["AcquireLicense"]\ntrip_after_failures = 0\n'
    )
    policy = FallbackPolicy.load(path)
    assert (policy.mode, policy.max_provisional_per_member, policy.provisional_commands) == (
        "grant_provisionally",
        2,
        ("AcquireLicense",),
    )
    assert FallbackPolicy.load(tmp_path / "rules.toml").as_dict()["trip_after_failures"] == 0
    path.write_text('[fallback]\nprovisional_commands = ["Teleport"]\n')
    with pytest.raises(RuleFileError, match="provisional_commands"):
        FallbackPolicy.load(path)
    with pytest.raises(InvalidInputError):
        FallbackPolicy(mode="sometimes")
    with pytest.raises(InvalidInputError, match="journal"):
        FallbackService(DownloadService(open_store("memory://")), grant_policy())


def test_the_journal_drops_a_torn_last_line_and_refuses_other_damage(tmp_path: Path) -> None:
    bench = Bench(tmp_path, grant_policy())
    bench.store.fail("unavailable")
    bench.acquire(request_id="kept")
    with open(bench.journal_path, "ab") as f:
        f.write(b'{"op":"grant","member_id":"m","req')  # a crash mid-write
    journal = ProvisionalJournal(bench.journal_path)
    assert journal.torn_lines == 1 and [e.request_id for e in journal.pending()] == ["kept"]
    assert bench.journal_path.read_bytes().endswith(b"\n")
    bench.journal_path.write_bytes(b"garbage\n" + bench.journal_path.read_bytes())
    with pytest.raises(JournalError, match="line 1"):
        ProvisionalJournal(bench.journal_path)


def test_a_store_error_never_reaches_the_client(tmp_path: Path) -> None:
    bench = Bench(tmp_path, FallbackPolicy(mode="deny", trip_after_failures=0))
    for mode in ("unavailable", "timeout", "timeout_after_write"):
        bench.store.fail(mode)  # type: ignore[arg-type]
        try:
            bench.acquire()
        except StoreUnavailableError as exc:  # pragma: no cover - the failure this test exists for
            pytest.fail(f"{mode}: {exc!r} reached the client")


def test_the_fallback_scenario(tmp_path: Path) -> None:
    result = run_fallback(tmp_path, seed=1)
    assert result.status == "ok", result.problems or result.error
    grants = result.figures["grant_provisionally/trip0"]
    assert grants["provisional"] and grants["confirmed"] and grants["revoked"] and grants["landed_before_timeout"]


def test_the_fallback_scenario_seed_7(tmp_path: Path) -> None:
    """Clients re-sending 'try later' requests after the outage, with their original time."""
    result = run_fallback(tmp_path, seed=7)
    assert result.status == "ok", result.problems


def test_the_fallback_holds_the_client_clock_to_the_same_bound(tmp_path: Path) -> None:
    bench = Bench(tmp_path, grant_policy())
    bench.store.fail("unavailable")
    ahead = bench.now + timedelta(days=2)
    skewed = AcquireLicense(member_id="m", at=ahead, request_id="skewed", device_id="phone", title_id="after-circuit")
    with pytest.raises(ClockSkewError, match="max_skew_minutes"):
        bench.fallback.handle(skewed)
    assert bench.fallback.journal is not None and bench.fallback.journal.pending() == []  # nothing journalled
    assert bench.acquire().provisional  # a device on time still gets the fallback's answer


def test_a_journalled_request_id_reused_for_another_title_is_refused(tmp_path: Path) -> None:
    bench = Bench(tmp_path, grant_policy())
    bench.store.fail("unavailable")
    assert bench.acquire(request_id="k").provisional
    with pytest.raises(RequestReusedError, match="title_id was 'after-circuit', now 'silver-harbour'"):
        bench.fallback.handle(
            AcquireLicense(member_id="m", at=bench.now, request_id="k", device_id="phone", title_id="silver-harbour")
        )


def test_a_reconciled_grant_is_decided_at_the_service_time_it_was_granted(tmp_path: Path) -> None:
    bench = Bench(tmp_path, grant_policy())
    bench.store.fail("unavailable")
    granted = bench.acquire()
    granted_at = bench.now
    bench.store.heal()
    bench.now += timedelta(hours=6)  # the store comes back hours later
    report = bench.fallback.reconcile()
    assert [o.request_id for o in report.confirmed] == [granted.request_id]
    stored = bench.store.read_stream("member-m")[-1]
    assert stored.data["decided_at"] == granted_at.isoformat().replace("+00:00", "Z")
