"""How simulated members behave: who they are (plan, devices, time zone, habits) and when they
come back. All draws come from the member's own ``random.Random``, so a member's life depends
only on the seed, their index and the outcomes of their own commands.

The mix is an assumption [A], tuned so a year of activity looks plausible: most members
download now and then, a few download a lot, travellers download in bursts before trips,
families re-download the same children's titles (and meet the per-title limit), collectors
download every day and delete nothing (and meet the per-device and per-studio limits), and some
members cancel (and some of those come back).

Device clocks are not all right: most are exact, some are a few minutes out either way, and a
few are days or years out (``pick_clock_offset``). The service's clock is the authority, so
those devices meet the clock bounds.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Behaviour:
    name: str
    share: float  # of the member population
    sessions_per_week: float  # visits to the downloads page
    downloads: tuple[int, int]  # per session (inclusive range; 0 = some sessions only tidy up)
    delete_watched: float  # chance, per session, of deleting a download already played
    delete_expired: float  # chance, per session, of deleting a download whose window ended
    renew_expired: float  # chance, per session, of renewing it instead
    play: float  # chance, per session, of playing an unplayed download
    rewatch: float  # chance a download is one of the member's favourites
    trips_per_year: float = 0.0  # travellers: bursts of downloads before a trip
    churn: float = 0.0  # chance of cancelling during the period


BEHAVIOURS: tuple[Behaviour, ...] = (
    #          name        share  visits/wk downloads del.w  del.e  renew  play  rewatch
    Behaviour("occasional", 0.32, 0.10, (1, 1), 0.3, 0.4, 0.05, 0.5, 0.0),
    Behaviour("casual", 0.31, 0.25, (0, 2), 0.5, 0.4, 0.15, 0.5, 0.05),
    Behaviour("binge", 0.06, 0.8, (1, 3), 0.6, 0.5, 0.1, 0.6, 0.15),
    Behaviour("traveller", 0.12, 0.12, (0, 1), 0.3, 0.3, 0.4, 0.5, 0.05, trips_per_year=4.0),
    Behaviour("family", 0.10, 0.5, (1, 2), 0.2, 0.3, 0.6, 0.5, 0.7),
    Behaviour("churner", 0.06, 0.25, (0, 2), 0.5, 0.4, 0.15, 0.5, 0.05, churn=1.0),
    Behaviour("collector", 0.03, 6.0, (3, 5), 0.0, 0.0, 0.0, 0.3, 0.0),
)

PLANS = (("basic", 0.25), ("standard", 0.5), ("premium", 0.25))
DEVICES_BY_PLAN = {"basic": (1, 1, 1, 2), "standard": (1, 2, 2, 3), "premium": (2, 2, 3, 4, 5)}
DEVICE_KINDS = ("phone", "tablet", "laptop", "phone", "tablet")
UTC_OFFSETS = (-8, -7, -6, -5, -5, -3, 0, 0, 1, 1, 1, 2, 3, 5.5, 8, 9, 10)  # hours, weighted by repetition
WEEKDAY_WEIGHT = (0.8, 0.8, 0.85, 0.9, 1.15, 1.3, 1.2)  # Monday .. Sunday
EVENING_HOURS = (7, 8, 12, 13, 17, 18, 19, 19, 20, 20, 20, 21, 21, 21, 22, 22, 23)  # local, weighted


CLOCKS_EXACT, CLOCKS_MINUTES_OUT = 0.90, 0.09  # the rest are days or years out [A]


def pick_clock_offset(rng: random.Random) -> timedelta:
    """How far a new device's clock is from the true time."""
    roll = rng.random()
    if roll < CLOCKS_EXACT:
        return timedelta(0)
    sign = rng.choice((-1, 1))
    if roll < CLOCKS_EXACT + CLOCKS_MINUTES_OUT:
        return sign * timedelta(seconds=rng.uniform(10, 6 * 60))
    return sign * timedelta(days=rng.uniform(1, 900))


def pick_behaviour(rng: random.Random) -> Behaviour:
    return rng.choices(BEHAVIOURS, weights=[b.share for b in BEHAVIOURS])[0]


def pick_plan(rng: random.Random) -> str:
    return rng.choices([p for p, _ in PLANS], weights=[w for _, w in PLANS])[0]


def pick_device_count(rng: random.Random, plan: str, behaviour: Behaviour) -> int:
    count = rng.choice(DEVICES_BY_PLAN.get(plan, (1, 2)))
    return count + (1 if behaviour.name == "family" else 0)  # a children's tablet


@dataclass(slots=True)
class Held:
    """What the simulated member believes about one of their downloads."""

    license_id: str
    title_id: str
    device_id: str
    expires_at: datetime
    played: bool = False
    first_play_expiry: bool = False  # the licence expires a fixed time after its first play


@dataclass(slots=True)
class SimMember:
    """One simulated member: the simulator's view of them, never the service's state."""

    index: int
    member_id: str
    rng: random.Random
    behaviour: Behaviour
    plan: str
    utc_offset: timedelta
    devices: list[str] = field(default_factory=list)
    device_kinds: dict[str, str] = field(default_factory=dict)
    clock_offsets: dict[str, timedelta] = field(default_factory=dict)  # device -> its clock's error
    held: dict[str, Held] = field(default_factory=dict)
    favourites: list[str] = field(default_factory=list)
    subscribed: bool = False
    requests: int = 0
    devices_made: int = 0
    travel_device: str | None = None
    busy_until: datetime | None = None  # the true time of the member's latest request

    def next_request_id(self) -> str:
        self.requests += 1
        return f"{self.member_id}-{self.requests}"

    def new_device_id(self) -> str:
        self.devices_made += 1
        return f"{self.member_id}-d{self.devices_made}"

    def next_visit(self, after: datetime, rate_per_week: float, start: datetime) -> datetime:
        """The next visit after ``after``: a Poisson process thinned by the weekly rhythm,
        at a local evening-heavy hour."""
        rng = self.rng
        day = after
        peak = max(WEEKDAY_WEIGHT)
        while True:
            day = day + timedelta(days=max(1.0, rng.expovariate(rate_per_week / 7.0)))
            local = day + self.utc_offset
            if rng.random() * peak <= WEEKDAY_WEIGHT[local.weekday()]:
                break
        return self.local_time(day, rng.choice(EVENING_HOURS), start)

    def local_time(self, day: datetime, hour: int, start: datetime) -> datetime:
        """``hour``:mm local on ``day``'s local date, as UTC (never before ``start``)."""
        local = day + self.utc_offset
        local_midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        moment = local_midnight + timedelta(hours=hour, minutes=self.rng.randrange(60), seconds=self.rng.randrange(60))
        return max(moment - self.utc_offset, start)


def zipf_weights(n: int, exponent: float = 0.9) -> list[float]:
    return [1.0 / math.pow(rank + 1, exponent) for rank in range(n)]
