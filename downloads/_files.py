"""Reading TOML data files into msgspec Structs, with errors that name the file and the key.

msgspec hides dict keys in its error paths (``$.plans[...].n``), so tables keyed by id are
converted entry by entry here, and every error comes out as a ``RuleFileError`` whose key path
a person can find in the file (``plans.basic.devices_with_downloads``).
"""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from .errors import RuleFileError

T = TypeVar("T")
MAX_EXTENDS = 8


def read_toml(path: str | Path, *, extends_key: str | None = None) -> dict[str, Any]:
    """The file's tables, after following ``extends = "other.toml"`` (a path relative to the
    file) when ``extends_key`` is given: the extending file's keys override, table by table."""
    return _read(Path(path), extends_key, ())


def _read(path: Path, extends_key: str | None, seen: tuple[Path, ...]) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RuleFileError(path, "", "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleFileError(path, "", f"cannot be read: {exc}") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleFileError(path, "", f"not valid TOML: {exc}") from exc
    if extends_key is None or extends_key not in raw:
        return raw
    parent_name = raw.pop(extends_key)
    if not isinstance(parent_name, str) or not parent_name:
        raise RuleFileError(path, extends_key, "must be the path of another rule file, as a string")
    parent = (path.parent / parent_name).resolve()
    chain = (*seen, path.resolve())
    if parent in chain:
        raise RuleFileError(path, extends_key, f"extends {parent_name!r}, which extends this file again (a cycle)")
    if len(chain) > MAX_EXTENDS:
        raise RuleFileError(path, extends_key, f"more than {MAX_EXTENDS} files extend one another")
    return merge(_read(parent, extends_key, chain), raw)


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of tables: ``override`` wins key by key; non-table values replace."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def dates_to_utc(value: Any) -> Any:
    """TOML plain dates mean midnight UTC; offset date-times are normalised to UTC. Local
    date-times (no offset) are left for validation to refuse."""
    if isinstance(value, dict):
        return {k: dates_to_utc(v) for k, v in value.items()}
    if isinstance(value, list):
        return [dates_to_utc(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo is not None else value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value


def convert(value: Any, cls: type[T], path: str | Path, key: str = "") -> T:
    """``msgspec.convert`` with the error turned into a ``RuleFileError`` at ``key``."""
    try:
        return msgspec.convert(value, cls)
    except msgspec.ValidationError as exc:
        raise _file_error(str(exc), path, key) from None


def table(raw: dict[str, Any], name: str, path: str | Path) -> dict[str, Any]:
    """A table keyed by id (``[plans.basic]``...), checked to be a table of tables."""
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise RuleFileError(path, name, f"must be a table, not {_kind(value)}")
    for entry_key, entry in value.items():
        if not isinstance(entry, dict):
            raise RuleFileError(path, f"{name}.{entry_key}", f"must be a table, not {_kind(entry)}")
    return value


def _file_error(message: str, path: str | Path, prefix: str) -> RuleFileError:
    text, _, where = message.partition(" - at `")
    where = where.rstrip("`").removeprefix("$").lstrip(".")
    key = ".".join(p for p in (prefix, where) if p)
    if text.startswith("Object contains unknown field `"):
        field = text.split("`")[1]
        return RuleFileError(path, _join(key, field), "unknown key (misspelt, or not part of the file format)")
    if text.startswith("Object missing required field `"):
        field = text.split("`")[1]
        return RuleFileError(path, _join(key, field), "is required but missing")
    if "timezone component" in text:
        return RuleFileError(path, key, "a date-time needs a UTC offset (e.g. 2026-05-01T00:00:00Z) or use a date")
    return RuleFileError(path, key, text[0].lower() + text[1:] if text else "invalid")


def _join(key: str, field: str) -> str:
    return f"{key}.{field}" if key else field


def _kind(value: object) -> str:
    return {str: "a string", int: "a number", float: "a number", bool: "a boolean", list: "an array"}.get(
        type(value), type(value).__name__
    )
