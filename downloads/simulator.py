"""A seeded generator of member activity over simulated time, driven through the Aggregate
Service into any store.

Deterministic: each member draws from ``random.Random(f"{seed}:{index}")`` (and their devices'
clocks from ``f"{seed}:{index}:clock"``), and every action waits in one heap ordered by (time,
member index, sequence), so the same seed and inputs give the same event stream — types, data,
stream versions, event ids (derived from request ids) and ``recorded_at``. It streams: memory
holds one small view per member and one pending action each, never the history.

Two clocks: the service's clock (the store's, which the simulation sets) follows simulated
time, and each command's ``at`` is the sending device's clock, which may be out (see
``behaviours.pick_clock_offset``). Commands the clock bounds refuse are counted in
``refused`` by error (``ClockSkewError``, ``LateRequestError``).
"""

from __future__ import annotations

import heapq
import random
import resource
import sys
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

import msgspec

from es_core import EventStore, InvalidInputError

from .answers import Outcome
from .behaviours import (
    DAY,
    DEVICE_KINDS,
    PLANS,
    UTC_OFFSETS,
    Held,
    SimMember,
    pick_behaviour,
    pick_clock_offset,
    pick_device_count,
    pick_plan,
    zipf_weights,
)
from .catalogue import Catalogue, Title, load_catalogue
from .commands import (
    AcquireLicense,
    CancelMembership,
    ChangePlan,
    Command,
    PlayDownload,
    RegisterDevice,
    ReleaseLicense,
    RemoveDevice,
    RenewLicense,
    Subscribe,
)
from .errors import ClockSkewError, CommandRefusedError, InvalidCommandError, LateRequestError
from .rules import RuleSet, load_rules
from .service import DownloadService

Progress = Callable[[int, int], None]
DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)
RETRY_RATE = 0.02  # share of requests a client sends twice (lost replies, impatient taps)
STRAY_PICK = 0.02  # share of downloads of a title picked from a stale list (may be unavailable)
ZERO = timedelta(0)
FULL = {"downloads_per_device": "device", "studio_active_downloads": "studio"}  # denials that say "delete one"
FOLLOWS_ADVICE = 0.8
LATE_JOINERS = 0.15
PLAN_CHANGERS = 0.08
DEVICE_CHANGERS = 0.15


class SimulationReport(msgspec.Struct, kw_only=True):
    members: int
    days: int
    seed: int
    start: datetime
    end: datetime
    rules: str
    catalogue: str
    commands: int = 0
    events: int = 0
    grants: int = 0
    denials: int = 0
    denials_by_rule: dict[str, int] = {}
    duplicates_absorbed: int = 0
    refused: dict[str, int] = {}
    commands_by_type: dict[str, int] = {}
    members_by_behaviour: dict[str, int] = {}
    titles_withdrawn: int = 0
    wall_seconds: float = 0.0
    events_per_second: float = 0.0
    commands_per_second: float = 0.0
    peak_rss_mb: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = msgspec.to_builtins(self)
        return plain


SUMS = ("members", "commands", "events", "grants", "denials", "duplicates_absorbed")
TALLIES = ("denials_by_rule", "refused", "commands_by_type", "members_by_behaviour")


def combine_reports(parts: list[SimulationReport], wall_seconds: float) -> SimulationReport:
    """One report from the reports of runs over parts of one population (``simulate(only=...)``):
    counts added up; every part saw every withdrawal; rates over ``wall_seconds``, the whole
    run's wall time; the peak RSS of the largest process."""
    if not parts:
        raise InvalidInputError("no parts to combine")
    whole = msgspec.structs.replace(parts[0], wall_seconds=round(wall_seconds, 3))
    for name in SUMS:
        setattr(whole, name, sum(getattr(p, name) for p in parts))
    for name in TALLIES:
        total: Counter[str] = Counter()
        for p in parts:
            total.update(getattr(p, name))
        setattr(whole, name, dict(sorted(total.items())))
    whole.titles_withdrawn = max(p.titles_withdrawn for p in parts)
    whole.peak_rss_mb = max(p.peak_rss_mb for p in parts)
    whole.events_per_second = round(whole.events / wall_seconds, 1) if wall_seconds else 0.0
    whole.commands_per_second = round(whole.commands / wall_seconds, 1) if wall_seconds else 0.0
    return whole


