"""B2BUA call control on a fake clock: relays, dynamic outcomes, chains, CANCEL, BYE, re-INVITE."""

from __future__ import annotations

from pathlib import Path

import pytest

from b2bkit import SDP_ANSWER, SDP_OFFER, Harness, only
from engine.sip.headers import parse_address
from engine.sip.message import Request, Response

TREE = """\
version: 1
customer: acme
numbers: ["+3225551234", "+3225551235", "+3225551236"]
timezone: Europe/Brussels
routes:
  - name: chain
    when: {called: "+3225551234"}
    do:
      forward: "+3225550001"
      timeout: 20
      on_busy:
        forward: "+3225550002"
        timeout: 15
        on_no_answer:
          forward: "+32475000003"
          on_unreachable: {reject: 410}
  - name: capped
    when: {called: "+3225551235"}
    do:
      forward: "+3225550009"
      max_calls: 1
      on_overflow: {forward: "+3225550010"}
  - name: bare
    when: {called: "+3225551236"}
    do: {forward: "+3225550020", timeout: 10}
"""


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    (tmp_path / "acme.yaml").write_text(TREE)
    return Harness(tmp_path)


def placed(h: Harness) -> Request:
    return only(h.to_trunk(), "INVITE")


def to_tag(message: Request | Response) -> str | None:
    return parse_address(message.headers["to"][0]).tag


def final(h: Harness) -> Response:
    """The one final response the caller got since last asked (provisionals aside)."""
    (response,) = [m for m in h.to_caller() if isinstance(m, Response) and m.status >= 200]
    return response


def answered_call(h: Harness) -> tuple[Request, str]:
    """A call set up to the first destination: the callee's INVITE and our tag to the caller."""
    h.caller_sends(h.invite())
    invite = placed(h)
    h.trunk_answers(invite, 200, SDP_ANSWER)
    tag = to_tag(final(h))
    assert tag is not None
    h.caller_sends(h.caller_in_dialog("ACK", tag, cseq=1, branch="z9hG4bK-ack"))
    only(h.to_trunk(), "ACK")
    return invite, tag


def test_a_call_is_relayed_end_to_end(h: Harness) -> None:
    h.caller_sends(h.invite())
    assert h.statuses_to_caller() == [100]
    invite = placed(h)
    assert invite.uri == "sip:+3225550001@127.0.0.1:5080"
    assert invite.body == SDP_OFFER
    assert invite.from_address().uri.user == "+3226001122"
    assert (
        invite.get("diversion") == "<sip:+3225551234@127.0.0.1:5080>;reason=unconditional;counter=1"
    )
    h.trunk_answers(invite, 180)
    ringing = h.to_caller()
    assert [m.status for m in ringing] == [180]
    our_tag = to_tag(ringing[0])
    h.trunk_answers(invite, 200, SDP_ANSWER)
    (ok,) = h.to_caller()
    assert ok.status == 200 and ok.body == SDP_ANSWER and to_tag(ok) == our_tag
    assert h.to_trunk() == []  # our ACK waits for the caller's
    h.caller_sends(h.caller_in_dialog("ACK", our_tag, cseq=1, branch="z9hG4bK-ack"))
    ack = only(h.to_trunk(), "ACK")
    assert ack.get("cseq") == "1 ACK" and to_tag(ack) == "callee-tag"
    h.clock.advance(30)
    h.caller_sends(h.caller_in_dialog("BYE", our_tag))
    assert h.statuses_to_caller() == [200]
    bye = only(h.to_trunk(), "BYE")
    h.trunk_answers(bye, 200)
    records = h.records.by_leg()
    assert records[0].outcome == "answered" and records[0].duration == pytest.approx(30)
    assert records[1].outcome == "answered" and records[1].destination == "+3225550001"
    assert records[1].billed_to == "acme" and records[0].billed_to is None
    assert records[0].route == "chain" and records[1].action_path == ""
    assert h.b2bua.calls == {}


