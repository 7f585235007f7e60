"""Rule and catalogue files: the shipped defaults, inheritance, lookups, and bad files, each
refused with a RuleFileError naming the file, the key path and the problem."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from downloads import (
    DEFAULT_CATALOGUE_PATH,
    DEFAULT_RULES_PATH,
    RuleFileError,
    RuleSet,
    load_catalogue,
    load_rules,
)
from es_core import EventSourcingError, InvalidInputError

from .conftest import make_catalogue, make_rules

RULES_DIR = DEFAULT_RULES_PATH.parent


def write(tmp_path: Path, text: str, name: str = "rules.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


MINIMAL = 'name = "mini"\n[plans.basic]\ndevices_with_downloads = 1\n'


def test_the_default_rules_carry_the_documented_defaults() -> None:
    rules = load_rules()
    assert [rules.device_limit(p) for p in ("basic", "standard", "premium")] == [1, 2, 4]
    assert rules.window == timedelta(days=365)
    assert rules.renewal_counts is True
    assert rules.limits.downloads_per_device == 100
    assert rules.studio_cap("originals") == 100
    assert rules.title_limit("northlight", "harbour") == 3
    assert rules.title_limit("originals", "anything") is None  # only some studios limit titles
    assert timedelta(hours=48) <= rules.license_duration("northlight", "x") <= timedelta(days=7)
    assert rules.license_duration("originals", "x") == timedelta(days=7)
    assert rules.after_first_play("northlight", "x") == timedelta(hours=48)
    assert rules.after_first_play("meridian", "x") == timedelta(hours=24) < rules.license_duration("meridian", "x")
    assert rules.studio_year_limit("meridian") == 12 and rules.studio_year_limit("originals") is None
    assert rules.studio_cap("kestrel") == 10
    assert (rules.clock.max_skew, rules.clock.max_lateness) == (timedelta(minutes=10), timedelta(minutes=5))
    rules.check_against(load_catalogue())


def test_a_rule_set_is_named_by_its_content_not_its_file() -> None:
    default, same = load_rules(), load_rules()
    assert default.digest == same.digest and default.label == f"default@{default.digest}"
    generous = load_rules(RULES_DIR / "generous_title_limit.toml")
    assert generous.digest != default.digest
    renamed = RuleSet(name="another name", description="same limits", plans=default.plans, limits=default.limits,
                      license=default.license, clock=default.clock, studios=default.studios, titles=default.titles)
    assert renamed.digest == default.digest  # the hash is of the limits, not the words around them


def test_every_shipped_rule_file_loads_against_the_catalogue() -> None:
    catalogue = load_catalogue(DEFAULT_CATALOGUE_PATH)
    names = set()
    for path in sorted(RULES_DIR.glob("*.toml")):
        rules = load_rules(path)
        rules.check_against(catalogue)
        names.add(rules.name)
    assert {"default", "generous-title-limit", "standard-three-devices"} <= names


def test_an_extending_file_overrides_key_by_key() -> None:
    generous = load_rules(RULES_DIR / "generous_title_limit.toml")
    three = load_rules(RULES_DIR / "standard_three_devices.toml")
    assert generous.title_limit("northlight", "x") == 5
    assert generous.license_duration("northlight", "x") == timedelta(hours=48)  # inherited beside the override
    assert generous.device_limit("standard") == 2
    assert three.device_limit("standard") == 3
    assert three.device_limit("premium") == 4
    assert three.title_limit("northlight", "x") == 3


def test_title_rules_win_over_studio_rules_which_win_over_defaults() -> None:
    rules = make_rules(strict_cap=3)
    assert rules.license_duration("strict", "film-c") == timedelta(hours=72)  # title
    assert rules.license_duration("strict", "film-a") == timedelta(hours=48)  # studio
    assert rules.license_duration("open", "show-x") == timedelta(hours=168)  # default
    assert rules.studio_cap("strict") == 3
    assert rules.studio_cap("open") == 100


def test_the_catalogue_normalises_dates_to_utc(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[studios.s]\nname = "S"\n[studios.s.titles]\n'
        'a = { name = "A", leaving_on = 2026-05-01 }\n'
        'b = { name = "B", available_from = 2026-05-01T02:00:00+02:00 }\n',
        "catalogue.toml",
    )
    catalogue = load_catalogue(path)
    a, b = catalogue.title("a"), catalogue.title("b")
    assert a is not None and b is not None
    assert a.leaving_on == datetime(2026, 5, 1, tzinfo=UTC)
    assert b.available_from == datetime(2026, 5, 1, tzinfo=UTC)
    assert b.available_from.tzinfo is UTC
    assert a.available_at(datetime(2026, 4, 30, 23, 59, tzinfo=UTC)) and not a.available_at(a.leaving_on)


# -- bad files ---------------------------------------------------------------------------

BAD_RULES = [
    ("not toml", "name = \n", "", "not valid TOML"),
    ("unknown top key", "colour = 1\n" + MINIMAL, "colour", "unknown key"),
    ("typo inside a plan", 'name = "x"\n[plans.basic]\ndevices_with_downlods = 1\n',
     "plans.basic.devices_with_downlods", "unknown key"),
    ("missing plan key", 'name = "x"\n[plans.basic]\n', "plans.basic.devices_with_downloads", "required"),
    ("wrong type", 'name = "x"\n[plans.basic]\ndevices_with_downloads = "one"\n',
     "plans.basic.devices_with_downloads", "expected `int`"),
    ("zero devices", 'name = "x"\n[plans.basic]\ndevices_with_downloads = 0\n',
     "plans.basic.devices_with_downloads", ">= 1"),
    ("plan not a table", 'name = "x"\nplans = { basic = 1 }\n', "plans.basic", "must be a table"),
    ("window past the horizon", MINIMAL + "[limits]\nrolling_year_days = 1000\n", "limits.rolling_year_days", "<= 730"),
    ("negative studio cap", MINIMAL + "[studios.s]\nactive_downloads = -1\n", "studios.s.active_downloads", ">= 1"),
    ("no name", "[plans.basic]\ndevices_with_downloads = 1\n", "name", "required"),
    ("no plans", 'name = "x"\n', "plans", "at least one plan"),
    ("renewal flag not boolean", MINIMAL + '[limits]\nrenewal_counts_as_download = "yes"\n',
     "limits.renewal_counts_as_download", "expected `bool`"),
]


@pytest.mark.parametrize(("case", "text", "key", "problem"), BAD_RULES, ids=[c[0] for c in BAD_RULES])
def test_a_bad_rule_file_is_refused_naming_file_key_and_problem(
    tmp_path: Path, case: str, text: str, key: str, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(RuleFileError) as caught:
        load_rules(path)
    error = caught.value
    assert error.key == key
    assert problem in error.problem
    assert str(path) in str(error) and error.path == str(path)
    assert isinstance(error, InvalidInputError) and isinstance(error, EventSourcingError)


def test_a_missing_rule_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError, match="no such file"):
        load_rules(tmp_path / "absent.toml")


def test_extends_must_name_a_file_and_must_not_cycle(tmp_path: Path) -> None:
    write(tmp_path, 'extends = "b.toml"\n' + MINIMAL, "a.toml")
    write(tmp_path, 'extends = "a.toml"\n' + MINIMAL, "b.toml")
    with pytest.raises(RuleFileError, match="cycle") as caught:
        load_rules(tmp_path / "a.toml")
    assert caught.value.key == "extends"
    with pytest.raises(RuleFileError, match="no such file"):
        load_rules(write(tmp_path, 'extends = "nowhere.toml"\n' + MINIMAL, "c.toml"))
    with pytest.raises(RuleFileError) as caught:
        load_rules(write(tmp_path, "extends = 3\n" + MINIMAL, "d.toml"))
    assert caught.value.key == "extends"


def test_rules_naming_an_unknown_studio_or_title_are_refused(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path, MINIMAL + "[studios.nowhere]\nactive_downloads = 2\n"))
    with pytest.raises(RuleFileError, match="no such studio") as caught:
        rules.check_against(make_catalogue())
    assert caught.value.key == "studios.nowhere"
    rules = load_rules(write(tmp_path, MINIMAL + "[titles.ghost]\nlicense_hours = 2\n", "t.toml"))
    with pytest.raises(RuleFileError, match="no such title"):
        rules.check_against(make_catalogue())


BAD_CATALOGUES = [
    ("naive date-time", 'a = { name = "A", leaving_on = 2026-05-01T00:00:00 }', "studios.s.titles.a.leaving_on",
     "UTC offset"),
    ("leaving before available", 'a = { name = "A", available_from = 2026-05-02, leaving_on = 2026-05-01 }',
     "studios.s.titles.a.leaving_on", "after available_from"),
    ("unknown title key", 'a = { name = "A", rating = 5 }', "studios.s.titles.a.rating", "unknown key"),
    ("title without a name", "a = { kind = \"film\" }", "studios.s.titles.a.name", "required"),
]


@pytest.mark.parametrize(("case", "line", "key", "problem"), BAD_CATALOGUES, ids=[c[0] for c in BAD_CATALOGUES])
def test_a_bad_catalogue_is_refused_naming_the_key(
    tmp_path: Path, case: str, line: str, key: str, problem: str
) -> None:
    path = write(tmp_path, f'[studios.s]\nname = "S"\n[studios.s.titles]\n{line}\n', "catalogue.toml")
    with pytest.raises(RuleFileError) as caught:
        load_catalogue(path)
    assert caught.value.key == key
    assert problem in caught.value.problem


def test_a_title_id_used_by_two_studios_is_refused(tmp_path: Path) -> None:
    text = '[studios.s]\nname = "S"\n[studios.s.titles]\na = { name = "A" }\n' \
           '[studios.t]\nname = "T"\n[studios.t.titles]\na = { name = "Also A" }\n'
    with pytest.raises(RuleFileError, match="unique"):
        load_catalogue(write(tmp_path, text, "catalogue.toml"))


def test_an_empty_catalogue_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError, match="no titles"):
        load_catalogue(write(tmp_path, 'name = "empty"\n', "catalogue.toml"))
