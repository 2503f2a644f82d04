"""AcmDirectory: the configuration's ACM with the run-time changes on top, durable and shared."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from acmdirkit import directory_on, write_config
from twisted.internet.task import Clock

from engine.acm.directory import (
    AcmDirectory,
    ConflictError,
    InvalidChangeError,
    UnknownNameError,
)
from engine.config import Config
from engine.modes.store import ModeStore
from engine.passwords import is_hash

CARLA = {"numbers": ["0470 00 11 06"], "pin": "5678", "groups": {"support": 4}}


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return write_config(tmp_path)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def directory(config: Config, clock: Clock) -> Iterator[AcmDirectory]:
    with ModeStore.in_data_dir(config.data_dir) as store:
        opened = directory_on(config, clock, auditor=store)
        yield opened
        opened.close()


def test_without_changes_the_settings_are_the_files(directory: AcmDirectory,
                                                    config: Config) -> None:  # fmt: skip
    assert directory.settings("acme") == config.customers["acme"].acm
    assert directory.settings("initech") is None


def test_a_change_persists_across_a_reopen_and_the_pin_is_stored_hashed(
    directory: AcmDirectory, config: Config, clock: Clock
) -> None:
    directory.put_operator("acme", "carla", CARLA, "api 127.0.0.1")
    directory.put_group("acme", "vip", {"strategy": "round-robin", "max_wait": 60}, "api 1")
    directory.close()
    with directory_on(config, clock) as again:
        acm = again.settings("acme")
        assert acm is not None
        carla = acm.operators["carla"]
        assert (carla.numbers, dict(carla.groups)) == (("+32470001106",), {"support": 4})
        assert (acm.groups["vip"].strategy, acm.groups["vip"].max_wait) == ("round-robin", 60)
        assert acm.groups["sales"].tiers == config.customers["acme"].acm.groups["sales"].tiers
        assert is_hash(carla.pin)
        assert again.verify_pin("acme", "carla", "5678")
        assert not again.verify_pin("acme", "carla", "5679")
        assert not again.verify_pin("acme", "nobody", "5678")
    bodies = sqlite3.connect(config.data_dir / "acm.sqlite").execute(
        "SELECT body FROM overlay").fetchall()  # fmt: skip
    assert not any("5678" in body for (body,) in bodies)


def test_a_put_without_pin_keeps_the_pin_and_a_reload_keeps_the_changes(
    directory: AcmDirectory, config: Config
) -> None:
    directory.put_operator("acme", "anna", {"numbers": ["+32470001104"],
                                            "groups": {"sales": 5, "support": 1}}, "api")
    assert directory.verify_pin("acme", "anna", "1234")  # the file's, digits as written
    directory.reconfigure(config)
    acm = directory.settings("acme")
    assert acm is not None and dict(acm.operators["anna"].groups) == {"sales": 5, "support": 1}


def test_the_audit_log_never_holds_a_softphone_ha1(directory: AcmDirectory,
                                                   config: Config) -> None:  # fmt: skip
    ha1 = "e9d53d8ae5bb383683e3af8d96a7d943"
    body = {**CARLA, "softphone": {"user": "carla", "ha1": ha1}}
    directory.put_operator("acme", "carla", body, "api 127.0.0.1")
    with ModeStore.in_data_dir(config.data_dir) as store:
        (entry,) = [e for e in store.audit_log("acme") if e.action == "acm-operator-put"]
    assert "carla" in entry.detail and ha1 not in entry.detail and "5678" not in entry.detail


def test_another_engine_sees_a_change_at_its_next_poll(
    directory: AcmDirectory, config: Config
) -> None:
    other_clock = Clock()
    heard: list[str] = []
    with directory_on(config, other_clock, interval=0.5, on_change=heard.append) as other:
        other.start()
        directory.delete_operator("acme", "bert", "api")
        assert "bert" in other.settings("acme").operators  # type: ignore[union-attr]
        other_clock.advance(0.5)
        assert "bert" not in other.settings("acme").operators  # type: ignore[union-attr]
        assert heard == ["acme"]
        other_clock.advance(0.5)
        assert heard == ["acme"]  # nothing moved


@pytest.mark.parametrize(("body", "message"), [
    ({**CARLA, "groups": {"support": 10}},
     "operators.carla.groups.support must be at most 9, not 10"),
    ({**CARLA, "groups": {"suport": 1}},
     "operators.carla.groups: undefined group 'suport' (did you mean 'support'?)"),
    ({**CARLA, "pin": "12"}, "operators.carla.pin must be 4 to 8 digits (it is keyed on a phone)"),
    ({**CARLA, "numbers": ["+32470001104"]},
     "operators.carla.numbers: +32470001104 is already a number of operator 'anna'"),
    ({**CARLA, "colour": "red"}, "unknown key 'colour' in operators.carla"),
    ({"numbers": ["+32470001199"], "groups": {}}, "operators.carla lacks the required key 'pin'"),
])  # fmt: skip
def test_operators_are_checked_as_the_file_is(directory: AcmDirectory, body: dict[str, object],
                                              message: str) -> None:  # fmt: skip
    with pytest.raises(InvalidChangeError) as caught:
        directory.put_operator("acme", "carla", body, "api")
    assert str(caught.value).startswith(message)
    assert "carla" not in directory.settings("acme").operators  # type: ignore[union-attr]


def test_group_fields_are_typed_as_in_the_file(directory: AcmDirectory) -> None:
    with pytest.raises(InvalidChangeError, match=r"groups\.vip\.ring_timeout must be a number, "
                                                 r"not '15'"):  # fmt: skip
        directory.put_group("acme", "vip", {"ring_timeout": "15"}, "api")
    with pytest.raises(InvalidChangeError, match="unknown strategy 'random'"):
        directory.put_group("acme", "vip", {"strategy": "random"}, "api")


def test_a_change_that_breaks_another_rule_is_refused(directory: AcmDirectory) -> None:
    """Without anna, sales' best level would be 1, the level its first tier widens to."""
    with pytest.raises(ConflictError, match=r"groups\.sales\.tiers: the first tier's min_level"):
        directory.delete_operator("acme", "anna", "api")