def test_busy_then_no_answer_then_answer_in_one_call(h: Harness) -> None:
    h.caller_sends(h.invite())
    first = placed(h)
    h.trunk_answers(first, 486)
    second = placed(h)
    assert second.uri == "sip:+3225550002@127.0.0.1:5080"
    assert "reason=user-busy" in (second.get("diversion") or "")
    h.trunk_answers(second, 180)
    h.clock.advance(15)  # its ring timeout
    cancel = only(h.to_trunk(), "CANCEL")
    assert cancel.top_via().branch == second.top_via().branch
    h.trunk_answers(cancel, 200)
    h.trunk_answers(second, 487)
    third = placed(h)
    assert third.uri == "sip:+32475000003@127.0.0.1:5080"
    h.trunk_answers(third, 200, SDP_ANSWER)
    statuses = h.statuses_to_caller()
    assert (
        statuses[0] == 100 and statuses[-1] == 200 and 486 not in statuses and 487 not in statuses
    )
    outcomes = [(r.leg, r.outcome, r.action_path) for r in h.records.ended]
    assert (1, "busy", "") in outcomes
    assert (2, "no_answer", "on_busy") in outcomes


def test_unhandled_outcomes_end_with_the_matching_response(h: Harness) -> None:
    h.caller_sends(h.invite(called="+3225551236"))
    h.trunk_answers(placed(h), 600)
    assert h.statuses_to_caller() == [100, 600]
    assert h.records.by_leg()[0].outcome == "busy"


def test_a_503_from_the_trunk_follows_on_unreachable(h: Harness) -> None:
    h.caller_sends(h.invite())
    h.trunk_answers(placed(h), 486)
    second = placed(h)
    h.clock.advance(15)  # its timeout, with no provisional: the tree goes on at once ...
    sent = h.to_trunk()
    assert "CANCEL" not in only_methods(sent)  # ... while the CANCEL waits for one (§9.1)
    (third,) = [m for m in sent if isinstance(m, Request) and m.uri.startswith("sip:+32475")]
    h.trunk_answers(second, 180)  # late: now it can be cancelled
    h.trunk_answers(only(h.to_trunk(), "CANCEL"), 200)
    h.trunk_answers(second, 487)
    h.trunk_answers(third, 503)
    assert h.statuses_to_caller()[-1] == 410  # on_unreachable: reject 410


def only_methods(messages: list[Request | Response]) -> list[str]:
    return [m.method for m in messages if isinstance(m, Request)]


def test_no_response_at_all_is_unreachable_after_timer_b(h: Harness) -> None:
    h.caller_sends(h.invite(called="+3225551236"))
    placed(h)
    h.clock.advance(9.9)
    assert h.statuses_to_caller() == [100]
    h.clock.advance(40)  # ring timeout with no provisional, then Timer B
    assert h.statuses_to_caller()[-1] in (480, 503)


def test_overflow_with_two_concurrent_calls_at_max_calls_1(h: Harness) -> None:
    h.caller_sends(h.invite(called="+3225551235", branch="z9hG4bK-a"))
    first = placed(h)
    assert first.uri.startswith("sip:+3225550009@")
    h.trunk_answers(first, 180)
    h.caller_sends(h.invite(called="+3225551235", branch="z9hG4bK-b"))
    second = placed(h)
    assert second.uri.startswith("sip:+3225550010@")  # on_overflow
    overflow = [r for r in h.records.ended if r.outcome == "overflow"]
    assert len(overflow) == 1 and overflow[0].destination == "+3225550009"
    h.trunk_answers(first, 486)  # the first call ends: its slot is free again
    h.caller_sends(h.invite(called="+3225551235", branch="z9hG4bK-c"))
    third = placed(h)
    assert third.uri.startswith("sip:+3225550009@")
    h.trunk_answers(second, 486)
    h.trunk_answers(third, 486)
    assert h.b2bua.calls == {}  # every call, the overflowed one too, is gone


def test_caller_cancel_during_ringing_cancels_the_outgoing_leg(h: Harness) -> None:
    h.caller_sends(h.invite())
    invite = placed(h)
    h.trunk_answers(invite, 180)
    h.caller_sends(
        h.invite_bytes.replace(b"INVITE sip", b"CANCEL sip").replace(
            b"CSeq: 1 INVITE", b"CSeq: 1 CANCEL"
        )
    )
    statuses = h.statuses_to_caller()
    assert 200 in statuses and statuses[-1] == 487
    cancel = only(h.to_trunk(), "CANCEL")
    h.trunk_answers(cancel, 200)
    h.trunk_answers(invite, 487)
    records = h.records.by_leg()
    assert records[0].outcome == "cancelled" and records[1].outcome == "cancelled"


