"""An operator's softphone (SIPp) registers with digest authentication from outside the peers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.passwords import hash_password
from engine.sip.digest import ha1
from vmskit import TRUNK, ServeFactory, Server, api_call, b2bua, run_sipp, scenario, tree

pytestmark = pytest.mark.integration

NUMBER = "+3225550800"
# H(anna:itest:secret), as `vms passwd --digest anna itest` prints it.
HA1 = "e9d53d8ae5bb383683e3af8d96a7d943"
TOKEN = "itest:register-secret"


def customers() -> dict[str, object]:
    operator = {"pin": "1234", "groups": {"desk": 1}, "softphone": {"user": "anna", "ha1": HA1}}
    acm = {"groups": {"desk": {}}, "operators": {"anna": operator}}
    return {"itest": {"formula": "classic", "options": ["acm"], "numbers": [NUMBER], "acm": acm,
                      "api_token": hash_password(TOKEN.split(":", 1)[1])}}  # fmt: skip


def api(engine: Server, method: str, path: str, body: Any = None) -> int:
    return api_call(engine, TOKEN, method, path, body)[0]


def start(serve: ServeFactory) -> Server:
    """The engine with customer itest, its softphones ready to register."""
    routes = '  - name: desk\n    do: {forward: "+3225550801"}\n'
    # SIPp sends from loopback, which is not a peer here: REGISTER is open to any address.
    server = serve({"desk.yaml": tree(NUMBER, routes)}, [NUMBER],
                   sip=b2bua(f"{TRUNK[0]}:{TRUNK[1]}", peers=["10.0.0.0/8"]),
                   extra={"customers": customers()})  # fmt: skip
    server.wait_stderr(r"1 softphones may register")
    return server


def test_a_softphone_registers_and_unregisters_and_a_wrong_password_is_refused(
    sipp: str, serve: ServeFactory, tmp_path: Path
) -> None:
    server = start(serve)
    path = scenario(tmp_path, "register_uac.xml", USER="anna", PASSWORD="secret")
    result = run_sipp(sipp, tmp_path, path, server.sip, service="anna")
    assert (result.returncode, result.successful, result.failed) == (0, 1, 0), result.explain()
    server.wait_stderr(r"softphone anna@itest bound sip:anna@127\.0\.0\.1:\d+ from 127\.0\.0\.1")
    server.wait_stderr(r"softphone anna@itest unbound sip:anna@127\.0\.0\.1:\d+")
    wrong = scenario(tmp_path, "register_uac.xml", USER="anna", PASSWORD="guess")
    result = run_sipp(sipp, tmp_path, wrong, server.sip, service="anna")
    assert result.failed == 1, result.explain()
    assert "403" in result.errors, result.explain()
    server.wait_stderr(r"REGISTER from 127\.0\.0\.1: wrong credentials for softphone 'anna' "
                       r"of customer 'itest'")  # fmt: skip
    assert "guess" not in server.stderr() and HA1 not in server.stderr()


def test_softphones_added_or_deleted_through_the_api_take_effect_at_once(
    sipp: str, serve: ServeFactory, tmp_path: Path
) -> None:
    server = start(serve)
    bruno = {"pin": "4321", "groups": {"desk": 1},
             "softphone": {"user": "bruno", "ha1": ha1("bruno", "itest", "pw")}}  # fmt: skip
    assert api(server, "PUT", "acm/operators/bruno", bruno) == 200
    path = scenario(tmp_path, "register_uac.xml", USER="bruno", PASSWORD="pw")
    result = run_sipp(sipp, tmp_path, path, server.sip, service="bruno")
    assert (result.returncode, result.successful, result.failed) == (0, 1, 0), result.explain()
    server.wait_stderr(r"softphone bruno@itest bound sip:bruno@127\.0\.0\.1:\d+")
    anna = {"pin": "1234", "groups": {"desk": 1},
            "softphone": {"user": "anna", "ha1": ha1("anna", "itest", "new")}}  # fmt: skip
    assert api(server, "PUT", "acm/operators/anna", anna) == 200
    path = scenario(tmp_path, "register_uac.xml", USER="anna", PASSWORD="secret")
    result = run_sipp(sipp, tmp_path, path, server.sip, service="anna")
    assert result.failed == 1 and "403" in result.errors, result.explain()  # the old password
    assert api(server, "DELETE", "acm/operators/anna") == 200
    path = scenario(tmp_path, "register_uac.xml", USER="anna", PASSWORD="new")
    result = run_sipp(sipp, tmp_path, path, server.sip, service="anna")
    # No longer an account: challenged as an unknown user (SHA-256 first, which SIPp cannot do).
    assert result.returncode != 0 and result.successful == 0, result.explain()
    assert "anna@itest bound" not in server.stderr()
