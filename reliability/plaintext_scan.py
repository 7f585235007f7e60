"""Scanning what a run wrote for given plaintexts: every file of a directory, byte for byte, and
every value of every table of a Cassandra keyspace, read through CQL.

The tables come from ``system_schema`` (tables and materialised views), not from a list, so a
table the schema gains later is scanned too. Every column of every row is turned into bytes: a
blob as it is, text as UTF-8, a collection or tuple value by value, anything else by its
``repr`` (numbers, uuids and times cannot hold a device name, but nothing is left out).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PAGE_SIZE = 500  # rows per CQL page: the driver pages through a table of any size


@dataclass
class Finding:
    """Where a plaintext was found: a file, or a keyspace's table and column."""

    where: str
    owner: str  # whose plaintext it is


@dataclass
class ScanTotals:
    files: int = 0
    bytes: int = 0
    tables: int = 0
    rows: int = 0
    values: int = 0
    rows_by_table: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)


def scan_files(root: Path, plaintexts: Mapping[str, list[bytes]], totals: ScanTotals) -> None:
    """Every file under ``root``, whole, for each owner's plaintexts."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        totals.files += 1
        totals.bytes += len(data)
        totals.findings.extend(
            Finding(path.name, owner) for owner, texts in plaintexts.items() if any(t in data for t in texts)
        )


def keyspace_tables(session: Any, keyspace: str) -> list[str]:
    """The keyspace's tables and materialised views, as the schema lists them now."""
    names: list[str] = []
    for table, column in (("tables", "table_name"), ("views", "view_name")):
        rows = session.execute(
            f"SELECT {column} FROM system_schema.{table} WHERE keyspace_name = %s", (keyspace,)
        )
        names.extend(row[0] for row in rows)
    return sorted(names)


def scan_keyspace(session: Any, keyspace: str, plaintexts: Mapping[str, list[bytes]], totals: ScanTotals) -> None:
    """Every value of every row of every table of ``keyspace``, for each owner's plaintexts.

    ``session`` is a driver session whose rows are tuples (the store's ``session``); its default
    consistency applies (the store URL's), so on a cluster the rows read are what a quorum holds."""
    from cassandra.query import SimpleStatement  # the driver, only when a keyspace is scanned

    for table in keyspace_tables(session, keyspace):
        statement = SimpleStatement(f'SELECT * FROM "{keyspace}"."{table}"', fetch_size=PAGE_SIZE)
        result = session.execute(statement)
        columns, rows = list(result.column_names), 0
        found: set[tuple[str, str]] = set()  # (column, owner): one finding each, however many rows
        for row in result:  # iterating fetches the following pages
            rows += 1
            for column, value in zip(columns, row, strict=True):
                for data in value_bytes(value):
                    totals.values += 1
                    for owner, texts in plaintexts.items():
                        if any(t in data for t in texts):
                            found.add((column, owner))
        totals.tables += 1
        totals.rows += rows
        totals.rows_by_table[table] = rows
        totals.findings.extend(Finding(f"{keyspace}.{table}.{column}", owner) for column, owner in sorted(found))


def value_bytes(value: Any) -> Iterator[bytes]:
    """A column value as the byte strings it holds (none for a null)."""
    if value is None:
        return
    if isinstance(value, bytes | bytearray | memoryview):
        yield bytes(value)
    elif isinstance(value, str):
        yield value.encode()
    elif isinstance(value, Mapping):  # maps (the driver's own map types are Mappings too)
        for key, item in value.items():
            yield from value_bytes(key)
            yield from value_bytes(item)
    elif isinstance(value, list | tuple | set | frozenset) or _is_collection(value):
        for item in value:
            yield from value_bytes(item)
    else:
        yield repr(value).encode()


def _is_collection(value: Any) -> bool:
    """The driver's sorted-set type, which is neither a set nor a list."""
    return type(value).__name__ == "SortedSet"
