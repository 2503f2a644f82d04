"""ACM queues in the call controller: music, offers to operators, answers, no answers, abandon.

A B2BUA on a fake clock (tests/b2bkit.py) with fake media streams and the
in-process shared state: the operators' numbers are dialled through the
scripted trunk, so each test decides who answers, rings on or is busy.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest

from b2bkit import SDP_ANSWER, FakePlane, FakeStream, Harness, only, responses, tag_of
from engine.acm.desk import DEFAULT_HANDLING, TICK, QueueDesk
from engine.acm.events import AcmEvent
from engine.acm.model import AcmSettings, Group, Operator, Softphone, Tier
from engine.calls.media import MediaServices
from engine.calls.queue import QUEUE_PROMPT_DIR, QUEUE_PROMPTS, AcmServices, announcement
from engine.config import MediaSettings
from engine.sip.message import Request
from media.prompts import load_prompt

C = "acme"
ANNA, BERT, CLEO = "+32470001101", "+32470001102", "+32470001103"
VIP = "+3226009999"

TREE = f"""\
version: 1
customer: {C}
numbers: ["+3225551234", "+3225551235"]
timezone: Europe/Brussels
routes:
  - name: vip
    when: {{called: "+3225551234", caller: "{VIP}"}}
    do: {{queue: sales, priority: 5}}
  - name: sales
    when: {{called: "+3225551234"}}
    do:
      queue: sales
      max_wait: 200
      on_timeout: {{forward: "+3225550009"}}
      on_no_agents: {{reject: 480}}
  - name: bare
    when: {{called: "+3225551235"}}
    do: {{queue: sales}}