def test_bye_from_the_callee_ends_both_sides(h: Harness) -> None:
    invite, _ = answered_call(h)
    h.trunk_request("BYE", invite)
    bye = only(h.to_caller(), "BYE")
    assert bye.uri == "sip:caller@127.0.0.1:5070"
    assert to_tag(bye) == "caller-tag"
    h.caller_sends(bye.response(200).to_bytes())
    assert h.b2bua.calls == {}
    assert h.records.by_leg()[1].outcome == "answered"


def test_re_invite_passes_through_both_ways(h: Harness) -> None:
    invite, tag = answered_call(h)
    hold = SDP_OFFER.replace(b"m=audio", b"a=sendonly\r\nm=audio")
    h.caller_sends(h.caller_in_dialog("INVITE", tag, body=hold))
    reinvite = only(h.to_trunk(), "INVITE")
    assert reinvite.body == hold and reinvite.uri == "sip:callee@127.0.0.1:5080"
    assert reinvite.cseq()[0] == 2  # the callee leg's own CSeq
    h.trunk_answers(reinvite, 200, SDP_ANSWER)
    relayed = final(h)
    assert relayed.status == 200 and relayed.body == SDP_ANSWER
    assert only(h.to_trunk(), "ACK").cseq()[0] == 2
    h.trunk_request("INFO", invite)
    info = only(h.to_caller(), "INFO")
    h.caller_sends(info.response(200).to_bytes())
    assert [m.status for m in h.to_trunk() if isinstance(m, Response)] == [200]


def test_in_dialog_options_and_unknown_dialogs(h: Harness) -> None:
    _, tag = answered_call(h)
    h.caller_sends(h.caller_in_dialog("OPTIONS", tag))
    assert h.statuses_to_caller() == [200]
    h.caller_sends(h.caller_in_dialog("BYE", "no-such-tag"))
    assert h.statuses_to_caller() == [481]


def test_reliable_provisionals_are_pracked(h: Harness) -> None:
    h.caller_sends(h.invite())
    invite = placed(h)
    assert "100rel" in (invite.get("supported") or "")
    h.trunk_answers(invite, 183, SDP_ANSWER, extra={"require": "100rel", "rseq": "1"})
    prack = only(h.to_trunk(), "PRACK")
    assert prack.get("rack") == "1 1 INVITE"
    assert h.statuses_to_caller() == [100, 183]
    h.trunk_answers(invite, 183, SDP_ANSWER, extra={"require": "100rel", "rseq": "1"})
    assert h.to_trunk() == [] and h.to_caller() == []  # a retransmission: nothing new


def test_a_site_marked_down_is_unreachable_at_once(h: Harness) -> None:
    h.sites.down["+32475000003"] = "gw-mobile"
    h.caller_sends(h.invite())
    h.trunk_answers(placed(h), 486)
    second = placed(h)
    h.trunk_answers(second, 480)  # no answer: next is the mobile, behind a down site
    assert only_methods(h.to_trunk()) == ["ACK"]  # the 480's ACK, and no INVITE to the mobile
    assert final(h).status == 410  # its on_unreachable, at once
    record = h.records.by_leg()[3]
    assert record.outcome == "unreachable" and record.reason == "site gw-mobile is down"
    assert h.b2bua.calls == {}


def test_the_2xx_is_retransmitted_until_the_ack_and_a_missing_ack_ends_the_call(h: Harness) -> None:
    h.caller_sends(h.invite())
    invite = placed(h)
    h.trunk_answers(invite, 200, SDP_ANSWER)
    assert final(h).status == 200
    h.clock.advance(0.5)
    assert [m.status for m in h.to_caller()] == [200]  # retransmitted at T1
    h.clock.advance(1.0)
    assert [m.status for m in h.to_caller()] == [200]  # then 2*T1
    h.clock.advance(40)  # never acknowledged: 64*T1 later both sides are hung up
    assert "BYE" in only_methods(h.to_caller())
    assert "BYE" in only_methods(h.to_trunk())


