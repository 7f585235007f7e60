"""``python -m downloads`` on a protected store (device names sealed), in a subprocess as a user
runs it: the key-encryption key comes from ``ES_KEK`` (or the variable ``--kek-env`` names),
never from the command line, and never shows in any output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from downloads import DEFAULT_RULES_PATH
from es_core import LocalKeyEncryptionKey, open_store

ROOT = Path(__file__).resolve().parents[3]
KEK = LocalKeyEncryptionKey(bytes(range(7, 39)), "kek-cli")
SECRET = KEK.to_text().partition(":")[2]
GENEROUS = str(DEFAULT_RULES_PATH.parent / "generous_title_limit.toml")


def run(*args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    """The command with ``environ`` added to an environment that holds no KEK of its own."""
    env = {k: v for k, v in os.environ.items() if k not in ("ES_KEK", "OTHER_KEK")} | environ
    done = subprocess.run(
        [sys.executable, "-m", "downloads", *args], capture_output=True, text=True, cwd=ROOT, timeout=180, env=env
    )
    assert SECRET not in done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The same small simulation twice: into a protected store (ES_KEK set) and a plain one."""
    folder = tmp_path_factory.mktemp("cli-protected")
    protected, plain = f"sqlite:///{folder}/protected.db", f"sqlite:///{folder}/plain.db"
    for url, environ in ((protected, {"ES_KEK": KEK.to_text()}), (plain, {})):
        done = run("simulate", "--members", "30", "--days", "30", "--store", url, "--quiet", "--json", **environ)
        assert done.returncode == 0, done.stderr
    return protected, plain


def test_simulate_with_es_kek_writes_a_protected_store(stores: tuple[str, str]) -> None:
    protected, plain = stores
    with open_store(protected) as store, open_store(plain) as other:
        assert store.has_key_store() and not other.has_key_store()
        names = [r.data["device_name"] for r in other.read_all() if r.event_type == "DeviceRegistered"]
        assert names
        sealed = [r.data for r in store.read_all(as_stored=True) if r.event_type == "DeviceRegistered"]
        assert all("device_name" not in data and "$personal" in data for data in sealed)
    database = Path(protected.removeprefix("sqlite:///")).read_bytes()
    assert not any(name.encode() in database for name in names)


COMMANDS = {"census": (), "explain": ("--member", "m00003"), "whatif": ("--rules", GENEROUS)}
"""The commands that read a store, with the options each needs besides ``--store``."""


@pytest.mark.parametrize("name", COMMANDS)
def test_with_its_kek_a_protected_store_reads_as_the_plain_one(stores: tuple[str, str], name: str) -> None:
    protected, plain = stores
    rest = (*COMMANDS[name], "--json")
    expected = run(name, "--store", plain, *rest)
    assert expected.returncode == 0, expected.stderr
    for environ, extra in (({"ES_KEK": KEK.to_text()}, ()), ({"OTHER_KEK": KEK.to_text()}, ("--kek-env", "OTHER_KEK"))):
        done = run(name, "--store", protected, *rest, *extra, **environ)
        assert done.returncode == 0, done.stderr
        assert without_wall_time(json.loads(done.stdout)) == without_wall_time(json.loads(expected.stdout))


def without_wall_time(report: object) -> object:
    if isinstance(report, dict):
        return {k: v for k, v in report.items() if k != "wall_seconds"}
    return report


@pytest.mark.parametrize("name", COMMANDS)
def test_without_its_kek_a_protected_store_is_one_line_naming_the_variable(stores: tuple[str, str], name: str) -> None:
    protected, _ = stores
    rest = COMMANDS[name]
    done = run(name, "--store", protected, *rest)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "error: the store is protected (its personal fields are sealed): set ES_KEK to its key-encryption key "
        "('key_id:<32 bytes in base64>')\n"
    )
    named = run(name, "--store", protected, *rest, "--kek-env", "OTHER_KEK")
    assert (named.returncode, named.stdout) == (2, "")
    assert named.stderr.startswith("error: no key-encryption key: set the environment variable OTHER_KEK to it")


def test_a_wrong_or_malformed_kek_is_refused_without_showing_it(stores: tuple[str, str]) -> None:
    protected, _ = stores
    wrong = LocalKeyEncryptionKey(bytes(32), "kek-cli").to_text()
    done = run("census", "--store", protected, ES_KEK=wrong)
    assert done.returncode == 2 and "does not open with the key-encryption key given" in done.stderr
    assert wrong.partition(":")[2] not in done.stderr
    malformed = "kek-cli:" + SECRET[:20]
    done = run("census", "--store", protected, ES_KEK=malformed)
    assert done.returncode == 2 and malformed not in done.stderr and SECRET[:20] not in done.stderr
    assert "the environment variable ES_KEK does not hold a key-encryption key" in done.stderr


def test_a_kek_for_a_store_that_was_never_protected_is_refused(stores: tuple[str, str]) -> None:
    _, plain = stores
    done = run("census", "--store", plain, ES_KEK=KEK.to_text())
    assert (done.returncode, done.stdout) == (2, "")
    assert "ES_KEK is set, but the store holds events and no key store: unset ES_KEK" in done.stderr
    with open_store(plain) as store:
        assert not store.has_key_store()  # nothing was written: the store is as it was


def test_the_key_is_never_an_argument() -> None:
    from downloads.cli import _parser

    done = run("census", "--help")
    assert "--kek-env NAME" in done.stdout and "ES_KEK" in done.stdout
    for option in ("--kek", "--kek-env"):  # argparse takes "--kek" for "--kek-env": a key given is refused unshown
        with pytest.raises(SystemExit):
            _parser().parse_args(["census", "--store", "x", option, KEK.to_text()])
        done = run("census", "--store", "sqlite:///nowhere.db", option, KEK.to_text())
        assert done.returncode == 2 and "takes the name of an environment variable" in done.stderr
