"""The catalogue: studios and their titles, each available from a date and perhaps leaving on
one. A title is downloadable at ``at`` when ``available_from <= at < leaving_on``.

File format (``data/catalogue.toml``)::

    [studios.northlight]
    name = "Northlight Pictures"

    [studios.northlight.titles]
    harbour-lights = { name = "Harbour Lights", leaving_on = 2026-06-01 }

Plain dates mean midnight UTC; date-times need an offset and are normalised to UTC.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated

import msgspec

from ._files import convert, dates_to_utc, read_toml, table
from .errors import RuleFileError
from .rules import DATA_DIR

DEFAULT_CATALOGUE_PATH = DATA_DIR / "catalogue.toml"

Aware = Annotated[datetime, msgspec.Meta(tz=True)]


class _TitleSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    name: str
    kind: str = "film"
    available_from: Aware | None = None
    leaving_on: Aware | None = None


class _StudioSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    name: str
    titles: dict[str, dict[str, object]] = {}


class _Top(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    name: str = ""
    studios: dict[str, dict[str, object]] = {}


@dataclass(frozen=True, slots=True)
class Title:
    id: str
    name: str
    studio_id: str
    kind: str = "film"
    available_from: datetime | None = None
    leaving_on: datetime | None = None

    def available_at(self, at: datetime) -> bool:
        if self.available_from is not None and at < self.available_from:
            return False
        return self.leaving_on is None or at < self.leaving_on

    def left_by(self, at: datetime) -> bool:
        return self.leaving_on is not None and at >= self.leaving_on


@dataclass(frozen=True, slots=True)
class Studio:
    id: str
    name: str


class Catalogue:
    """Studios and titles, looked up by id on every decision."""

    def __init__(self, studios: list[Studio], titles: list[Title], *, name: str = "", source: str = "") -> None:
        self.name = name
        self.source = source
        self._studios = {s.id: s for s in studios}
        self._titles: dict[str, Title] = {}
        for title in titles:
            if title.studio_id not in self._studios:
                raise RuleFileError(source or "catalogue", f"titles.{title.id}", f"unknown studio {title.studio_id!r}")
            if title.id in self._titles:
                raise RuleFileError(
                    source or "catalogue",
                    f"studios.{title.studio_id}.titles.{title.id}",
                    f"title id also used by studio {self._titles[title.id].studio_id!r}; ids must be unique",
                )
            self._titles[title.id] = title

    @classmethod
    def load(cls, path: str | Path = DEFAULT_CATALOGUE_PATH) -> Catalogue:
        raw = dates_to_utc(read_toml(path))
        studios: list[Studio] = []
        titles: list[Title] = []
        for studio_id, entry in table(raw, "studios", path).items():
            spec = convert(entry, _StudioSpec, path, f"studios.{studio_id}")
            studios.append(Studio(studio_id, spec.name))
            for title_id, title_entry in table(entry, "titles", path).items():
                key = f"studios.{studio_id}.titles.{title_id}"
                t = convert(title_entry, _TitleSpec, path, key)
                if t.available_from and t.leaving_on and t.leaving_on <= t.available_from:
                    raise RuleFileError(path, f"{key}.leaving_on", "must be after available_from")
                titles.append(Title(title_id, t.name, studio_id, t.kind, t.available_from, t.leaving_on))
        top = convert(raw, _Top, path)
        if not titles:
            raise RuleFileError(path, "studios", "the catalogue lists no titles")
        return cls(studios, titles, name=top.name, source=str(path))

    # -- lookups -------------------------------------------------------------------------

    def title(self, title_id: str) -> Title | None:
        return self._titles.get(title_id)

    def has_title(self, title_id: str) -> bool:
        return title_id in self._titles

    def has_studio(self, studio_id: str) -> bool:
        return studio_id in self._studios

    def studio(self, studio_id: str) -> Studio | None:
        return self._studios.get(studio_id)

    def titles(self) -> Iterator[Title]:
        return iter(self._titles.values())

    def studios(self) -> Iterator[Studio]:
        return iter(self._studios.values())

    def available(self, at: datetime) -> list[Title]:
        return [t for t in self._titles.values() if t.available_at(at)]

    def leaving(self) -> list[Title]:
        """Titles with a leaving date, soonest first."""
        dated = [t for t in self._titles.values() if t.leaving_on is not None]
        return sorted(dated, key=lambda t: (t.leaving_on, t.id))

    def __len__(self) -> int:
        return len(self._titles)

    def __repr__(self) -> str:
        return f"<Catalogue {self.name!r}: {len(self._studios)} studios, {len(self._titles)} titles>"


def load_catalogue(path: str | Path = DEFAULT_CATALOGUE_PATH) -> Catalogue:
    """Read and validate a catalogue file; ``RuleFileError`` names the file, the key and the problem."""
    return Catalogue.load(path)