def test_a_2xx_that_crosses_the_cancel_is_acked_and_hung_up(h: Harness) -> None:
    h.caller_sends(h.invite(called="+3225551236"))
    invite = placed(h)
    h.trunk_answers(invite, 180)
    h.clock.advance(10)  # ring timeout: CANCEL
    only(h.to_trunk(), "CANCEL")
    h.trunk_answers(invite, 200, SDP_ANSWER)  # answered anyway
    methods = only_methods(h.to_trunk())
    assert methods == ["ACK", "BYE"]
    assert final(h).status == 480  # the caller hears no answer, as the tree says


def test_the_callees_own_final_answer_goes_back_as_it_came(h: Harness) -> None:
    h.caller_sends(h.invite(called="+3225551236"))
    h.trunk_answers(placed(h), 603)
    assert final(h).status == 603
    assert h.records.by_leg()[1].outcome == "rejected"


def test_one_ring_time_limit_for_the_whole_chain(tmp_path: Path) -> None:
    (tmp_path / "acme.yaml").write_text(TREE)
    h = Harness(tmp_path, max_ring_time=25)
    h.caller_sends(h.invite())
    first = placed(h)
    h.trunk_answers(first, 180)
    h.clock.advance(20)  # the first leg's timeout: CANCEL, then on_no_answer? (busy only)
    h.trunk_answers(only(h.to_trunk(), "CANCEL"), 200)
    h.trunk_answers(first, 487)
    assert final(h).status == 480  # no on_no_answer on the first forward: 480


def test_overall_limit_cuts_a_long_chain(tmp_path: Path) -> None:
    (tmp_path / "acme.yaml").write_text(TREE)
    h = Harness(tmp_path, max_ring_time=18)
    h.caller_sends(h.invite())
    h.trunk_answers(placed(h), 486)
    second = placed(h)
    h.trunk_answers(second, 180)
    h.clock.advance(15)  # its own timeout would be 15 s but the call has 18 - elapsed left
    h.trunk_answers(only(h.to_trunk(), "CANCEL"), 200)
    h.trunk_answers(second, 487)
    # 15 s rang, 3 s left: the chain goes on to the third destination
    third = placed(h)
    h.trunk_answers(third, 180)
    h.clock.advance(3.1)
    h.trunk_answers(only(h.to_trunk(), "CANCEL"), 200)
    h.trunk_answers(third, 487)
    response = final(h)
    assert (response.status, response.reason) == (480, "Ring Time Exceeded")


def test_a_caller_that_requires_100rel_gets_reliable_provisionals(h: Harness) -> None:
    h.caller_sends(h.invite(extra="Require: 100rel\r\nSupported: 100rel\r\n"))
    invite = placed(h)
    h.trunk_answers(invite, 183, SDP_ANSWER)
    (_trying, progress) = h.to_caller()
    assert progress.status == 183 and progress.get("rseq") == "1"
    assert progress.get("require") == "100rel"
    h.clock.advance(0.5)
    assert [m.status for m in h.to_caller()] == [183]  # retransmitted until PRACKed
    tag = to_tag(progress)
    h.trunk_answers(invite, 200, SDP_ANSWER)
    assert h.to_caller() == []  # the 2xx waits for the PRACK of the 183 with SDP
    prack = h.caller_in_dialog("PRACK", tag).replace(b"Contact:", b"RAck: 1 1 INVITE\r\nContact:")
    h.caller_sends(prack)
    statuses = h.statuses_to_caller()
    assert statuses == [200, 200]  # the PRACK's, then the INVITE's


def test_session_timer_towards_the_callee_is_refreshed_by_us(h: Harness) -> None:
    h.caller_sends(h.invite())
    invite = placed(h)
    assert "timer" in (invite.get("supported") or "")
    h.trunk_answers(
        invite,
        200,
        SDP_ANSWER,
        extra={"session-expires": "120;refresher=uac", "allow": "INVITE, UPDATE"},
    )
    tag = to_tag(final(h))
    h.caller_sends(h.caller_in_dialog("ACK", tag, cseq=1, branch="z9hG4bK-ack"))
    only(h.to_trunk(), "ACK")
    h.clock.advance(60)
    update = only(h.to_trunk(), "UPDATE")
    assert update.get("session-expires") == "120;refresher=uac"
    h.trunk_answers(update, 200)
    h.clock.advance(60)
    h.trunk_answers(only(h.to_trunk(), "UPDATE"), 200)


