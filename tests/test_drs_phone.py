"""DRS by phone in the call controller: keyed entries, password, lockout, switching (fake clock)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import succeed

from b2bkit import FakePlane, FakeStream, Harness, only, responses, tag_of
from engine.calls.drs import DrsService
from engine.calls.media import MediaServices
from engine.config import DRS_PROMPT_DIR, MediaSettings
from engine.modes.store import ModeStore
from engine.passwords import hash_password, verify_password
from engine.services import drs_prompt_paths
from media.prompts import load_prompt

SERVICE = "+3278150000"
TREE = """\
version: 1
customer: acme
numbers: ["+3225551234"]
timezone: Europe/Brussels
routes:
  - name: disaster
    when: {mode: drs}
    do: {forward: "+3238889999"}
  - name: usual
    do: {forward: "+3225550001"}
"""
HASH = hash_password("1234")


class Customer:
    def __init__(self, cid: str, password: str | None) -> None:
        self.id = cid
        self.drs_password = password


class Drs:
    """The harness with a DRS service on a real mode store in tmp_path."""

    def __init__(self, tmp_path: Path, entitled: Callable[[Any], str | None] = lambda c: None):
        (tmp_path / "acme.yaml").write_text(TREE)
        self.h = Harness(tmp_path)
        self.plane = FakePlane()
        prompts = {str(p): load_prompt(p) for p in DRS_PROMPT_DIR.glob("*.wav")}
        self.h.ctx.media = MediaServices(self.plane, prompts, MediaSettings(),  # type: ignore[arg-type]
                                         tmp_path / "recordings")  # fmt: skip
        self.store = ModeStore(tmp_path / "modes.sqlite", clock=self.h.clock.seconds)
        self.store.open()
        self.changes: list[Any] = []
        config = type("C", (), {"drs_prompts": {p.stem: p for p in DRS_PROMPT_DIR.glob("*.wav")}})
        self.h.ctx.drs = DrsService(
            service_number=SERVICE, prompts=drs_prompt_paths(config), max_days=31,  # type: ignore[arg-type]
            lockout=(3, 15.0), store=self.store,
            customers={"4711": Customer("acme", HASH), "5000": Customer("initech", None)},
            verify=lambda password, stored: succeed(verify_password(password, stored)),
            entitled=entitled, on_change=self.changes.append,
        )  # fmt: skip

    def call(self, caller: str = "+3226001122") -> FakeStream:
        self.h.caller_sends(self.h.invite(SERVICE, caller=caller, branch=f"z9hG4bK-{caller}-"
                                          f"{len(self.plane.streams)}"))  # fmt: skip
        ok = next(r for r in responses(self.h) if r.status == 200)
        self.tag = tag_of(ok)
        return self.plane.streams[-1]

    def key(self, stream: FakeStream, keys: str, source: str = "rfc4733") -> None:
        assert stream.on_digit is not None
        for key in keys:
            self.h.clock.advance(0.2)
            stream.on_digit(key, source)

    def prompt(self, stream: FakeStream) -> str:
        """Which DRS prompt plays now, by its file name."""
        assert stream.playing is not None
        for path in DRS_PROMPT_DIR.glob("*.wav"):
            if tuple(stream.playing) == load_prompt(path).frames("PCMU"):
                return path.stem
        raise AssertionError("not a DRS prompt")


@pytest.fixture
def drs(tmp_path: Path) -> Drs:
    return Drs(tmp_path)


def test_the_right_password_activates_drs_for_max_days(drs: Drs) -> None:
    stream = drs.call()
    assert drs.prompt(stream) == "customer_number"
    drs.key(stream, "4711#")  # barge-in: the prompt stops at the first key
    assert drs.prompt(stream) == "password"
    drs.key(stream, "1234#", source="inband")
    state = drs.store.get("acme")
    assert state.mode == "drs"
    assert state.until == pytest.approx(drs.h.clock.seconds() + 31 * 86400)
    assert state.by == "phone +3226001122"
    assert [c.new.mode for c in drs.changes] == ["drs"]
    assert drs.prompt(stream) == "activated"
    stream.finish_playing()
    assert only(drs.h.to_caller(), "BYE")
    log = drs.store.audit_log("acme")
    assert [e.action for e in log][-1] == "drs-activate"


def test_type_ahead_both_entries_keyed_during_the_first_prompt(drs: Drs) -> None:
    drs.h.ctx.media.settings = MediaSettings(barge_in=False)  # type: ignore[union-attr]
    stream = drs.call()
    drs.key(stream, "4711#1234#")
    assert drs.prompt(stream) == "customer_number"  # no barge-in: it plays on
    stream.finish_playing()  # the customer number was typed ahead
    assert drs.prompt(stream) == "password"  # without barge-in each prompt plays out
    stream.finish_playing()
    assert drs.store.get("acme").mode == "drs"


def test_when_active_the_caller_can_switch_it_off_with_1(drs: Drs) -> None:
    drs.store.set_mode("acme", "drs", drs.h.clock.seconds() + 3600, "cli", "cli")
    stream = drs.call()
    drs.key(stream, "4711#1234#")
    assert drs.prompt(stream) == "already_active"
    drs.key(stream, "1")
    assert drs.store.get("acme").mode == "normal"
    assert drs.prompt(stream) == "deactivated"


def test_when_active_another_key_leaves_it_on(drs: Drs) -> None:
    drs.store.set_mode("acme", "drs", drs.h.clock.seconds() + 3600, "cli", "cli")
    stream = drs.call()
    drs.key(stream, "4711#1234#9")
    assert drs.store.get("acme").mode == "drs"
    assert drs.prompt(stream) == "goodbye"


def test_three_wrong_passwords_lock_the_phone_path_whatever_comes_next(drs: Drs) -> None:
    stream = drs.call()
    for attempt in range(2):
        drs.key(stream, "4711#9999#")
        assert drs.prompt(stream) == "wrong_password", attempt
        stream.finish_playing()
        assert drs.prompt(stream) == "customer_number"
    drs.key(stream, "4711#9999#")
    assert drs.prompt(stream) == "locked"
    stream.finish_playing()
    other = drs.call(caller="+3226009999")  # another phone: the customer is locked
    drs.key(other, "4711#1234#")
    assert drs.prompt(other) == "locked"
    assert drs.store.get("acme").mode == "normal"
    drs.h.clock.advance(15 * 60 + 1)
    again = drs.call(caller="+3226008888")
    drs.key(again, "4711#1234#")
    assert drs.store.get("acme").mode == "drs"  # the lock is over
    outcomes = [e.outcome for e in drs.store.audit_log("acme") if e.action == "drs-login"]
    assert outcomes.count("wrong password") == 3 and "locked" in outcomes


def test_an_unknown_customer_number_is_answered_like_a_wrong_password(drs: Drs) -> None:
    stream = drs.call()
    drs.key(stream, "0000#1234#")
    assert drs.prompt(stream) == "wrong_password"
    (entry,) = [e for e in drs.store.audit_log() if e.action == "drs-login"]
    assert entry.customer is None and entry.outcome == "wrong password"


def test_a_customer_without_the_service_is_refused_and_audited(tmp_path: Path) -> None:
    drs = Drs(tmp_path, entitled=lambda c: f"customer '{c.id}' has the outbound formula")
    stream = drs.call()
    drs.key(stream, "4711#1234#")
    assert drs.prompt(stream) == "goodbye"
    assert drs.store.get("acme").mode == "normal"
    assert drs.store.audit_log("acme")[-1].outcome == "not entitled"


def test_silence_ends_the_call(drs: Drs) -> None:
    stream = drs.call()
    stream.finish_playing()
    drs.h.clock.advance(10.5)
    assert only(drs.h.to_caller(), "BYE")


def test_star_starts_an_entry_over(drs: Drs) -> None:
    stream = drs.call()
    drs.key(stream, "47*4711#1234#")
    assert drs.store.get("acme").mode == "drs"


def test_once_drs_is_on_the_trees_drs_rule_routes_the_calls(drs: Drs) -> None:
    drs.h.router.mode_of = lambda customer: drs.store.get(customer).mode
    drs.store.set_mode("acme", "drs", drs.h.clock.seconds() + 60, "cli", "cli")
    drs.h.caller_sends(drs.h.invite("+3225551234", branch="z9hG4bK-routed"))
    invite = only(drs.h.to_trunk(), "INVITE")
    assert invite.uri.startswith("sip:+3238889999@")


def test_parallel_calls_get_no_more_tries_than_the_limit(tmp_path: Path) -> None:
    from twisted.internet.defer import Deferred

    drs = Drs(tmp_path)
    pending: list[tuple[Deferred[bool], bool]] = []

    def slow(password: str, stored: str) -> Deferred[bool]:
        d: Deferred[bool] = Deferred()
        pending.append((d, verify_password(password, stored)))
        return d

    drs.h.ctx.drs.verify = slow  # type: ignore[union-attr]
    calls = [drs.call(caller=f"+322600{n:04d}") for n in range(5)]
    for n, stream in enumerate(calls):
        drs.key(stream, "4711#" + ("1234#" if n == 4 else f"99{n}#"))
    assert len(pending) == 3  # the 4th and 5th met the lock before any check finished
    assert [drs.prompt(s) for s in calls[3:]] == ["locked", "locked"]
    for d, result in pending:
        d.callback(result)
    assert drs.store.get("acme").mode == "normal"  # the right password came too late


def test_an_unknown_customer_number_locks_like_a_known_one(drs: Drs) -> None:
    for n in range(3):
        stream = drs.call(caller=f"+322600{n:04d}")  # three phones: no per-caller lock
        drs.key(stream, "0000#1234#")
    stream = drs.call(caller="+3226009999")
    drs.key(stream, "0000#1234#")
    assert drs.prompt(stream) == "locked"
    details = {e.detail for e in drs.store.audit_log() if e.outcome == "wrong password"}
    assert details == {"customer number 0000"}


def test_callers_who_withhold_their_number_share_one_count(drs: Drs) -> None:
    for n in range(3):
        withheld = drs.h.invite(SERVICE, branch=f"z9hG4bK-anon-{n}", extra="Privacy: id\r\n")
        drs.h.caller_sends(withheld)
        stream = drs.plane.streams[-1]
        drs.key(stream, f"{5000 + n}#1234#")  # a different customer number each time
    drs.h.caller_sends(drs.h.invite(SERVICE, branch="z9hG4bK-anon-x", extra="Privacy: id\r\n"))
    stream = drs.plane.streams[-1]
    drs.key(stream, "4711#1234#")
    assert drs.prompt(stream) == "locked"


def test_a_hang_up_during_the_check_is_counted_and_audited(tmp_path: Path) -> None:
    from twisted.internet.defer import Deferred

    drs = Drs(tmp_path)
    held: Deferred[bool] = Deferred()
    drs.h.ctx.drs.verify = lambda password, stored: held  # type: ignore[union-attr]
    stream = drs.call()
    drs.key(stream, "4711#9999#")
    drs.h.caller_sends(drs.h.caller_in_dialog("BYE", drs.tag))
    held.callback(False)
    (entry,) = [e for e in drs.store.audit_log("acme") if e.action == "drs-login"]
    assert entry.outcome == "wrong password"
    assert drs.store.locked_until("acme", None, 1, 15) is not None  # the failure counted


def test_three_wrong_passwords_in_one_call_end_it(drs: Drs) -> None:
    drs.h.ctx.drs.lockout = (10, 15.0)  # type: ignore[union-attr]
    stream = drs.call()
    for _ in range(2):
        drs.key(stream, "4711#9999#")
        stream.finish_playing()
    drs.key(stream, "4711#9999#")
    assert drs.prompt(stream) == "goodbye"
