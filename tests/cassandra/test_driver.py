"""Exactly one driver: scylla-driver must be the only installed distribution that owns the
``cassandra`` module. PyPI's ``cqlsh`` depends on ``cassandra-driver``, which installs its own
``cassandra/`` over scylla-driver's files, so the store would run on a mix of the two."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

cassandra = pytest.importorskip("cassandra", reason="the Cassandra driver is an optional extra")


def owners_of_the_cassandra_module() -> dict[str, list[str]]:
    """Distribution name -> the files under ``cassandra/`` its RECORD lists."""
    owners: dict[str, list[str]] = {}
    for dist in importlib.metadata.distributions():
        files = [str(f) for f in dist.files or () if f.parts and f.parts[0] == "cassandra"]
        if files:
            owners.setdefault(dist.metadata["Name"].lower(), []).extend(files)
    return owners


def test_only_scylla_driver_owns_the_cassandra_module() -> None:
    owners = owners_of_the_cassandra_module()
    assert set(owners) == {"scylla-driver"}, (
        f"the `cassandra` module is owned by {sorted(owners)}; only scylla-driver may provide it "
        "(run `make setup`, which removes cassandra-driver and reinstalls scylla-driver)"
    )


def test_the_imported_driver_is_scylla_drivers() -> None:
    dist = importlib.metadata.distribution("scylla-driver")
    assert cassandra.__version__ == dist.version
    init = Path(cassandra.__file__).resolve()
    assert init == Path(dist.locate_file("cassandra/__init__.py")).resolve()


def test_cqlsh_comes_from_scylla_cqlsh() -> None:
    names = {d.metadata["Name"].lower() for d in importlib.metadata.distributions()}
    assert "scylla-cqlsh" in names and "cqlsh" not in names