def simulate(
    store: EventStore,
    *,
    members: int,
    days: int,
    seed: int = 1,
    rules: RuleSet | None = None,
    catalogue: Catalogue | None = None,
    start: datetime = DEFAULT_START,
    progress: Progress | None = None,
    allow_existing: bool = False,
    only: range | None = None,
) -> SimulationReport:
    """Simulate ``members`` for ``days`` from ``start`` into ``store`` (which should be empty).

    ``only``: simulate just the members with these indices (of ``range(members)``). Members
    never interact, so each one's events are exactly those of the whole run with the same seed:
    parts of a population can run apart (``downloads.scaleout``) and add up to the whole."""
    if members < 1 or days < 1:
        raise InvalidInputError(f"members and days must be >= 1, not {members} and {days}")
    if only is not None and not (isinstance(only, range) and only.step == 1 and 0 <= only.start < only.stop <= members):
        raise InvalidInputError(f"only must be a non-empty range of indices within range({members}), not {only!r}")
    if start.tzinfo is None:
        raise InvalidInputError("start must be a timezone-aware datetime")
    if not allow_existing and store.head_position() > 0:
        raise InvalidInputError(f"{store!r} already holds events; simulate into an empty store")
    return Simulation(
        store, members, days, seed, rules or load_rules(), catalogue or load_catalogue(), start, only=only
    ).run(progress)


