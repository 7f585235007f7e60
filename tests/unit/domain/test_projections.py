"""Read models from the global log: correct rows, and a rebuild from zero gives the same."""

from __future__ import annotations

from datetime import date, timedelta

from downloads import ReadModels, ReleaseLicense, RemoveDevice, RenewLicense

from .conftest import T0, World

DAY = timedelta(days=1)


def _activity(world: World) -> dict[str, str]:
    world.join("ann", plan="standard", devices=("phone", "tablet"))
    world.join("bob", plan="basic", devices=("phone", "tablet"))
    lic = {
        "a1": world.acquire("film-a", T0, member="ann").license_id,
        "a2": world.acquire("show-x", T0, member="ann", device="tablet").license_id,
        "b1": world.acquire("leaving", T0 + DAY, member="bob").license_id,
    }
    world.acquire("show-x", T0 + DAY, member="bob", device="tablet")  # denied: devices
    world.send(RenewLicense, "ann", T0 + 3 * DAY, license_id=lic["a1"])
    world.send(ReleaseLicense, "ann", T0 + 4 * DAY, license_id=lic["a2"])
    return lic  # type: ignore[return-value]


def test_the_read_models(world: World) -> None:
    lic = _activity(world)
    models = ReadModels(world.store)
    models.catch_up()
    active = models.active_licenses
    assert {r["license_id"] for r in active.rows()} == {lic["a1"], lic["b1"]}
    assert active.by_member() == {"ann": 1, "bob": 1}
    assert active.by_device() == {("ann", "phone"): 1, ("bob", "phone"): 1}
    assert active.holders("leaving") == ["bob"]
    [a1] = [r for r in active.rows() if r["license_id"] == lic["a1"]]
    assert a1["renewals"] == 1 and a1["expires_at"] == T0 + 5 * DAY
    days = models.downloads_per_title_day.rows()
    assert {"day": date(2026, 1, 8), "title_id": "film-a", "studio_id": "strict", "downloads": 0, "renewals": 1} in days
    assert models.downloads_per_title_day.total() == 4
    assert models.denials_by_rule.totals() == {"devices_per_plan": 1}
    assert models.devices_per_member.rows() == [
        {"member_id": "ann", "devices": 2, "devices_holding_downloads": 1},
        {"member_id": "bob", "devices": 2, "devices_holding_downloads": 1},
    ]


def test_a_withdrawal_and_a_removed_device_update_the_read_models(world: World) -> None:
    _activity(world)
    models = ReadModels(world.store)
    models.catch_up()
    leaving_on = world.catalogue.title("leaving").leaving_on  # type: ignore[union-attr]
    world.service.withdraw_title("leaving", leaving_on, "w", models.active_licenses.holders("leaving"))  # type: ignore[arg-type]
    world.send(RemoveDevice, "ann", leaving_on, device_id="phone")
    models.catch_up()
    assert models.active_licenses.rows() == []
    assert models.devices_per_member.rows()[0] == {"member_id": "ann", "devices": 1, "devices_holding_downloads": 0}


def test_a_rebuild_from_zero_gives_the_same_rows(world: World) -> None:
    _activity(world)
    models = ReadModels(world.store)
    models.catch_up()
    before = [list(m.rows()) for m in models.all()]
    assert models.rebuild() == world.store.head_position()
    assert [list(m.rows()) for m in models.all()] == before
