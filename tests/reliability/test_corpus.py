"""Every bad-input case as its own test: the documented error, nothing written, store usable."""

from __future__ import annotations

from pathlib import Path

import pytest

from downloads import Catalogue, RuleSet
from es_core import InvalidEventError
from reliability.corpus import ACCEPTED, CASES, EXIT_2, RECOVERED, Case, build_template, new_bed, run_case

from .known_issues import CORPUS, known

Template = tuple[Path, RuleSet, Catalogue]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return build_template(tmp_path_factory.mktemp("template"))


def _params() -> list[object]:
    return [
        pytest.param(case, id=case.name, marks=[known(CORPUS[case.name])] if case.name in CORPUS else [])
        for case in CASES
    ]


@pytest.mark.parametrize("case", _params())
def test_case(case: Case, template: Template, tmp_path: Path) -> None:
    out = run_case(case, new_bed(template[0], tmp_path / "bed", *template[1:]))
    assert out.ok, f"{case.name}: expected {case.expected_name}; {'; '.join(out.problems)}"


def test_the_corpus_is_big_and_covers_every_area() -> None:
    assert len(CASES) >= 50
    assert len({c.name for c in CASES}) == len(CASES), "case names must be unique"
    areas = {c.area for c in CASES}
    assert areas == {"api", "command", "url", "cli", "rules", "stored"}
    assert {c.expect for c in CASES} >= {EXIT_2, RECOVERED, ACCEPTED}
    assert all(c.verify is not None for c in CASES if c.expect in (RECOVERED, ACCEPTED))
    assert set(CORPUS) <= {c.name for c in CASES}, "a known issue names a case that no longer exists"


def test_the_runner_notices_a_write(template: Template, tmp_path: Path) -> None:
    """A control: an input that is (wrongly) accepted must be reported, with what it wrote."""
    from reliability.corpus import _append

    out = run_case(
        Case("control-write", "api", _append(), InvalidEventError),
        new_bed(template[0], tmp_path / "bed", *template[1:]),
    )
    assert not out.ok
    assert any("no error" in p for p in out.problems)
    assert "it wrote to the store" in out.problems


def test_the_runner_notices_the_wrong_error(template: Template, tmp_path: Path) -> None:
    def raises_value_error(bed: object) -> None:
        raise ValueError("not one of ours")

    out = run_case(
        Case("control-error", "api", raises_value_error, InvalidEventError),
        new_bed(template[0], tmp_path / "bed", *template[1:]),
    )
    assert not out.ok and "ValueError" in out.problems[0]


def test_the_runner_notices_a_store_left_unusable(template: Template, tmp_path: Path) -> None:
    def break_it(bed: object) -> None:
        bed.sql("DROP TABLE events")  # type: ignore[attr-defined]
        raise InvalidEventError("and then complain")

    out = run_case(
        Case("control-break", "api", break_it, InvalidEventError), new_bed(template[0], tmp_path / "bed", *template[1:])
    )
    assert any("unusable" in p or "could not run" in p for p in out.problems)
