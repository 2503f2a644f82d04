"""Operators log in, out and take breaks by phone (a feature number): keys, PIN, lockout, audit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from twisted.internet.defer import Deferred, ensureDeferred, succeed

from b2bkit import FakePlane, FakeStream, Harness, responses, tag_of
from engine.acm.command import act
from engine.acm.desk import QueueDesk
from engine.acm.model import AcmSettings, Group, Operator
from engine.calls.media import MediaServices
from engine.calls.operator_phone import PHONE_PROMPT_DIR, PHONE_PROMPTS, OperatorPhone
from engine.calls.queue import AcmServices
from engine.config import MediaSettings
from engine.failures import FailureWindow
from engine.sip.message import Request
from media.prompts import load_prompt

C = "acme"
FEATURE = "+3225551299"
TREE = f"""\
version: 1
customer: {C}
numbers: ["+3225551234"]
routes:
  - do: {{forward: "+3225550001"}}
"""
ACM = AcmSettings(
    MappingProxyType({"sales": Group("sales")}),
    MappingProxyType({
        "anna": Operator("anna", ("+32470001101",), "1234", MappingProxyType({"sales": 3}),
                         id="11"),
    }),
)  # fmt: skip


class Phone:
    """The harness with the operator phone service on the in-process state."""

    def __init__(self, tmp_path: Path) -> None:
        (tmp_path / "acme.yaml").write_text(TREE)
        self.h = Harness(tmp_path)
        self.plane = FakePlane()
        paths = {key: str(PHONE_PROMPT_DIR / f"{key}.wav") for key in PHONE_PROMPTS}
        prompts = {path: load_prompt(Path(path)) for path in paths.values()}
        self.h.ctx.media = MediaServices(self.plane, prompts, MediaSettings(),  # type: ignore[arg-type]
                                         tmp_path / "recordings")  # fmt: skip
        self.audit: list[tuple[str, ...]] = []
        self.pins: list[str] = []

        def verify(customer: str, operator: str, digits: str) -> Any:
            self.pins.append(digits)
            found = ACM.operators.get(operator)
            return succeed(found is not None and found.pin == digits)

        def change(customer: str, operator: Operator, target: str) -> Any:
            reason = "phone" if target == "break" else None
            return ensureDeferred(act(self.h.state, self.h.clock, customer, ACM, [operator],
                                      target, reason))  # fmt: skip

        phone = OperatorPhone({FEATURE: C}, paths, lambda c: ACM if c == C else None, verify,
                              change, lambda *a: self.audit.append(a),
                              FailureWindow(self.h.clock, limit=5, window=900))  # fmt: skip
        desk = QueueDesk(self.h.clock, self.h.state, lambda c: ACM)
        self.h.ctx.acm = AcmServices(desk, {}, phone)

    def call(self, caller: str = "+3226001122") -> FakeStream:
        n = len(self.plane.streams)
        self.h.caller_sends(self.h.invite(FEATURE, caller=caller, branch=f"z9hG4bK-p{n}"))
        ok = next(r for r in responses(self.h) if r.status == 200)
        self.tag = tag_of(ok)
        return self.plane.streams[-1]

    def key(self, stream: FakeStream, keys: str) -> None:
        assert stream.on_digit is not None
        for key in keys:
            self.h.clock.advance(0.2)
            stream.on_digit(key, "rfc4733")

    def prompt(self, stream: FakeStream) -> str:
        assert stream.playing is not None
        for key in PHONE_PROMPTS:
            if tuple(stream.playing) == load_prompt(PHONE_PROMPT_DIR / f"{key}.wav").frames("PCMU"):
                return key
        raise AssertionError("not an operator phone prompt")

    def state(self) -> str:
        infos = self.h.state.operators(C, "sales").result  # type: ignore[attr-defined]
        return {i.operator: i.state for i in infos}.get("anna", "logged_out")

    def hung_up(self) -> bool:
        return any(isinstance(m, Request) and m.method == "BYE" for m in self.h.to_caller())


@pytest.fixture
def phone(tmp_path: Path) -> Iterator[Phone]:
    yield Phone(tmp_path)


def test_log_in_break_and_log_out_by_phone(phone: Phone) -> None:
    steps = [("1", "available", "logged_in"), ("3", "break", "on_break"),
             ("4", "available", "logged_in"), ("2", "logged_out", "logged_out")]  # fmt: skip
    for key, state, said in steps:
        stream = phone.call()
        assert phone.prompt(stream) == "operator_id"
        phone.key(stream, "11#")
        assert phone.prompt(stream) == "pin"
        phone.key(stream, "1234#")
        assert phone.prompt(stream) == "choose"
        phone.key(stream, key)
        assert phone.state() == state
        assert phone.prompt(stream) == said
        stream.finish_playing()
        assert phone.prompt(stream) == "goodbye"
        stream.finish_playing()
        assert phone.hung_up()
    actions = [(a[2], a[3]) for a in phone.audit]
    login = ("operator-login", "ok")  # every attempt is audited, the right ones too
    assert actions == [login, ("operator-available", "ok"), login, ("operator-break", "ok"),
                       login, ("operator-available", "ok"), login,
                       ("operator-logged_out", "ok")]  # fmt: skip
    assert all("1234" not in " ".join(a) for a in phone.audit)  # the PIN is never written down


def test_an_operator_in_a_call_is_refused(phone: Phone) -> None:
    phone.h.state.set_operator(C, "anna", "available", {"sales": 3}, phone.h.clock.seconds())
    assert phone.h.state.reserve(C, ["anna"], "a-call", 60).result == "anna"  # type: ignore[attr-defined]
    stream = phone.call()
    phone.key(stream, "11#1234#2")
    assert phone.prompt(stream) == "refused"
    assert phone.state() == "reserved"


def test_wrong_pins_end_the_call_and_then_lock_the_operator_number(phone: Phone) -> None:
    stream = phone.call()
    for _ in range(3):
        phone.key(stream, "11#0000#")
        assert phone.prompt(stream) == "wrong"
        stream.finish_playing()
    assert phone.prompt(stream) == "goodbye"  # three tries in one call
    stream.finish_playing()
    assert phone.hung_up()
    second = phone.call(caller="+3226009999")  # another phone, the same operator number
    phone.key(second, "11#0000#")
    second.finish_playing()
    phone.key(second, "11#0000#")  # the fifth wrong try for operator 11
    second.finish_playing()
    phone.key(second, "11#")  # locked: no PIN is asked for, nothing is checked
    assert phone.prompt(second) == "locked"
    assert len(phone.pins) == 5
    assert phone.audit[-1][3] == "locked"
    phone.h.clock.advance(900)
    third = phone.call(caller="+3226008888")
    phone.key(third, "11#1234#1")
    assert phone.state() == "available"


def test_an_unknown_operator_number_gets_the_same_answer_as_a_wrong_pin(phone: Phone) -> None:
    stream = phone.call()
    phone.key(stream, "99#1234#")
    assert phone.prompt(stream) == "wrong"
    assert phone.pins == ["1234"]  # checked all the same: the time does not tell
    assert [a[3] for a in phone.audit] == ["refused"]


def test_an_attempt_is_counted_and_audited_even_when_the_caller_hangs_up_meanwhile(
    phone: Phone,
) -> None:
    checks: list[Any] = []
    phone.h.ctx.acm.phone.verify = lambda c, o, d: checks.append(Deferred()) or checks[-1]  # type: ignore[union-attr]
    stream = phone.call()
    phone.key(stream, "11#0000#")
    assert phone.h.ctx.acm.phone.pending  # type: ignore[union-attr]
    phone.h.caller_sends(phone.h.caller_in_dialog("BYE", phone.tag))
    checks[0].callback(False)  # the scrypt thread answers after the caller left
    assert [a[3] for a in phone.audit] == ["refused"]
    assert phone.h.ctx.acm.phone.failures.blocked("caller +3226001122", 4) is not None  # type: ignore[union-attr]
    assert not phone.h.ctx.acm.phone.pending  # type: ignore[union-attr]