def test_a_group_is_deleted_only_once_empty(directory: AcmDirectory) -> None:
    with pytest.raises(ConflictError, match=r"group 'support' still has operators \(bert\)"):
        directory.delete_group("acme", "support", "api")
    directory.put_operator("acme", "bert", {"numbers": ["+32470001105"],
                                            "groups": {"sales": 1}}, "api")  # fmt: skip
    directory.delete_group("acme", "support", "api")
    assert set(directory.settings("acme").groups) == {"sales"}  # type: ignore[union-attr]
    with pytest.raises(UnknownNameError, match="customer 'acme' has no group 'support'"):
        directory.delete_group("acme", "support", "api")


def test_a_customer_without_the_acm_option_is_refused(directory: AcmDirectory) -> None:
    with pytest.raises(ConflictError, match="customer 'initech' \\(classic formula\\) has not "
                                            "ordered Agent Contact Management"):  # fmt: skip
        directory.put_group("initech", "sales", {}, "api")


def test_changes_are_audited_without_the_pin(directory: AcmDirectory, config: Config) -> None:
    directory.put_operator("acme", "carla", CARLA, "api 10.0.0.7")
    directory.put_supervisors("acme", ["zoe"], "api 10.0.0.7")
    with ModeStore.in_data_dir(config.data_dir) as store:
        entries = store.audit_log(customer="acme")
    assert [(e.action, e.caller, e.via) for e in entries] == [
        ("acm-operator-put", "api 10.0.0.7", "api"), ("acm-supervisors-put", "api 10.0.0.7", "api")]
    assert "5678" not in entries[0].detail and entries[0].detail.endswith("; new PIN")
    assert directory.settings("acme").supervisors == ("zoe",)  # type: ignore[union-attr]
