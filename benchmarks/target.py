"""Where a benchmark's databases live: the store named on the command line, its kind, its
directory and its SQLite durability."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from es_core import SQLiteStore
from es_core.stores import sqlite_path


@dataclass
class Target:
    """The store named on the command line: kind, where files go, and SQLite durability."""

    url: str
    kind: str  # sqlite | memory | cassandra
    directory: Path | None = None
    prefix: str = "bench"
    synchronous: str = "full"
    owned_directory: bool = False  # a temporary directory this run made (and removes)

    def path(self, name: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{self.prefix}.bench-{name}.db"

    def cleanup(self, keep: bool) -> None:
        """Remove this run's files: the temporary directory, or the ``<name>.bench-*.db`` files
        next to a named path (never the named file itself)."""
        if keep or self.directory is None:
            return
        if self.owned_directory:
            shutil.rmtree(self.directory, ignore_errors=True)
        else:
            self.remove_own_files()

    def remove_own_files(self) -> None:
        if self.directory is not None and self.directory.is_dir():
            for name in ("*.db", "*.db-wal", "*.db-shm"):
                for file in self.directory.glob(f"{self.prefix}.bench-{name}"):
                    file.unlink(missing_ok=True)

def resolve_target(url: str, workdir: Path | None) -> Target:
    """``sqlite`` (a fresh temporary directory), ``sqlite:///dir/name.db`` (files named
    ``name.bench-<part>.db`` in that directory, emptied at the start and removed at the end
    unless ``--keep``), ``memory://`` (es_core only) or ``cassandra://...``."""
    if url in ("sqlite", "sqlite://", "sqlite:///"):
        url = "sqlite"
    parts = urlsplit(url)
    scheme = parts.scheme or url
    if scheme == "memory":
        return Target(url, "memory")
    if scheme == "cassandra":
        return Target(url, "cassandra")
    if scheme != "sqlite":
        raise SystemExit(f"unknown --store {url!r}: use sqlite, sqlite:///path.db, memory:// or cassandra://...")
    synchronous = "full"
    for key, value in parse_qsl(parts.query):
        if key != "synchronous" or value not in SQLiteStore.SYNCHRONOUS:
            raise SystemExit(f"unsupported sqlite option {key}={value!r} (known: synchronous=full|normal)")
        synchronous = value
    path = sqlite_path(url)
    if url == "sqlite" or not path:
        base = workdir or Path(tempfile.gettempdir())
        base.mkdir(parents=True, exist_ok=True)
        directory = Path(tempfile.mkdtemp(prefix="es-bench-", dir=base))
        return Target(url, "sqlite", directory, "run", synchronous, owned_directory=True)
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    target = Target(url, "sqlite", file.parent, file.stem, synchronous)
    target.remove_own_files()  # a previous run's files: every run starts from empty databases
    return target
