"""DRS by phone through a real ``vms serve``: keys by RFC 4733, in-band tones and INFO, e-mail.

A phone of our own (``phonekit``) calls the DRS service number and keys the
customer number and the password; the engine switches the customer's mode
in the store under ``data_dir``, which ``vms drs status`` and every engine
read, and the tree's ``mode: drs`` rule takes the next call. The contacts'
e-mail goes to a real SMTP server (aiosmtpd) in the test.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from phonekit import Phone, Trunk

from engine.passwords import hash_password
from vmskit import b2bua, free_port, run_vms, tree

pytestmark = pytest.mark.integration

SERVICE = "+3278150000"
NUMBER = "+3225553001"
ROUTES = """\
  - name: disaster
    when: {mode: drs}
    do: {forward: "+3238889999"}
  - name: usual
    do: {forward: "+3225550001"}
"""


class Inbox:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.port = free_port()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"

    def wait(self, count: int, timeout: float = 5.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    yield handler
    controller.stop()


@pytest.fixture(scope="module")
def trunk() -> Iterator[Trunk]:
    peer = Trunk()
    yield peer
    peer.close()


@pytest.fixture(scope="module")
def engine(serve_module: Any, trunk: Trunk, inbox: Inbox) -> Any:
    customers = {"acme": {
        "formula": "drs", "numbers": [NUMBER], "customer_number": "4711",
        "drs_password": hash_password("2468"), "contacts": ["ops@acme.example"],
    }}  # fmt: skip
    extra = {
        "customers": customers,
        "drs": {"service_number": SERVICE, "max_days": 31},
        "smtp": {"host": "127.0.0.1", "port": inbox.port, "from": "vms@test.example"},
        "media": {"rtp_ports": [34000, 34199]},
    }
    trees = {"acme.yaml": tree(NUMBER, ROUTES).replace("customer: itest", "customer: acme")}
    return serve_module(trees, [NUMBER], name="drs", sip=b2bua(trunk.hostport), extra=extra)


def status(engine: Any) -> dict[str, Any]:
    result = run_vms("drs", "status", "--customer", "acme", "--config", str(engine.config),
                     "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def wait_mode(engine: Any, mode: str, timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while status(engine)["mode"] != mode:
        assert time.monotonic() < deadline, f"the customer never went to {mode}"
        time.sleep(0.1)


def keyed_call(engine: Any, keys: list[str], how: str, caller: str = "+3226001122") -> Phone:
    phone = Phone(engine.sip, caller=caller)
    phone.call(SERVICE, codecs=("PCMU",))
    time.sleep(0.3)
    for entry in keys:
        phone.send_keys(entry, how)
    return phone


def routed_to(engine: Any, trunk: Trunk) -> str:
    """Where a call to the customer's number goes now (the trunk's INVITE)."""
    before = len(trunk.invites)
    phone = Phone(engine.sip, caller="+3226005555")
    try:
        phone.call(NUMBER, codecs=("PCMU",))
        phone.hang_up()
    finally:
        phone.close()
    return trunk.invites[before].uri.split("@")[0].removeprefix("sip:")


@pytest.mark.parametrize("how", ["rfc4733", "inband", "info"])
def test_activate_by_phone_then_deactivate_with_1(engine: Any, trunk: Trunk, inbox: Inbox,
                                                  how: str) -> None:  # fmt: skip
    mails = len(inbox.messages)
    assert routed_to(engine, trunk) == "+3225550001"
    phone = keyed_call(engine, ["4711#", "2468#"], how)
    try:
        wait_mode(engine, "drs")
        phone.wait_bye(15)  # after the confirmation prompt
    finally:
        phone.close()
    assert routed_to(engine, trunk) == "+3238889999"  # the tree's mode: drs rule
    until = status(engine)["until"]
    assert until is not None
    received = inbox.wait(mails + 1)
    assert received[mails].rcpt_tos == ["ops@acme.example"]
    assert b"DRS" in received[mails].content
    phone = keyed_call(engine, ["4711#", "2468#", "1"], how)
    try:
        wait_mode(engine, "normal")
        phone.wait_bye(15)
    finally:
        phone.close()
    assert routed_to(engine, trunk) == "+3225550001"
    assert len(inbox.wait(mails + 2)) == mails + 2


@pytest.mark.slow
def test_wrong_passwords_lock_the_phone_path_and_everything_is_audited(engine: Any) -> None:
    phone = keyed_call(engine, ["4711#", "1111#"], "rfc4733", caller="+3226007777")
    try:
        time.sleep(4)  # the wrong-password prompt, then the customer number again
        phone.send_keys("4711#", "rfc4733")
        phone.send_keys("2222#", "rfc4733")
        time.sleep(4)
        phone.send_keys("4711#", "rfc4733")
        phone.send_keys("3333#", "rfc4733")
        phone.wait_bye(15)  # the locked prompt, then the engine hangs up
    finally:
        phone.close()
    phone = keyed_call(engine, ["4711#", "2468#"], "rfc4733", caller="+3226006666")
    try:
        phone.wait_bye(15)  # locked: the right password changes nothing now
    finally:
        phone.close()
    assert status(engine)["mode"] == "normal"
    result = run_vms("drs", "audit", "--config", str(engine.config), "--customer", "acme",
                     "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    outcomes = [e["outcome"] for e in json.loads(result.stdout)["entries"]]
    assert outcomes.count("wrong password") >= 3 and "locked" in outcomes


def test_the_switch_is_logged_with_its_delay_after_the_last_key(engine: Any) -> None:
    match = engine.wait_stderr(r"switched to drs by phone from \S+ \((\d+\.\d+) s after the last "
                               r"key\)")  # fmt: skip
    assert float(match.group(1)) < 1.0  # the scrypt check and the store write


def test_drs_survives_a_restart_of_the_engine(serve: Any, trunk: Trunk) -> None:
    customers = {"acme": {"formula": "drs", "numbers": [NUMBER], "customer_number": "4711",
                          "drs_password": hash_password("2468")}}  # fmt: skip
    trees = {"acme.yaml": tree(NUMBER, ROUTES).replace("customer: itest", "customer: acme")}
    server = serve(trees, [NUMBER], name="restart", sip=b2bua(trunk.hostport),
                   extra={"customers": customers, "drs": {"service_number": SERVICE}})  # fmt: skip
    result = run_vms("drs", "activate", "--customer", "acme", "--config", str(server.config))
    assert result.returncode == 0, result.stderr
    time.sleep(0.5)  # the engine's watcher polls four times a second
    assert routed_to(server, trunk) == "+3238889999"
    server.kill()
    restarted = serve.restart(server)
    assert routed_to(restarted, trunk) == "+3238889999"
    assert status(restarted)["mode"] == "drs"
