"""``kek_from_environment``: the key-encryption key in an environment variable, as the command
lines and scale-out workers read it. Every error names the variable and never shows its value."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from es_core import (
    KEK_VARIABLE,
    InvalidInputError,
    KeyStoreError,
    LocalKeyEncryptionKey,
    NewEvent,
    PersonalData,
    kek_from_environment,
    open_store,
)

SECRET = bytes(range(100, 132))
TEXT = "kek-1:" + base64.b64encode(SECRET).decode()
PERSONAL = PersonalData({"DeviceRegistered": ("device_name",)})


def secret_free(message: str) -> bool:
    encoded = base64.b64encode(SECRET).decode()
    return encoded not in message and encoded[:12] not in message and repr(SECRET) not in message


def test_the_text_form_round_trips_through_the_variable() -> None:
    kek = kek_from_environment(environ={KEK_VARIABLE: TEXT})
    assert KEK_VARIABLE == "ES_KEK"
    assert kek.key_id == "kek-1" and kek.to_text() == TEXT
    assert kek_from_environment("OTHER", {"OTHER": f"  {TEXT}\n"}).to_text() == TEXT  # a trailing newline is fine
    made = LocalKeyEncryptionKey.generate("kek-2")
    assert kek_from_environment(environ={"ES_KEK": made.to_text()}).key_id == "kek-2"
    assert secret_free(repr(kek))


def test_os_environ_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ES_KEK", TEXT)
    assert kek_from_environment().to_text() == TEXT


@pytest.mark.parametrize("environ", [{}, {"ES_KEK": ""}], ids=["unset", "empty"])
def test_an_unset_variable_is_a_key_store_error_naming_it(environ: dict[str, str]) -> None:
    with pytest.raises(KeyStoreError, match="set the environment variable ES_KEK"):
        kek_from_environment(environ=environ)


@pytest.mark.parametrize(
    "value",
    [
        base64.b64encode(SECRET).decode(),  # no key id
        "kek-1:" + base64.b64encode(SECRET[:16]).decode(),  # 16 bytes
        "kek-1:" + base64.b64encode(SECRET).decode()[:-3] + "!!!",  # not base64
        ":" + base64.b64encode(SECRET).decode(),  # an empty key id
    ],
    ids=["no-key-id", "short", "not-base64", "empty-key-id"],
)
def test_a_malformed_value_is_a_key_store_error_that_never_shows_it(value: str) -> None:
    with pytest.raises(KeyStoreError, match="the environment variable MY_KEK does not hold a key-encryption key") as e:
        kek_from_environment("MY_KEK", {"MY_KEK": value})
    assert secret_free(str(e.value)) and value not in str(e.value)
    assert e.value.__cause__ is None and e.value.__suppress_context__  # no chained error carries the value


@pytest.mark.parametrize("name", ["", None, 3, "ES-KEK", "1KEK", TEXT], ids=["empty", "none", "int", "dash",
                                                                       "digit-first", "the-key-itself"])
def test_a_bad_variable_name_is_bad_input_never_repeated(name: object) -> None:
    with pytest.raises(InvalidInputError) as e:
        kek_from_environment(name, {TEXT: TEXT})  # type: ignore[arg-type]
    assert secret_free(str(e.value))


def test_the_right_kek_opens_the_store_and_a_wrong_one_is_refused_at_start_up(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/events.db"
    with open_store(url) as store:
        store.protect(kek_from_environment(environ={"ES_KEK": TEXT}), PERSONAL)
        store.append("member-7", [NewEvent(event_type="DeviceRegistered", data={"device_name": "Ada's phone"})])
    with open_store(url) as store:
        store.protect(kek_from_environment(environ={"ES_KEK": TEXT}), PERSONAL)
        assert store.read_stream("member-7")[0].data == {"device_name": "Ada's phone"}
    same_id = LocalKeyEncryptionKey(bytes(32), "kek-1").to_text()
    other_id = LocalKeyEncryptionKey(bytes(32), "kek-9").to_text()
    for wrong, why in ((same_id, "does not open this wrapped key"), (other_id, "'kek-1', which was not given")):
        with open_store(url) as store, pytest.raises(KeyStoreError, match=why) as e:
            store.protect(kek_from_environment(environ={"ES_KEK": wrong}), PERSONAL)
        assert "does not open with the key-encryption key given" in str(e.value)
        assert secret_free(str(e.value)) and wrong.partition(":")[2] not in str(e.value)