"""

SALES = Group("sales", ring_timeout=15, wrap_up=10, auto_break_after=2, announce_every=30)


def settings(group: Group = SALES) -> AcmSettings:
    operators = {
        "anna": Operator("anna", (ANNA,), "1234", MappingProxyType({"sales": 3})),
        "bert": Operator("bert", (BERT,), "1234", MappingProxyType({"sales": 1})),
        "cleo": Operator("cleo", (CLEO,), "1234", MappingProxyType({"sales": 3})),
    }
    return AcmSettings(MappingProxyType({"sales": group}), MappingProxyType(operators))


class Sink:
    def __init__(self) -> None:
        self.events: list[AcmEvent] = []

    def record(self, event: AcmEvent) -> None:
        self.events.append(event)

    def kinds(self, kind: str) -> list[tuple[str, str]]:
        return [(e.contact, e.operator) for e in self.events if e.kind == kind]


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    (tmp_path / "acme.yaml").write_text(TREE)
    harness = Harness(tmp_path)
    harness.plane = FakePlane(ports=20)  # type: ignore[attr-defined]
    harness.ctx.media = MediaServices(harness.plane, {}, MediaSettings(),  # type: ignore[attr-defined]
                                      tmp_path / "recordings")  # fmt: skip
    harness.acm = settings()  # type: ignore[attr-defined]
    harness.sink = Sink()  # type: ignore[attr-defined]
    desk = QueueDesk(harness.clock, harness.state, lambda c: harness.acm if c == C else None,  # type: ignore[attr-defined]
                     harness.sink)  # type: ignore[attr-defined]  # fmt: skip
    prompts = {key: load_prompt(QUEUE_PROMPT_DIR / f"{key}.wav") for key in QUEUE_PROMPTS}
    harness.ctx.acm = AcmServices(desk, prompts)
    desk.start()
    yield harness
    desk.stop()


def login(h: Harness, *names: str, since: float | None = None) -> None:
    for n, name in enumerate(names):
        op = h.acm.operators[name]  # type: ignore[attr-defined]
        at = (since if since is not None else h.clock.seconds() - 100) + n
        h.state.set_operator(C, name, "available", dict(op.groups), at)


def states(h: Harness) -> dict[str, str]:
    infos = h.state.operators(C, "sales").result  # type: ignore[attr-defined]
    return {i.operator: i.state for i in infos}


def invites(h: Harness) -> list[Request]:
    """The INVITEs sent to the trunk since the last look, without retransmissions."""
    found = {m.headers["call-id"][0]: m for m in h.to_trunk()
             if isinstance(m, Request) and m.method == "INVITE"}  # fmt: skip
    return list(found.values())


def number_of(invite: Request) -> str:
    return invite.uri.split(":", 1)[1].split("@", 1)[0]


def streams(h: Harness) -> list[FakeStream]:
    return h.plane.streams  # type: ignore[attr-defined, no-any-return]


def call(h: Harness, called: str = "+3225551234", caller: str = "+3226001122",
         branch: str = "z9hG4bK-c1") -> str:  # fmt: skip
    """A caller enters; the engine answers it at once with its own SDP: its to-tag."""
    h.caller_sends(h.invite(called, caller=caller, branch=branch))
    ok = next(r for r in responses(h) if r.status == 200)
    h.caller_sends(h.caller_in_dialog("ACK", tag_of(ok), cseq=1, branch=f"{branch}-ack"))
    return tag_of(ok)


def caller_hangs_up(h: Harness, tag: str) -> None:
    h.caller_sends(h.caller_in_dialog("BYE", tag))


# -- the basic path -------------------------------------------------------------------


def test_the_best_operator_answers_and_after_the_call_wraps_up(h: Harness) -> None:
    login(h, "bert", "anna")
    tag = call(h)
    caller = streams(h)[0]
    assert caller.playing is not None  # music on hold
    (invite,) = invites(h)
    assert number_of(invite) == ANNA  # level 3 before level 1
    assert states(h) == {"anna": "ringing", "bert": "available"}
    h.trunk_answers(invite, 180)
    assert [r.status for r in responses(h)] == []  # the caller holds, it does not ring
    h.trunk_answers(invite, 200, SDP_ANSWER)
    assert only(h.to_trunk(), "ACK")
    assert caller.bridged_to is streams(h)[1]
    assert caller.playing is None  # the music stopped
    assert states(h)["anna"] == "on_call"
    h.clock.advance(42)
    caller_hangs_up(h, tag)
    bye = only(h.to_trunk(), "BYE")
    h.trunk_sends(bye.response(200))
    assert states(h)["anna"] == "wrap_up"
    h.clock.advance(SALES.wrap_up)
    assert states(h)["anna"] == "available"
    sink = h.sink  # type: ignore[attr-defined]
    (contact, _), = sink.kinds("queued")
    assert sink.kinds("offered") == [(contact, "anna")]
    assert sink.kinds("answered") == [(contact, "anna")]
    assert sink.kinds("ended") == [(contact, "anna")]
    assert sink.kinds("abandoned") == []
    assert h.state.waiting(C, "sales").result == 0  # type: ignore[attr-defined]


def test_an_operators_call_is_recorded_for_a_customer_with_recording(h: Harness) -> None:
    h.ctx.media = replace(h.ctx.media, recorded=frozenset({C}))  # type: ignore[type-var]
    login(h, "anna")
    call(h)
    caller = streams(h)[0]
    assert caller.writer is None  # the music and the announcements are not recorded
    (invite,) = invites(h)
    h.trunk_answers(invite, 200, SDP_ANSWER)
    assert caller.writer is not None  # the media issue's capture, from the answer on


def test_no_answer_moves_on_to_the_next_operator(h: Harness) -> None:
    login(h, "anna", "bert")
    call(h)
    (first,) = invites(h)
    assert number_of(first) == ANNA
    h.trunk_answers(first, 180)
    h.clock.advance(SALES.ring_timeout)
    cancel = only(h.to_trunk(), "CANCEL")
    h.trunk_sends(cancel.response(200))
    h.trunk_answers(first, 487)
    h.clock.advance(TICK)
    (second,) = invites(h)
    assert number_of(second) == BERT
    assert states(h) == {"anna": "available", "bert": "ringing"}
    h.trunk_answers(second, 200, SDP_ANSWER)
    assert states(h)["bert"] == "on_call"
    assert h.sink.kinds("no_answer")[0][1] == "anna"  # type: ignore[attr-defined]


def test_busy_moves_on_and_two_misses_in_a_row_put_an_operator_on_break(h: Harness) -> None:
    login(h, "anna", "bert")
    for n in range(2):
        call(h, branch=f"z9hG4bK-busy{n}")
        invite = next(i for i in invites(h) if number_of(i) == ANNA)
        h.trunk_answers(invite, 486)
        h.clock.advance(TICK)
        bert = next(i for i in invites(h) if number_of(i) == BERT)
        h.trunk_answers(bert, 200, SDP_ANSWER)
        h.clock.advance(60)
        h.trunk_request("BYE", bert)
        h.clock.advance(SALES.wrap_up)
    assert states(h) == {"anna": "break", "bert": "available"}


def test_a_caller_hanging_up_in_the_queue_is_abandoned_and_frees_the_operator(h: Harness) -> None:
    login(h, "anna")
    tag = call(h)
    (invite,) = invites(h)
    h.trunk_answers(invite, 180)
    caller_hangs_up(h, tag)
    assert only(h.to_trunk(), "CANCEL")
    assert states(h) == {"anna": "available"}
    assert len(h.sink.kinds("abandoned")) == 1  # type: ignore[attr-defined]
    assert h.state.waiting(C, "sales").result == 0  # type: ignore[attr-defined]


def test_callers_wait_in_order_and_hear_their_position(h: Harness) -> None:
    login(h, "anna")
    assert h.state.reserve(C, ["anna"], "elsewhere", 300).result == "anna"  # type: ignore[attr-defined]
    tags = []
    for n in range(3):
        tags.append(call(h, branch=f"z9hG4bK-w{n}"))
        h.clock.advance(0.01)
    assert invites(h) == []
    h.clock.advance(TICK)
    third = streams(h)[2]
    assert third.playing is not None
    keys = announcement(3, 3 * DEFAULT_HANDLING)  # one operator, three calls to handle
    assert keys == ["position", "n03", "in_queue", "wait", "n06", "minutes"]
    h.clock.advance(2.0)  # the first announcement comes early
    prompts = h.ctx.acm.prompts  # type: ignore[union-attr]
    said = [f for key in keys for f in prompts[key].frames("PCMU")]
    assert third.playing == said
    assert h.state.move_operator(C, "anna", "elsewhere", "available").result  # type: ignore[attr-defined]
    h.clock.advance(TICK)
    (invite,) = invites(h)
    assert invite.headers["call-id"]  # the first caller's offer
    assert h.state.position(C, "sales", h.sink.kinds("queued")[1][0]).result == 1  # type: ignore[attr-defined]
    for tag in tags:
        caller_hangs_up(h, tag)


def test_a_priority_caller_goes_ahead(h: Harness) -> None:
    login(h, "anna")
    assert h.state.reserve(C, ["anna"], "elsewhere", 300).result == "anna"  # type: ignore[attr-defined]
    call(h, branch="z9hG4bK-first")
    h.clock.advance(5)
    call(h, caller=VIP, branch="z9hG4bK-vip")
    h.state.move_operator(C, "anna", "elsewhere", "available")
    h.clock.advance(TICK)
    (invite,) = invites(h)
    queued = h.sink.kinds("queued")  # type: ignore[attr-defined]
    assert h.sink.kinds("offered") == [(queued[1][0], "anna")]  # type: ignore[attr-defined]
    assert invite.headers["from"][0].startswith(f'"Caller" <sip:{VIP}@')


def test_an_engine_side_hang_up_takes_the_call_out_of_the_queue(h: Harness) -> None:
    login(h, "anna")
    h.state.set_operator(C, "anna", "break", {"sales": 3}, h.clock.seconds())
    call(h)
    (run,) = [c for c in h.b2bua.calls.values()]
    run.hang_up("the engine is stopping")
    assert h.state.waiting(C, "sales").result == 0  # type: ignore[attr-defined]
    h.state.set_operator(C, "anna", "available", {"sales": 3}, h.clock.seconds())
    h.clock.advance(TICK)
    assert invites(h) == []  # nobody is offered a call that is ending
    assert len(h.sink.kinds("abandoned")) == 1  # type: ignore[attr-defined]


def test_no_media_port_for_the_offer_keeps_the_caller_in_its_place(h: Harness) -> None:
    login(h, "anna")
    h.state.set_operator(C, "anna", "break", {"sales": 3}, h.clock.seconds())
    call(h)
    h.plane.left = 0  # type: ignore[attr-defined]
    h.state.set_operator(C, "anna", "available", {"sales": 3}, h.clock.seconds())
    h.clock.advance(TICK)
    assert states(h) == {"anna": "available"}
    assert h.state.waiting(C, "sales").result == 1  # type: ignore[attr-defined]
    h.plane.left = 5  # type: ignore[attr-defined]
    h.clock.advance(TICK)
    assert [number_of(i) for i in invites(h)] == [ANNA]


def test_nobody_logged_in_runs_on_no_agents(h: Harness) -> None:
    h.caller_sends(h.invite("+3225551234"))
    h.clock.advance(TICK)
    assert any(isinstance(m, Request) and m.method == "BYE" for m in h.to_caller())  # reject
    assert len(h.sink.kinds("no_agents")) == 1  # type: ignore[attr-defined]


def test_max_wait_runs_on_timeout(h: Harness) -> None:
    login(h, "anna")
    h.state.set_operator(C, "anna", "break", {"sales": 3}, h.clock.seconds())
    call(h)
    h.clock.advance(199)
    assert invites(h) == []
    h.clock.advance(1)  # longer than calls.max_ring_time: the forward rings all the same
    (invite,) = invites(h)
    assert number_of(invite) == "+3225550009"  # on_timeout: forward
    assert len(h.sink.kinds("timeout")) == 1  # type: ignore[attr-defined]


def test_ring_all_rings_the_best_level_together_and_cancels_the_others(h: Harness) -> None:
    h.acm = settings(replace(SALES, strategy="ring-all"))  # type: ignore[attr-defined]
    login(h, "anna", "bert", "cleo")
    call(h)
    rung = invites(h)
    assert sorted(number_of(i) for i in rung) == [ANNA, CLEO]  # level 3 together, not bert
    cleo = next(i for i in rung if number_of(i) == CLEO)
    anna = next(i for i in rung if number_of(i) == ANNA)
    h.trunk_answers(anna, 180)
    h.trunk_answers(cleo, 200, SDP_ANSWER)
    sent = h.to_trunk()
    assert only(sent, "CANCEL").uri == anna.uri
    assert states(h) == {"anna": "available", "bert": "available", "cleo": "on_call"}


def test_ring_all_goes_on_when_a_softphone_is_not_registered(h: Harness) -> None:
    sam = Operator("sam", (), "1234", MappingProxyType({"sales": 3}),
                   Softphone("sam", MappingProxyType({"MD5": "0" * 32})))  # fmt: skip
    acm = settings(replace(SALES, strategy="ring-all"))
    h.acm = replace(acm, operators=MappingProxyType({**acm.operators, "sam": sam}))  # type: ignore[attr-defined]
    login(h, "anna", "sam")
    call(h)
    (invite,) = invites(h)  # sam has no binding and no number: only anna rings
    assert number_of(invite) == ANNA
    assert states(h)["sam"] == "available" and h.sink.kinds("no_answer")[0][1] == "sam"  # type: ignore[attr-defined]
    h.trunk_answers(invite, 200, SDP_ANSWER)
    assert streams(h)[0].bridged_to is streams(h)[1]
    assert states(h)["anna"] == "on_call"


def test_tiers_widen_to_lower_levels_after_a_wait(h: Harness) -> None:
    h.acm = settings(replace(SALES, tiers=(Tier(0, 3), Tier(20, 1))))  # type: ignore[attr-defined]
    login(h, "bert", "cleo")
    h.state.set_operator(C, "cleo", "break", {"sales": 3}, h.clock.seconds())
    call(h)
    h.clock.advance(19)
    assert invites(h) == []  # only level 3 for the first 20 s (cleo, on a break)
    h.clock.advance(1)
    (invite,) = invites(h)
    assert number_of(invite) == BERT


def test_round_robin_and_fewest_calls_take_turns(h: Harness) -> None:
    for strategy in ("round-robin", "fewest-calls"):
        h.acm = settings(replace(SALES, strategy=strategy, wrap_up=0))  # type: ignore[attr-defined]
        login(h, "anna", "bert", "cleo")
        rung = []
        for n in range(3):
            call(h, branch=f"z9hG4bK-{strategy}{n}")
            (invite,) = invites(h)
            rung.append(number_of(invite))
            h.trunk_answers(invite, 200, SDP_ANSWER, tag=f"t{n}")
            h.trunk_request("BYE", invite, to_tag=f"t{n}")
        assert sorted(rung) == [ANNA, BERT, CLEO], strategy  # each once


@pytest.mark.parametrize(("position", "expected", "keys"), [
    (1, 20.0, ["position", "n01", "in_queue", "under_minute"]),
    (2, 80.0, ["position", "n02", "in_queue", "wait", "one_minute"]),
    (25, 3000.0, ["position", "more_than", "in_queue", "wait", "more_than", "minutes"]),
    (None, None, []),
])  # fmt: skip
def test_what_the_announcement_says(position: int | None, expected: float | None,
                                    keys: list[str]) -> None:  # fmt: skip
    assert announcement(position, expected) == keys
