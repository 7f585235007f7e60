"""Read models built over the splits of a store and merged equal the serial rebuild: the same
rows in the same order, the same holders and totals (the reduction behind
``downloads.scaleout.rebuild``, here without Dask)."""

from __future__ import annotations

from typing import Any

import pytest

from downloads import ReadModels, simulate
from downloads.events import new_registry
from es_core import Decoded, EventStore, InvalidPositionError, open_store


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


def test_merged_models_marked_at_the_cut_catch_up_from_there(recorded: EventStore) -> None:
    events = list(recorded.read_all())
    merged = ReadModels(recorded)
    for split in recorded.split(3):
        merged.merge(fed(recorded, split))
    cut = recorded.split(3)[0].upto
    merged.mark_rebuilt(cut, len(events))
    assert (merged.position, merged.subscription.delivered, merged.status().position) == (cut, len(events), cut)
    assert merged.catch_up() == 0  # nothing past the cut: the merged models are not fed twice


def test_only_fresh_models_take_a_rebuilt_position(recorded: EventStore) -> None:
    models = ReadModels(recorded)
    with pytest.raises(InvalidPositionError):
        models.mark_rebuilt(recorded.head_position() + 1, 0)
    assert models.position == 0  # refused: nothing stored
    models.rebuild()
    with pytest.raises(InvalidPositionError):
        models.mark_rebuilt(1, 1)