class Simulation:
    def __init__(
        self,
        store: EventStore,
        members: int,
        days: int,
        seed: int,
        rules: RuleSet,
        catalogue: Catalogue,
        start: datetime,
        *,
        only: range | None = None,
    ) -> None:
        indices = range(members) if only is None else only
        self.store = store
        self.seed = seed
        self.days = days
        self.start = start.astimezone(UTC)
        self.end = self.start + timedelta(days=days)
        self.catalogue = catalogue
        # every member stays cached: simulated members interleave in time order
        self.service = DownloadService(store, rules, catalogue, cache_size=len(indices) + 16)
        self.now = self.start
        self.report = SimulationReport(
            members=len(indices), days=days, seed=seed, start=self.start, end=self.end, rules=rules.name,
            catalogue=catalogue.name or catalogue.source,
        )
        self.denials: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.by_type: Counter[str] = Counter()
        self.holders: dict[str, dict[int, int]] = {}  # title -> member index -> licences held
        # by index: member ids are as wide as the whole population's, whichever part runs here
        self.members = {i: self._new_member(i, members) for i in indices}
        self._clock_rngs = {i: random.Random(f"{seed}:{i}:clock") for i in indices}
        self._queue: list[tuple[datetime, int, int, str, Any]] = []
        self._seq = 0
        world = random.Random(f"{seed}:catalogue")
        titles = sorted(catalogue.titles(), key=lambda t: t.id)
        world.shuffle(titles)  # popularity differs by seed
        self.by_popularity = titles
        self.weights = zipf_weights(len(titles))
        self._pool_day = -1
        self._pool: tuple[list[Title], list[float]] = ([], [])

    # -- set-up --------------------------------------------------------------------------

    def _new_member(self, index: int, total: int) -> SimMember:
        rng = random.Random(f"{self.seed}:{index}")
        behaviour = pick_behaviour(rng)
        width = max(5, len(str(total - 1)))
        member = SimMember(
            index=index, member_id=f"m{index:0{width}d}", rng=rng, behaviour=behaviour, plan=pick_plan(rng),
            utc_offset=timedelta(hours=rng.choice(UTC_OFFSETS)),
        )
        self.report.members_by_behaviour[behaviour.name] = self.report.members_by_behaviour.get(behaviour.name, 0) + 1
        return member

    def _schedule(self, at: datetime, member: int, kind: str, payload: Any = None) -> None:
        if at < self.end:
            self._seq += 1
            heapq.heappush(self._queue, (at, member, self._seq, kind, payload))

    def _plan_lives(self) -> None:
        span = self.end - self.start
        for m in self.members.values():
            rng = m.rng
            joins = self.start + span * rng.random() if rng.random() < LATE_JOINERS else self.start
            self._schedule(m.local_time(joins, rng.randrange(24), self.start), m.index, "join")
            if m.behaviour.churn and rng.random() < m.behaviour.churn:
                self._schedule(joins + timedelta(days=rng.uniform(20, 200)), m.index, "cancel")
            if rng.random() < PLAN_CHANGERS:
                self._schedule(joins + span * rng.random(), m.index, "plan")
            if rng.random() < DEVICE_CHANGERS:
                self._schedule(joins + span * rng.random(), m.index, "new_device")
        for title in self.catalogue.leaving():
            assert title.leaving_on is not None
            if self.start <= title.leaving_on < self.end:
                self._schedule(title.leaving_on, -1, "withdraw", title.id)

    # -- running -------------------------------------------------------------------------

    def run(self, progress: Progress | None = None) -> SimulationReport:
        started = time.perf_counter()
        saved_clock = self.store.clock
        self.store.clock = lambda: self.now  # recorded_at follows simulated time
        try:
            self._plan_lives()
            day_done = 0
            while self._queue:
                at, index, _, kind, payload = heapq.heappop(self._queue)
                if progress is not None and (at - self.start).days > day_done:
                    day_done = min(self.days, (at - self.start).days)
                    progress(day_done, self.days)
                if index < 0:
                    self._withdraw(at, payload)
                    continue
                m = self.members[index]
                if m.busy_until is not None and at < m.busy_until:
                    # the member is still busy with an earlier action that ran past this moment:
                    # one member's requests stay in their order
                    self._schedule(m.busy_until + timedelta(seconds=1), index, kind, payload)
                    continue
                getattr(self, f"_on_{kind}")(m, at, payload)
            if progress is not None:
                progress(self.days, self.days)
        finally:
            self.store.clock = saved_clock
        r = self.report  # events are counted from outcomes: global positions need not be dense
        r.denials_by_rule = dict(sorted(self.denials.items()))
        r.refused = dict(sorted(self.refused.items()))
        r.commands_by_type = dict(sorted(self.by_type.items()))
        r.members_by_behaviour = dict(sorted(r.members_by_behaviour.items()))
        r.wall_seconds = round(time.perf_counter() - started, 3)
        r.events_per_second = round(r.events / r.wall_seconds, 1) if r.wall_seconds else 0.0
        r.commands_per_second = round(r.commands / r.wall_seconds, 1) if r.wall_seconds else 0.0
        r.peak_rss_mb = round(_peak_rss_mb(), 1)
        return r

    def _send(
        self, m: SimMember, command_type: type[Command], at: datetime, *, device: str | None = None, **fields: Any
    ) -> Outcome | None:
        """Send one command at true time ``at`` from ``device`` (default: the member's first),
        stamped by that device's clock, as the member's client would; None when it was refused."""
        sender = device or (m.devices[0] if m.devices else "")
        stamped = at + m.clock_offsets.get(sender, ZERO)
        command = command_type(member_id=m.member_id, at=stamped, request_id=m.next_request_id(), **fields)
        self.now = at  # the service's clock: true simulated time
        m.busy_until = max(m.busy_until or at, at)
        try:
            outcome = self.service.handle(command)
        except (CommandRefusedError, InvalidCommandError) as exc:
            self.refused[type(exc).__name__] += 1
            if isinstance(exc, ClockSkewError | LateRequestError) and m.clock_offsets.get(sender):
                # refused for the device's clock: the member sets it right and tries again
                m.clock_offsets[sender] = ZERO
                return self._send(m, command_type, at, device=device, **fields)
            return None
        r = self.report
        r.commands += 1
        r.events += outcome.events
        self.by_type[command.name] += 1
        if command.name in ("AcquireLicense", "RenewLicense"):
            if outcome.granted:
                r.grants += 1
            else:
                r.denials += 1
                self.denials[outcome.rule or "?"] += 1
        if m.rng.random() < RETRY_RATE:  # the client did not hear back and sends it again
            again = self.service.handle(command)
            r.events += again.events
            if again.duplicate and again.events == 0:
                r.duplicates_absorbed += 1
        return outcome

    # -- what members do -----------------------------------------------------------------

    def _on_join(self, m: SimMember, at: datetime, _: Any) -> None:
        if self._send(m, Subscribe, at, plan=m.plan) is None:
            return
        m.subscribed = True
        if not m.devices:
            for n in range(pick_device_count(m.rng, m.plan, m.behaviour)):
                kind = "kids-tablet" if m.behaviour.name == "family" and n == 0 else DEVICE_KINDS[n % len(DEVICE_KINDS)]
                self._register(m, at + timedelta(seconds=5 * (n + 1)), kind)
            phones = (d for d in m.devices if m.device_kinds[d] in ("phone", "tablet"))
            m.travel_device = next(phones, m.devices[0] if m.devices else None)  # none if every clock was refused
            m.favourites = [t.id for t in m.rng.sample(self.by_popularity[:40], 4)]
        self._schedule(m.next_visit(at, m.behaviour.sessions_per_week, self.start), m.index, "visit")
        if m.behaviour.trips_per_year:
            self._schedule(self._next_trip(m, at), m.index, "trip")

    def _register(self, m: SimMember, at: datetime, kind: str) -> None:
        device = m.new_device_id()
        m.clock_offsets[device] = pick_clock_offset(self._clock_rngs[m.index])
        if self._send(m, RegisterDevice, at, device=device, device_id=device, kind=kind):
            m.devices.append(device)
            m.device_kinds[device] = kind

    def _on_visit(self, m: SimMember, at: datetime, _: Any) -> None:
        if not m.subscribed:
            return
        b, rng = m.behaviour, m.rng
        t = at
        for held in list(m.held.values()):
            t += timedelta(seconds=rng.randrange(5, 60))
            if t >= held.expires_at:
                if rng.random() < b.renew_expired:
                    self._renew(m, held, t)
                elif rng.random() < b.delete_expired:
                    self._release(m, held, t)
            elif held.played and rng.random() < b.delete_watched:
                self._release(m, held, t)
            elif not held.played and rng.random() < b.play:
                self._watch(m, held, t)
        lo, hi = b.downloads
        count = rng.randint(lo, hi)
        device = self._pick_device(m) if m.devices else None
        for _ in range(count):
            if device is None:  # every device's clock was refused: nothing to download to
                break
            t += timedelta(seconds=rng.randrange(20, 120))
            self._acquire(m, device, self._pick_title(m, t), t)
        self._schedule(m.next_visit(at, b.sessions_per_week, self.start), m.index, "visit")

    def _on_trip(self, m: SimMember, at: datetime, _: Any) -> None:
        """The evening before a trip: a burst of downloads on the travel device."""
        if not m.subscribed:
            return  # the chain of trips ends; a member who comes back starts a new one
        travel = m.travel_device
        if travel is not None and travel in m.devices:
            t = at
            for _ in range(m.rng.randint(4, 10)):
                t += timedelta(seconds=m.rng.randrange(30, 180))
                self._acquire(m, travel, self._pick_title(m, t), t)
            back = m.local_time(at + timedelta(days=m.rng.randint(3, 12)), 19, self.start)
            self._schedule(back, m.index, "trip_back")
        self._schedule(self._next_trip(m, at), m.index, "trip")

    def _on_trip_back(self, m: SimMember, at: datetime, _: Any) -> None:
        t = at
        for held in list(m.held.values()):
            if held.device_id == m.travel_device and m.rng.random() < 0.8:
                t += timedelta(seconds=m.rng.randrange(5, 30))
                self._release(m, held, t)

    def _on_cancel(self, m: SimMember, at: datetime, _: Any) -> None:
        if not m.subscribed:
            return
        if self._send(m, CancelMembership, at):
            m.subscribed = False
            for held in list(m.held.values()):
                self._forget(m, held)
            if m.rng.random() < 0.4:  # some come back
                self._schedule(at + timedelta(days=m.rng.uniform(20, 90)), m.index, "join")

    def _on_plan(self, m: SimMember, at: datetime, _: Any) -> None:
        if not m.subscribed:
            return
        plan = m.rng.choice([p for p, _ in PLANS if p != m.plan])
        if self._send(m, ChangePlan, at, plan=plan):
            m.plan = plan

    def _on_new_device(self, m: SimMember, at: datetime, _: Any) -> None:
        """A new phone: register it, and a few days later remove the old one."""
        if not m.subscribed or not m.devices:
            return
        old = m.devices[0]
        self._register(m, at, m.device_kinds[old])
        self._schedule(at + timedelta(days=m.rng.uniform(0.5, 4)), m.index, "remove_device", old)

    def _on_remove_device(self, m: SimMember, at: datetime, device: str) -> None:
        if device not in m.devices or len(m.devices) < 2:
            return
        if self._send(m, RemoveDevice, at, device_id=device):
            m.devices.remove(device)
            for held in [h for h in m.held.values() if h.device_id == device]:
                self._forget(m, held)
            if m.travel_device == device:
                m.travel_device = m.devices[-1]

    def _withdraw(self, at: datetime, title_id: str) -> None:
        holders = sorted(self.holders.get(title_id, {}))
        self.now = at
        for outcome in self.service.withdraw_title(
            title_id, at, f"withdraw-{title_id}", [self.members[i].member_id for i in holders]
        ):
            self.report.commands += 1
            self.report.events += outcome.events
            self.by_type[outcome.command] += 1
        for i in holders:
            m = self.members[i]
            for held in [h for h in m.held.values() if h.title_id == title_id]:
                self._forget(m, held)
        self.report.titles_withdrawn += 1

    # -- single commands -----------------------------------------------------------------

    def _acquire(self, m: SimMember, device: str, title_id: str, at: datetime) -> None:
        outcome = self._send(m, AcquireLicense, at, device=device, device_id=device, title_id=title_id)
        if outcome is not None and outcome.rule in FULL and m.rng.random() < FOLLOWS_ADVICE:
            # "delete one first": the member deletes their oldest download there
            studio = self._studio_of(title_id)
            full = FULL[outcome.rule]
            oldest = next(
                (h for h in m.held.values() if (h.device_id == device if full == "device" else
                                                self._studio_of(h.title_id) == studio)),
                None,
            )
            if oldest is not None:
                self._release(m, oldest, at + timedelta(seconds=10))
        if outcome is not None and outcome.granted and outcome.license_id:
            studio = self._studio_of(title_id)
            rules = self.service.rules
            m.held[outcome.license_id] = Held(
                outcome.license_id, title_id, device, at + rules.license_duration(studio, title_id),
                first_play_expiry=rules.after_first_play(studio, title_id) is not None,
            )
            per_title = self.holders.setdefault(title_id, {})
            per_title[m.index] = per_title.get(m.index, 0) + 1

    def _renew(self, m: SimMember, held: Held, at: datetime) -> None:
        outcome = self._send(m, RenewLicense, at, device=held.device_id, license_id=held.license_id)
        if outcome is None:
            return
        if outcome.granted:
            studio = self._studio_of(held.title_id)
            held.expires_at = at + self.service.rules.license_duration(studio, held.title_id)
            held.played = False
        elif m.rng.random() < 0.7:  # denied: most members then delete it
            self._release(m, held, at + timedelta(seconds=10))

    def _watch(self, m: SimMember, held: Held, at: datetime) -> None:
        """The member watches a download. The app tells the service only when the licence
        expires a fixed time after its first play."""
        if held.first_play_expiry:
            self._play(m, held, at)
        else:
            held.played = True

    def _play(self, m: SimMember, held: Held, at: datetime) -> None:
        outcome = self._send(m, PlayDownload, at, device=held.device_id, license_id=held.license_id)
        if outcome is not None:
            held.played = True
            after = self.service.rules.after_first_play(self._studio_of(held.title_id), held.title_id)
            if after is not None:
                held.expires_at = min(held.expires_at, at + after)

    def _studio_of(self, title_id: str) -> str:
        """The studio of a title the service just granted (so the catalogue has it)."""
        title = self.catalogue.title(title_id)
        assert title is not None, title_id
        return title.studio_id

    def _release(self, m: SimMember, held: Held, at: datetime) -> None:
        if self._send(m, ReleaseLicense, at, device=held.device_id, license_id=held.license_id):
            self._forget(m, held)

    def _forget(self, m: SimMember, held: Held) -> None:
        m.held.pop(held.license_id, None)
        per_title = self.holders.get(held.title_id, {})
        left = per_title.get(m.index, 0) - 1
        if left > 0:
            per_title[m.index] = left
        else:
            per_title.pop(m.index, None)

    # -- choices -------------------------------------------------------------------------

    def _pick_device(self, m: SimMember) -> str:
        if m.behaviour.name == "collector":  # fills one device
            return m.devices[0]
        if m.behaviour.name == "family":  # half the time the children's tablet, else anyone's device
            kids = m.devices[0] if m.device_kinds.get(m.devices[0]) == "kids-tablet" else None
            return kids if kids and m.rng.random() < 0.5 else m.rng.choice(m.devices[1:] or m.devices)
        weights = [3.0] + [1.0] * (len(m.devices) - 1)  # the first device is the everyday one
        return m.rng.choices(m.devices, weights=weights)[0]

    def _pick_title(self, m: SimMember, at: datetime) -> str:
        rng = m.rng
        if m.favourites and rng.random() < m.behaviour.rewatch:
            return rng.choice(m.favourites)
        if rng.random() < STRAY_PICK:
            return rng.choice(self.by_popularity).id
        titles, cumulative = self._titles_on((at - self.start).days)
        return titles[bisect_right(cumulative, rng.random() * cumulative[-1])].id

    def _titles_on(self, day: int) -> tuple[list[Title], list[float]]:
        if day != self._pool_day:
            moment = self.start + day * DAY
            pairs = [(t, w) for t, w in zip(self.by_popularity, self.weights, strict=True) if t.available_at(moment)]
            self._pool = ([t for t, _ in pairs], list(accumulate(w for _, w in pairs)))
            self._pool_day = day
        return self._pool

    def _next_trip(self, m: SimMember, after: datetime) -> datetime:
        gap = m.rng.expovariate(m.behaviour.trips_per_year / 365.0)
        return m.local_time(after + timedelta(days=max(7.0, gap)), m.rng.choice((19, 20, 21, 22)), self.start)


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
