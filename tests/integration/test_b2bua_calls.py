"""B2BUA mode against real SIPp peers: the call flows of one engine and one trunk.

One ``vms serve --mode b2bua`` serves the module; its ``sip.trunk`` is a SIPp
UAS running ``tests/sipp/b2bua_trunk.xml``, where the last digit of the
destination says how the callee behaves (1 busy, 2 rings for ever, 3
answers, 4 503, 5 404, 6 answers then hangs up, 7 answers then re-INVITEs,
8 sends a reliable 183 first).
Callers are SIPp UACs (``tests/sipp/b2bua_*uac.xml``). Each test judges
what the caller received (its SIPp message trace), what reached the trunk
(the trunk's trace, by the Call-ID of each outgoing leg as the call detail
records give it) and the records themselves (``vms cdr export``), polled
with deadlines: the records are group-committed within about 50 ms.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vmskit import (
    ServeFactory,
    Server,
    SippRun,
    SippServer,
    Traced,
    b2bua,
    caller_call_ids,
    requests,
    run_sipp,
    scenario,
    start_sipp,
    statuses,
    tree,
    wait_calls,
    wait_legs,
)

pytestmark = pytest.mark.integration

CALLER = "+3227001122"
CHAIN, PLAIN, CALLEE_HANGS_UP, REOFFER, RINGING = (
    "+3225551001", "+3225551002", "+3225551003", "+3225551004", "+3225551005")  # fmt: skip
DOWN, DOWN_BARE, UNKNOWN_BARE, CAPPED, CAPPED_BARE = (
    "+3225551006", "+3225551007", "+3225551008", "+3225551009", "+3225551010")  # fmt: skip
EARLY = "+3225551011"
NUMBERS = [CHAIN, PLAIN, CALLEE_HANGS_UP, REOFFER, RINGING, DOWN, DOWN_BARE, UNKNOWN_BARE,
           CAPPED, CAPPED_BARE, EARLY]  # fmt: skip
#: Destinations (the trunk's behaviour is the last digit).
BUSY, NEVER_ANSWERS, ANSWERS = "+3225550001", "+3225550002", "+32475000003"
RING_TIMEOUT = 2


ROUTES = f"""\
  - name: chain
    when: {{called: "{CHAIN}"}}
    do:
      forward: "{BUSY}"
      timeout: 10
      on_busy:
        forward: "{NEVER_ANSWERS}"
        timeout: {RING_TIMEOUT}
        on_no_answer: {{forward: "{ANSWERS}"}}
  - name: plain
    when: {{called: "{PLAIN}"}}
    do: {{forward: "+32475000013"}}
  - name: callee-hangs-up
    when: {{called: "{CALLEE_HANGS_UP}"}}
    do: {{forward: "+32475000016"}}
  - name: reoffer
    when: {{called: "{REOFFER}"}}
    do: {{forward: "+32475000017"}}
  - name: ringing
    when: {{called: "{RINGING}"}}
    do: {{forward: "+3225550012", timeout: 30}}
  - name: down
    when: {{called: "{DOWN}"}}
    do:
      forward: "+3225550014"
      on_unreachable: {{forward: "+32475000023"}}
  - name: down-bare
    when: {{called: "{DOWN_BARE}"}}
    do: {{forward: "+3225550024"}}
  - name: unknown-bare
    when: {{called: "{UNKNOWN_BARE}"}}
    do: {{forward: "+3225550015"}}
  - name: capped
    when: {{called: "{CAPPED}"}}
    do:
      forward: "+32475000033"
      max_calls: 1
      on_overflow: {{forward: "+32475000043"}}
  - name: capped-bare
    when: {{called: "{CAPPED_BARE}"}}
    do: {{forward: "+32475000053", max_calls: 1}}
  - name: early
    when: {{called: "{EARLY}"}}
    do: {{forward: "+32475000018"}}