def test_a_session_refresh_repeats_the_last_accepted_offer_not_the_first(h: Harness) -> None:
    """RFC 3264 §8: a refresh re-INVITE carries the session as it is now (after a hold)."""
    h.caller_sends(h.invite())
    invite = placed(h)
    h.trunk_answers(invite, 200, SDP_ANSWER, extra={"session-expires": "120;refresher=uac"})
    tag = to_tag(final(h))
    h.caller_sends(h.caller_in_dialog("ACK", tag, cseq=1, branch="z9hG4bK-ack"))
    only(h.to_trunk(), "ACK")
    hold = SDP_OFFER.replace(b"m=audio", b"a=sendonly\r\nm=audio")
    h.caller_sends(h.caller_in_dialog("INVITE", tag, body=hold))
    h.trunk_answers(only(h.to_trunk(), "INVITE"), 200, SDP_ANSWER)
    only(h.to_trunk(), "ACK")
    refused = SDP_OFFER.replace(b"m=audio", b"a=inactive\r\nm=audio")
    h.caller_sends(h.caller_in_dialog("INVITE", tag, body=refused))
    h.trunk_answers(only(h.to_trunk(), "INVITE"), 488)
    h.to_trunk()
    h.clock.advance(60)
    refresh = only(h.to_trunk(), "INVITE")  # no UPDATE in the callee's Allow
    assert refresh.get("session-expires") == "120;refresher=uac"
    assert refresh.body == hold  # not the first offer, nor the refused one


def test_session_timer_with_the_caller_as_refresher_ends_a_silent_call(h: Harness) -> None:
    h.caller_sends(h.invite(extra="Supported: timer\r\nSession-Expires: 120\r\n"))
    invite = placed(h)
    h.trunk_answers(invite, 200, SDP_ANSWER)
    ok = final(h)
    assert ok.get("session-expires") == "120;refresher=uac"
    assert "timer" in (ok.get("require") or "")
    h.caller_sends(h.caller_in_dialog("ACK", to_tag(ok), cseq=1, branch="z9hG4bK-ack"))
    h.to_trunk()
    h.clock.advance(87)
    assert h.to_caller() == []
    h.clock.advance(1.1)  # 120 - min(32, 120/3) = 88 s: the caller never refreshed
    assert "BYE" in only_methods(h.to_caller()) and "BYE" in only_methods(h.to_trunk())


def test_a_session_interval_below_min_se_is_refused_with_422(h: Harness) -> None:
    h.caller_sends(h.invite(extra="Supported: timer\r\nSession-Expires: 30\r\n"))
    response = final(h)
    assert response.status == 422 and response.get("min-se") == "90"


def test_glare_gets_491(h: Harness) -> None:
    invite, tag = answered_call(h)
    h.caller_sends(h.caller_in_dialog("INVITE", tag, body=SDP_OFFER))
    only(h.to_trunk(), "INVITE")
    h.trunk_request("INVITE", invite, cseq=11, body=SDP_ANSWER)
    assert [m.status for m in h.to_trunk() if isinstance(m, Response)] == [491]


def test_a_late_offer_re_invite_carries_the_answer_in_the_relayed_ack(h: Harness) -> None:
    _, tag = answered_call(h)
    h.caller_sends(h.caller_in_dialog("INVITE", tag))  # no SDP: the callee will offer
    reinvite = only(h.to_trunk(), "INVITE")
    assert reinvite.body == b""
    h.trunk_answers(reinvite, 200, SDP_ANSWER)  # the offer
    assert final(h).body == SDP_ANSWER
    assert only_methods(h.to_trunk()) == []  # our ACK waits for the caller's answer
    answer = SDP_OFFER.replace(b"6000", b"6002")
    h.caller_sends(h.caller_in_dialog("ACK", tag, body=answer, cseq=h.cseq, branch="z9hG4bK-a2"))
    ack = only(h.to_trunk(), "ACK")
    assert ack.body == answer and ack.cseq()[0] == reinvite.cseq()[0]
    h.caller_sends(h.caller_in_dialog("ACK", tag, body=answer, cseq=h.cseq, branch="z9hG4bK-a2"))
    assert h.to_trunk() == []  # a retransmitted ACK is not relayed twice


def test_the_callers_record_has_the_200_as_soon_as_answered(h: Harness) -> None:
    answered_call(h)
    (call,) = h.b2bua.calls.values()
    assert call.records.caller_record.sip_code == 200
