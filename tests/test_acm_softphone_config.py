"""``customers.ID.acm.operators.NAME.softphone``: digest accounts of operators' softphones."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from test_acm_config import problems, write

from engine.cli import main
from engine.config import load_config
from engine.sip.digest import ha1

MD5 = ha1("anna", "acme", "secret")
SHA = ha1("anna", "acme", "secret", "SHA-256")


def acm(operators: str) -> str:
    return f"""\
      groups: {{sales: {{}}}}
      operators:
{operators}"""


def test_an_operator_may_have_only_a_softphone(tmp_path: Path) -> None:
    text = acm(f'        anna: {{pin: "1234", groups: {{sales: 3}}, softphone: {{user: anna, '
               f'ha1: "{MD5.upper()}", ha1_sha256: "{SHA}"}}}}\n')  # fmt: skip
    config = load_config(write(tmp_path, text))
    anna = config.customers["acme"].acm.operators["anna"]  # type: ignore[union-attr]
    assert anna.numbers == ()
    assert anna.softphone is not None and anna.softphone.user == "anna"
    assert dict(anna.softphone.ha1) == {"MD5": MD5, "SHA-256": SHA}
    assert MD5 not in repr(anna)  # HA1 is password-equivalent: never printed


def test_an_operator_with_neither_numbers_nor_softphone(tmp_path: Path) -> None:
    found = problems(tmp_path, acm('        anna: {pin: "1234", groups: {sales: 3}}\n'))
    assert found == ["F:10:15: customers.acme.acm.operators.anna: give the operator numbers to "
                     "be called on, a softphone that registers with the engine, or both"]


def test_softphone_problems_each_at_its_place(tmp_path: Path) -> None:
    text = acm('        anna: {pin: "1234", groups: {sales: 3}, softphone: {user: "an na", '
               'ha1: "abc"}}\n'
               '        bert: {pin: "1234", groups: {sales: 3}, softphone: {user: bert}}\n'
               '        carla: {pin: "1234", groups: {sales: 3}, softphone: {ha1: "0"}}\n')
    found = problems(tmp_path, text)
    assert found[0].startswith("F:10:67: customers.acme.acm.operators.anna.softphone.user 'an na'")
    assert found[1].startswith("F:10:81: customers.acme.acm.operators.anna.softphone.ha1 must be "
                               "32 hexadecimal digits")  # fmt: skip
    assert found[2] == ("F:11:60: customers.acme.acm.operators.bert.softphone needs ha1 or "
                        "ha1_sha256 (from `vms passwd --digest USER CUSTOMER`)")  # fmt: skip
    assert found[3] == ("F:12:61: customers.acme.acm.operators.carla.softphone lacks the "
                        "required key 'user'")  # fmt: skip
    assert len(found) == 4


def test_softphone_users_are_unique_across_customers(tmp_path: Path) -> None:
    phone = f'softphone: {{user: anna, ha1: "{MD5}"}}'
    text = acm(f'        anna: {{pin: "1234", groups: {{sales: 3}}, {phone}}}\n') + f"""\
  other:
    formula: classic
    options: [acm]
    numbers: ["+3225551299"]
    acm:
      groups: {{sales: {{}}}}
      operators:
        anne: {{pin: "1234", groups: {{sales: 3}}, {phone}}}
"""
    assert problems(tmp_path, text) == [
        "F:11:3: customer 'other': softphone user 'anna' is taken by another softphone of "
        "customer 'acme' (users are unique across customers)"]


def test_vms_passwd_digest_prints_what_the_softphone_takes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("secret\n"))
    assert main(["passwd", "--digest", "anna", "acme"]) == 0
    assert capsys.readouterr().out == f"ha1: {MD5}\nha1_sha256: {SHA}\n"