"""


@pytest.fixture(scope="module")
def trunk(sipp_peers_module: Any) -> SippServer:
    return sipp_peers_module("b2bua_trunk.xml")


@pytest.fixture(scope="module")
def engine(serve_module: ServeFactory, trunk: SippServer) -> Server:
    return serve_module({"calls.yaml": tree(NUMBERS, ROUTES)}, NUMBERS, name="b2bua",
                        sip=b2bua(trunk.hostport))  # fmt: skip


def call(sipp: str, work: Path, engine: Server, name: str, number: str, *, pause_ms: int = 200,
         transport: str = "u1", **placeholders: str) -> tuple[list[Traced], str]:  # fmt: skip
    """One SIPp call (``tests/sipp/NAME``) that must succeed; its messages and its Call-ID."""
    result = run_sipp(sipp, work, scenario(work, name, **placeholders), engine.sip,
                      service=number, keys={"caller": CALLER}, transport=transport,
                      extra=("-d", str(pause_ms)), trace=True)  # fmt: skip
    assert result.returncode == 0, result.explain()
    assert (result.successful, result.failed) == (1, 0), result.explain()
    (call_id,) = caller_call_ids(result.messages)
    return result.messages, call_id


def trunk_leg(trunk: SippServer, leg: dict[str, Any]) -> list[Traced]:
    """What the trunk saw of one outgoing leg (its records' SIP Call-ID)."""
    return trunk.dialogue(leg["sip_call_id"])


def one_final(messages: list[Traced]) -> Traced:
    """The final response to the INVITE the caller got (retransmissions are the same bytes)."""
    finals = [m for m in messages if not m.sent and m.cseq_method == "INVITE"
              and (m.message.status or 0) >= 200]  # fmt: skip
    assert finals and {m.message.raw for m in finals} == {finals[0].message.raw}, finals
    return finals[0]


def test_busy_then_no_answer_then_answer_in_one_call(
    sipp: str, engine: Server, trunk: SippServer, tmp_path: Path
) -> None:
    messages, call_id = call(sipp, tmp_path, engine, "b2bua_uac.xml", CHAIN, pause_ms=1000)
    got = statuses(messages)
    assert got[0] == 100 and got[-1] == 200, got
    assert set(got) <= {100, 180, 183, 200} and {180, 183} & set(got), got  # never 486 nor 487
    assert one_final(messages).message.status == 200
    legs = wait_legs(engine.config, call_id, 4)
    shape = [(r["leg"], r["destination"], r["outcome"], r["action_path"]) for r in legs]
    assert shape == [
        (0, None, "answered", ""),
        (1, BUSY, "busy", ""),
        (2, NEVER_ANSWERS, "no_answer", "on_busy"),
        (3, ANSWERS, "answered", "on_busy.on_no_answer"),
    ]
    assert legs[1]["sip_code"] == 486
    assert [r["billed_to"] for r in legs] == [None, "itest", "itest", "itest"]
    assert all(r["route"] == "chain" and r["caller"] == CALLER and r["called"] == CHAIN
               for r in legs)  # fmt: skip
    assert legs[0]["duration"] == pytest.approx(1.0, abs=0.5)
    assert legs[3]["duration"] == pytest.approx(1.0, abs=0.5)
    assert legs[1]["duration"] == legs[2]["duration"] == 0
    # The trunk: a 486; a ringing leg CANCELled when its timeout expired; then the answer,
    # to which the caller's ACK and BYE crossed.
    busy, ringing, answered = (trunk_leg(trunk, r) for r in legs[1:])
    assert requests(busy) == ["INVITE", "ACK"] and statuses(busy, sent=True) == [486]
    assert requests(ringing) == ["INVITE", "CANCEL", "ACK"]
    assert statuses(ringing, sent=True) == [180, 487]
    invite_at, cancel_at = (m.at for m in ringing if m.method in ("INVITE", "CANCEL"))
    assert RING_TIMEOUT - 0.2 <= cancel_at - invite_at <= RING_TIMEOUT + 2.0
    assert "reason=user-busy" in (ringing[0].message.get("diversion") or "")
    assert requests(answered) == ["INVITE", "ACK", "BYE"]
    assert "reason=no-answer" in (answered[0].message.get("diversion") or "")
    assert b"s=caller offer" in answered[0].message.body
    caller_ack = next(m for m in messages if m.sent and m.method == "ACK")
    trunk_ack = next(m for m in answered if m.method == "ACK")
    assert trunk_ack.at >= caller_ack.at - 0.01  # relayed, not sent before the caller's


def test_bye_from_the_caller(sipp: str, engine: Server, trunk: SippServer, tmp_path: Path) -> None:
    messages, call_id = call(sipp, tmp_path, engine, "b2bua_uac.xml", PLAIN, pause_ms=500)
    assert statuses(messages, "BYE") == [200]
    legs = wait_legs(engine.config, call_id, 2)
    assert [r["outcome"] for r in legs] == ["answered", "answered"]
    callee = trunk_leg(trunk, legs[1])
    assert requests(callee) == ["INVITE", "ACK", "BYE"] and statuses(callee, "BYE", True) == [200]
    assert legs[1]["duration"] == pytest.approx(0.5, abs=0.4)


def test_bye_from_the_callee(sipp: str, engine: Server, trunk: SippServer, tmp_path: Path) -> None:
    messages, call_id = call(sipp, tmp_path, engine, "b2bua_callee_bye_uac.xml", CALLEE_HANGS_UP,
                              ANSWERED_BY="s=trunk answer")
    assert "BYE" in requests(messages)  # the caller got the BYE and answered it 200
    legs = wait_legs(engine.config, call_id, 2)
    assert [r["outcome"] for r in legs] == ["answered", "answered"]
    callee = trunk_leg(trunk, legs[1])
    assert requests(callee, sent=True) == ["BYE"] and statuses(callee, "BYE") == [200]
    assert legs[1]["duration"] == pytest.approx(0.8, abs=0.5)  # the trunk hangs up after 800 ms


def test_re_invite_from_the_caller_passes_through(
    sipp: str, engine: Server, trunk: SippServer, tmp_path: Path
) -> None:
    messages, call_id = call(sipp, tmp_path, engine, "b2bua_reinvite_uac.xml", PLAIN)
    reanswer = [m for m in messages if not m.sent and m.cseq_method == "INVITE"
                and m.message.status == 200 and b"s=trunk re-answer" in m.message.body]  # fmt: skip
    assert reanswer, "the caller did not get the callee's answer to its re-INVITE"
    legs = wait_legs(engine.config, call_id, 2)
    callee = trunk_leg(trunk, legs[1])
    assert requests(callee) == ["INVITE", "ACK", "INVITE", "ACK", "BYE"]
    reinvite = [m for m in callee if m.method == "INVITE"][1]
    assert b"s=caller re-offer" in reinvite.message.body and b"a=sendonly" in reinvite.message.body
    assert [r["outcome"] for r in legs] == ["answered", "answered"]


def test_re_invite_from_the_callee_passes_through(
    sipp: str, engine: Server, trunk: SippServer, tmp_path: Path
) -> None:
    # The caller's scenario checks the re-INVITE carries the callee's SDP.
    messages, call_id = call(sipp, tmp_path, engine, "b2bua_reinvited_uac.xml", REOFFER)
    assert requests(messages) == ["INVITE", "ACK"]
    legs = wait_legs(engine.config, call_id, 2)
    callee = trunk_leg(trunk, legs[1])
    assert requests(callee, sent=True) == ["INVITE", "ACK"]  # its re-INVITE and the ACK
    answer = [m for m in callee if not m.sent and m.cseq_method == "INVITE"
              and m.message.status == 200]  # fmt: skip
    assert answer and b"s=caller re-answer" in answer[0].message.body
    assert [r["outcome"] for r in legs] == ["answered", "answered"]


def test_a_late_offer_re_invite_gets_the_callers_answer_to_the_callee(
    sipp: str, engine: Server, trunk: SippServer, tmp_path: Path
) -> None:
    # The caller re-INVITEs without SDP, gets the callee's offer in the 200 (its scenario
    # checks), and answers in its ACK, which must reach the callee (RFC 3264 §5, RFC 3261
    # §13.2.2.4): the engine's ACK to the callee waits for the caller's. (Fixed in 3e88e8b.)
    _, call_id = call(sipp, tmp_path, engine, "b2bua_reinvite_late_uac.xml", PLAIN)
    legs = wait_legs(engine.config, call_id, 2)
    callee = trunk_leg(trunk, legs[1])
    assert requests(callee) == ["INVITE", "ACK", "INVITE", "ACK", "BYE"]
    reinvite, ack = [m for m in callee if m.method in ("INVITE", "ACK")
                     and m.message.get("cseq") in ("2 INVITE", "2 ACK")]  # fmt: skip
    assert reinvite.message.body == b""
    assert b"s=caller late answer" in ack.message.body


def test_reliable_provisionals_from_the_trunk_are_pracked(
    sipp: str, engine: Server, trunk: SippServer, tmp_path: Path
) -> None:
    messages, call_id = call(sipp, tmp_path, engine, "b2bua_uac.xml", EARLY)
    early = [m for m in messages if m.message.status == 183]
    assert early and b"s=trunk early" in early[0].message.body  # early media reaches the caller
    assert "100rel" not in (early[0].message.get("require") or "")  # the caller did not ask
    legs = wait_legs(engine.config, call_id, 2)
    callee = trunk_leg(trunk, legs[1])
    assert requests(callee) == ["INVITE", "PRACK", "ACK", "BYE"]
    prack = next(m for m in callee if m.method == "PRACK")
    assert prack.message.get("rack") == "1 1 INVITE"
    assert statuses(callee, "PRACK", sent=True) == [200]
    assert [r["outcome"] for r in legs] == ["answered", "answered"]


def test_caller_cancel_during_ringing(
    sipp: str, engine: Server, trunk: SippServer, tmp_path: Path
) -> None:
    messages, call_id = call(sipp, tmp_path, engine, "b2bua_cancel_uac.xml", RINGING)
    assert statuses(messages) == [100, 180, 487] or statuses(messages) == [180, 487]
    assert statuses(messages, "CANCEL") == [200]
    legs = wait_legs(engine.config, call_id, 2)
    assert [r["outcome"] for r in legs] == ["cancelled", "cancelled"]
    callee = trunk_leg(trunk, legs[1])
    assert requests(callee) == ["INVITE", "CANCEL", "ACK"]
    assert statuses(callee, sent=True) == [180, 487]


def test_503_from_the_trunk_follows_on_unreachable(
    sipp: str, engine: Server, trunk: SippServer, tmp_path: Path
) -> None:
    _, call_id = call(sipp, tmp_path, engine, "b2bua_uac.xml", DOWN)
    legs = wait_legs(engine.config, call_id, 3)
    shape = [(r["destination"], r["outcome"], r["action_path"], r["sip_code"]) for r in legs]
    assert shape == [
        (None, "answered", "", 200),
        ("+3225550014", "unreachable", "", 503),
        ("+32475000023", "answered", "on_unreachable", 200),
    ]
    assert statuses(trunk_leg(trunk, legs[1]), sent=True) == [503]


@pytest.mark.parametrize(
    ("number", "status", "reason", "outcome"),
    [(DOWN_BARE, 503, "Destination Unreachable", "unreachable"),
     (UNKNOWN_BARE, 404, "Not Found", "unreachable")],
)  # fmt: skip
def test_an_unhandled_failure_gives_the_caller_the_matching_response(
    sipp: str, engine: Server, trunk: SippServer, tmp_path: Path,
    number: str, status: int, reason: str, outcome: str,
) -> None:  # fmt: skip
    messages, call_id = call(sipp, tmp_path, engine, "final_uac.xml", number,
                             FINAL_STATUS=str(status))  # fmt: skip
    assert one_final(messages).message.start == f"SIP/2.0 {status} {reason}"
    legs = wait_legs(engine.config, call_id, 2)
    assert [(r["outcome"], r["sip_code"]) for r in legs] == [(outcome, status)] * 2


def test_overflow_at_max_calls_1(
    sipp: str, engine: Server, trunk: SippServer, tmp_path: Path
) -> None:
    """Two concurrent calls: the second overflows (on_overflow, or 486 without it).

    The first call to each number is answered and held for 3 s (its destination's one
    slot taken); the second calls come meanwhile, both at once.
    """
    xml = scenario(tmp_path, "b2bua_uac.xml")

    def caller(number: str, xml: Path, hold_ms: int) -> SippRun:
        return start_sipp(sipp, tmp_path, xml, engine.sip, service=number, trace=True,
                          keys={"caller": CALLER}, extra=("-d", str(hold_ms)))  # fmt: skip

    def finished(run: SippRun) -> list[Traced]:
        result = run.wait()
        assert (result.successful, result.failed) == (1, 0), result.explain()
        return result.messages

    held = {number: caller(number, xml, 3000) for number in (CAPPED, CAPPED_BARE)}
    for run in held.values():
        run.wait_acked()
    overflowing = caller(CAPPED, xml, 200)
    refusing = caller(CAPPED_BARE, scenario(tmp_path, "final_uac.xml", FINAL_STATUS="486"), 0)
    (second,) = caller_call_ids(finished(overflowing))
    refused = finished(refusing)
    (bare,) = caller_call_ids(refused)
    assert one_final(refused).message.start == "SIP/2.0 486 Destination At Capacity"
    first_ids = {number: caller_call_ids(finished(run))[0] for number, run in held.items()}
    calls = wait_calls(engine.config, {first_ids[CAPPED]: 2, first_ids[CAPPED_BARE]: 2,
                                       second: 3, bare: 2})  # fmt: skip
    for number in (CAPPED, CAPPED_BARE):
        assert [r["outcome"] for r in calls[first_ids[number]]] == ["answered", "answered"]
    legs = calls[second]
    shape = [(r["destination"], r["outcome"], r["action_path"]) for r in legs]
    assert shape == [
        (None, "answered", ""),
        ("+32475000033", "overflow", ""),
        ("+32475000043", "answered", "on_overflow"),
    ]
    assert legs[1]["start"] < calls[first_ids[CAPPED]][1]["end"]  # the first call was still up
    legs = calls[bare]
    assert [(r["outcome"], r["sip_code"]) for r in legs] == [("overflow", 486), ("overflow", None)]
    assert legs[1]["start"] < calls[first_ids[CAPPED_BARE]][1]["end"]
    # The overflowing legs were never placed: the trunk saw one INVITE per capped destination.
    placed = [m.message.start.split()[1] for m in trunk.invites()]
    assert sum(uri.startswith("sip:+32475000033@") for uri in placed) == 1
    assert sum(uri.startswith("sip:+32475000053@") for uri in placed) == 1


def test_a_caller_on_tcp(sipp: str, engine: Server, trunk: SippServer, tmp_path: Path) -> None:
    messages, call_id = call(sipp, tmp_path, engine, "b2bua_uac.xml", PLAIN, transport="t1")
    assert {m.transport for m in messages} == {"TCP"}
    assert statuses(messages)[-1] == 200 and statuses(messages, "BYE") == [200]
    legs = wait_legs(engine.config, call_id, 2)
    assert [r["outcome"] for r in legs] == ["answered", "answered"]
    assert {m.transport for m in trunk_leg(trunk, legs[1])} == {"UDP"}
