"""Business rules as data: a TOML rule file, validated into a ``RuleSet``.

Every number Netflix (or the press) named is a default in ``data/rules/default.toml``, never a
constant in code. Decisions ask the rule set; the events record facts only (every download,
every renewal), so a changed rule applies to past facts with no data migration.

Resolution order for per-title rules: ``[titles.<id>]``, then ``[studios.<id>]``, then the
defaults in ``[limits]`` / ``[license]``.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import msgspec

from ._files import convert, read_toml, table
from .errors import InvalidCommandError, RuleFileError

if TYPE_CHECKING:
    from .catalogue import Catalogue

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEFAULT_RULES_PATH = DATA_DIR / "rules" / "default.toml"

HISTORY_HORIZON_DAYS = 730
"""Members remember each title's downloads this long; a rolling window may not be longer."""

# Stable rule ids: denials name them, charts group by them, what-if reports per them.
DEVICES_PER_PLAN = "devices_per_plan"
DOWNLOADS_PER_DEVICE = "downloads_per_device"
STUDIO_ACTIVE_DOWNLOADS = "studio_active_downloads"
STUDIO_DOWNLOADS_PER_YEAR = "studio_downloads_per_year"
TITLE_DOWNLOADS_PER_YEAR = "title_downloads_per_year"
CATALOGUE = "catalogue"
RULE_IDS = (
    CATALOGUE,
    DEVICES_PER_PLAN,
    DOWNLOADS_PER_DEVICE,
    STUDIO_ACTIVE_DOWNLOADS,
    STUDIO_DOWNLOADS_PER_YEAR,
    TITLE_DOWNLOADS_PER_YEAR,
)

T = TypeVar("T")
Positive = Annotated[int, msgspec.Meta(ge=1)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]
WindowDays = Annotated[int, msgspec.Meta(ge=1, le=HISTORY_HORIZON_DAYS)]


class _Spec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    pass


class PlanRule(_Spec, frozen=True):
    devices_with_downloads: Positive


class Limits(_Spec, frozen=True):
    rolling_year_days: WindowDays = 365
    renewal_counts_as_download: bool = True
    downloads_per_device: Positive = 100
    studio_active_downloads: Positive = 100
    title_downloads_per_year: Positive | None = None  # for studios that set none; absent = no limit
    studio_downloads_per_year: Positive | None = None  # likewise, for all of a studio's titles together


class LicenseRule(_Spec, frozen=True):
    duration_hours: Positive = 168
    expiry_after_first_play_hours: Positive | None = None


class ClockRule(_Spec, frozen=True):
    """How far a client's clock is trusted: the service's clock is the authority."""

    max_skew_minutes: Positive = 10
    max_lateness_minutes: NonNegative = 5

    @property
    def max_skew(self) -> timedelta:
        return timedelta(minutes=self.max_skew_minutes)

    @property
    def max_lateness(self) -> timedelta:
        return timedelta(minutes=self.max_lateness_minutes)


class StudioRule(_Spec, frozen=True):
    title_downloads_per_year: Positive | None = None
    downloads_per_year: Positive | None = None  # downloads of all the studio's titles together
    active_downloads: Positive | None = None
    license_hours: Positive | None = None
    expiry_after_first_play_hours: Positive | None = None


class TitleRule(_Spec, frozen=True):
    title_downloads_per_year: Positive | None = None
    license_hours: Positive | None = None
    expiry_after_first_play_hours: Positive | None = None


class _Top(_Spec, frozen=True):
    name: str
    description: str = ""
    limits: Limits = Limits()
    license: LicenseRule = LicenseRule()
    clock: ClockRule = ClockRule()
    plans: dict[str, dict[str, object]] = {}
    studios: dict[str, dict[str, object]] = {}
    titles: dict[str, dict[str, object]] = {}


