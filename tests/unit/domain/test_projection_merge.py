"""Read models built over the splits of a store and merged equal the serial rebuild: the same
rows in the same order, the same holders and totals (the reduction behind
``downloads.scaleout.rebuild``, here without Dask)."""

from __future__ import annotations

from typing import Any

import pytest

from downloads import ReadModels, simulate
from downloads.events import new_registry
from es_core import Decoded, EventStore, open_store


@pytest.fixture(scope="module")
def recorded() -> EventStore:
    store = open_store("memory://")
    simulate(store, members=40, days=60, seed=8)
    return store


def views(models: ReadModels, titles: list[str]) -> dict[str, Any]:
    """Everything the models show."""
    return {
        "active": models.active_licenses.rows(),
        "holders": {t: models.active_licenses.holders(t) for t in titles},
        "by_member": models.active_licenses.by_member(),
        "by_device": models.active_licenses.by_device(),
        "per_title_day": models.downloads_per_title_day.rows(),
        "total": models.downloads_per_title_day.total(),
        "denials": models.denials_by_rule.rows(),
        "denial_totals": models.denials_by_rule.totals(),
        "devices": models.devices_per_member.rows(),
    }


def fed(store: EventStore, split: Any) -> tuple[Any, ...]:
    registry, models = new_registry(), ReadModels.fresh_models()
    for record in store.read_split(split):
        for event in registry.decode(record):
            for model in models:
                model.handle(Decoded(record, event))
    return models


@pytest.mark.parametrize("splits", [1, 2, 5, 40])
def test_models_merged_from_splits_equal_the_serial_rebuild(recorded: EventStore, splits: int) -> None:
    serial = ReadModels(recorded)
    serial.rebuild()
    titles = sorted({r["title_id"] for r in serial.downloads_per_title_day.rows()})
    merged = ReadModels(recorded)
    for split in reversed(recorded.split(splits)):  # any order of arrival
        merged.merge(fed(recorded, split))
    assert views(merged, titles) == views(serial, titles)
    assert len(serial.active_licenses) > 10 and serial.denials_by_rule.totals()