class RuleSet:
    """A validated rule file, with the lookups decisions make on every command."""

    def __init__(
        self,
        *,
        name: str,
        plans: dict[str, PlanRule],
        limits: Limits | None = None,
        license: LicenseRule | None = None,
        clock: ClockRule | None = None,
        studios: dict[str, StudioRule] | None = None,
        titles: dict[str, TitleRule] | None = None,
        description: str = "",
        source: str = "",
    ) -> None:
        if not plans:
            raise RuleFileError(source or name, "plans", "at least one plan is needed")
        self.name = name
        self.description = description
        self.source = source
        self.limits = limits or Limits()
        self.license = license or LicenseRule()
        self.clock = clock or ClockRule()
        self.plans = dict(plans)
        self.studios = dict(studios or {})
        self.titles = dict(titles or {})
        self.window = timedelta(days=self.limits.rolling_year_days)
        self._no_studio = StudioRule()
        self._no_title = TitleRule()
        self.digest = _digest(self.as_dict())
        self.label = f"{name}@{self.digest}"

    # -- loading -------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path = DEFAULT_RULES_PATH) -> RuleSet:
        """Read and validate a rule file (``extends = "default.toml"`` inherits from another)."""
        raw = read_toml(path, extends_key="extends")
        plans = _entries(raw, "plans", PlanRule, path)  # entry by entry first: errors name the key
        studios = _entries(raw, "studios", StudioRule, path)
        titles = _entries(raw, "titles", TitleRule, path)
        top = convert(raw, _Top, path)
        return cls(
            name=top.name,
            description=top.description,
            limits=top.limits,
            license=top.license,
            clock=top.clock,
            plans=plans,
            studios=studios,
            titles=titles,
            source=str(path),
        )

    def check_against(self, catalogue: Catalogue) -> None:
        """Every studio and title the rules name must be in the catalogue (a typo would
        otherwise silently never apply)."""
        for studio in self.studios:
            if not catalogue.has_studio(studio):
                raise RuleFileError(self.source or self.name, f"studios.{studio}", "no such studio in the catalogue")
        for title in self.titles:
            if not catalogue.has_title(title):
                raise RuleFileError(self.source or self.name, f"titles.{title}", "no such title in the catalogue")

    # -- lookups -------------------------------------------------------------------------

    def device_limit(self, plan: str) -> int:
        rule = self.plans.get(plan)
        if rule is None:
            raise InvalidCommandError(f"unknown plan {plan!r}; the rules know {', '.join(sorted(self.plans))}")
        return rule.devices_with_downloads

    def title_limit(self, studio_id: str, title_id: str) -> int | None:
        title = self.titles.get(title_id, self._no_title)
        if title.title_downloads_per_year is not None:
            return title.title_downloads_per_year
        studio = self.studios.get(studio_id, self._no_studio)
        if studio.title_downloads_per_year is not None:
            return studio.title_downloads_per_year
        return self.limits.title_downloads_per_year

    def studio_year_limit(self, studio_id: str) -> int | None:
        """Downloads of all the studio's titles together per rolling window (None: no limit)."""
        studio = self.studios.get(studio_id, self._no_studio)
        if studio.downloads_per_year is not None:
            return studio.downloads_per_year
        return self.limits.studio_downloads_per_year

    def studio_cap(self, studio_id: str) -> int:
        studio = self.studios.get(studio_id, self._no_studio)
        return studio.active_downloads or self.limits.studio_active_downloads

    def license_duration(self, studio_id: str, title_id: str) -> timedelta:
        hours = (
            self.titles.get(title_id, self._no_title).license_hours
            or self.studios.get(studio_id, self._no_studio).license_hours
            or self.license.duration_hours
        )
        return timedelta(hours=hours)

    def after_first_play(self, studio_id: str, title_id: str) -> timedelta | None:
        hours = (
            self.titles.get(title_id, self._no_title).expiry_after_first_play_hours
            or self.studios.get(studio_id, self._no_studio).expiry_after_first_play_hours
            or self.license.expiry_after_first_play_hours
        )
        return timedelta(hours=hours) if hours else None

    @property
    def renewal_counts(self) -> bool:
        return self.limits.renewal_counts_as_download

    def as_dict(self) -> dict[str, object]:
        """The rule set as plain data (for reports and notebooks)."""
        return {
            "name": self.name,
            "description": self.description,
            "limits": msgspec.to_builtins(self.limits),
            "license": msgspec.to_builtins(self.license),
            "clock": msgspec.to_builtins(self.clock),
            "plans": msgspec.to_builtins(self.plans),
            "studios": msgspec.to_builtins(self.studios),
            "titles": msgspec.to_builtins(self.titles),
        }

    def __repr__(self) -> str:
        return f"<RuleSet {self.label!r} from {self.source or '(code)'}>"


def _digest(plain: dict[str, object]) -> str:
    """A content hash of the rules themselves (not their name or description, nor the file's
    layout or ``extends`` chain): two files that judge alike hash alike, and any change to a
    limit changes it. Decisions record it beside the rule set's name."""
    content = {k: v for k, v in plain.items() if k not in ("name", "description")}
    return hashlib.sha256(msgspec.json.encode(content, order="sorted")).hexdigest()[:12]


def _entries(raw: dict[str, object], name: str, cls: type[T], path: str | Path) -> dict[str, T]:
    return {key: convert(entry, cls, path, f"{name}.{key}") for key, entry in table(raw, name, path).items()}


def load_rules(path: str | Path = DEFAULT_RULES_PATH) -> RuleSet:
    """Read and validate a rule file; ``RuleFileError`` names the file, the key and the problem."""
    return RuleSet.load(path)
