"""Redirect mode: decisions to 302/final responses, failover Contacts, what cannot be served."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.task import Clock

from engine.config import RedirectSettings
from engine.floods import FloodGuard, FloodSettings, RateLimit
from engine.redirect import RedirectService
from engine.router import Router, called_number, caller_number
from engine.servable import unservable
from engine.sip.parser import parse_datagram
from engine.sip.stack import SipStack
from routing_trees.compile import CompiledTree
from routing_trees.treeset import load_directory
from sipkit import PEER, FakeTransport, request, request_bytes

# 2026-11-18 is a Wednesday; 10:00 in Brussels is 09:00 UTC.
WEDNESDAY_10H = 1795424400.0

TREE = """\
version: 1
customer: acme
numbers: ["+3225551234", "+3225551235"]
timezone: Europe/Brussels
lists:
  vip: ["+32475123456", "+3226*"]
routes:
  - name: blocked
    when: {caller: "+3290*"}
    do: {reject: 603}
  - name: second-number
    when: {called: "+3225551235"}
    do: {announce: closed}
  - name: vip
    when: {caller_in: vip}
    do:
      forward: "+32475999999"
      on_no_answer: {queue: sales}
  - name: office
    when: {time: "mon-fri 08:00-18:00"}
    do:
      forward: "+3225550001"
      max_calls: 3
      on_busy: {forward: "+32475000001"}
      on_no_answer:
        forward: "+32475000002"
        on_busy: {forward: "+3225550001"}
        on_no_answer: {forward: "+32475000003"}
      on_unreachable: {split: [{weight: 100, do: {forward: "+32475000004"}}]}
prompts:
  closed: prompts/closed.wav
"""


@pytest.fixture
def trees(tmp_path: Path) -> Path:
    (tmp_path / "prompts").mkdir()
    shared = Path(__file__).resolve().parents[1] / "routing_trees/examples/prompts/closed-nl.wav"
    (tmp_path / "prompts" / "closed.wav").write_bytes(shared.read_bytes())
    (tmp_path / "acme.yaml").write_text(TREE)
    return tmp_path


def service(trees: Path, **settings: object) -> tuple[RedirectService, SipStack, Clock]:
    clock = Clock()
    clock.advance(WEDNESDAY_10H)
    router = Router(load_directory(trees), mode_of=lambda _c: "normal")
    svc = RedirectService(None, router, ("127.0.0.1", 5080), RedirectSettings(**settings),  # type: ignore[arg-type]
                          random.Random(7))  # fmt: skip
    stack = SipStack(clock, svc)
    svc.stack = stack
    return svc, stack, clock


def call(stack: SipStack, branch: str = "z9hG4bK-1", **kw: object) -> object:
    kw.setdefault("caller", "+3238001122")  # not a VIP
    transport = FakeTransport()
    stack.receive_datagram(request_bytes("INVITE", branch=branch, **kw), transport, PEER)  # type: ignore[arg-type]
    ((data, _),) = transport.sent
    return parse_datagram(data)


def test_a_forward_without_failovers_gives_the_contract_contact(trees: Path) -> None:
    _, stack, _ = service(trees, failover_contacts=False)
    response = call(stack)
    assert response.status == 302
    assert response.headers["contact"] == ["<sip:+3225550001@127.0.0.1:5080>"]
    assert response.get("to").endswith(";tag=" + response.get("to").split("tag=")[1])


def test_failovers_follow_as_contacts_with_falling_q(trees: Path) -> None:
    _, stack, _ = service(trees)
    response = call(stack)
    assert response.headers["contact"] == [
        "<sip:+3225550001@127.0.0.1:5080>;q=1.0",
        "<sip:+32475000001@127.0.0.1:5080>;q=0.8",
        "<sip:+32475000002@127.0.0.1:5080>;q=0.6",
        "<sip:+32475000004@127.0.0.1:5080>;q=0.4",
        "<sip:+32475000003@127.0.0.1:5080>;q=0.2",
    ]


def test_max_contacts_cuts_the_list(trees: Path) -> None:
    _, stack, _ = service(trees, max_contacts=2)
    assert call(stack).headers["contact"] == [
        "<sip:+3225550001@127.0.0.1:5080>;q=1.0",
        "<sip:+32475000001@127.0.0.1:5080>;q=0.5",
    ]


def test_media_branches_are_left_out(trees: Path) -> None:
    _, stack, _ = service(trees)
    response = call(stack, caller="+3226001122")  # vip: its no-answer branch is a queue
    assert response.headers["contact"] == ["<sip:+32475999999@127.0.0.1:5080>"]


def test_reject_unknown_number_no_rule_and_unservable(trees: Path) -> None:
    svc, stack, clock = service(trees)
    assert call(stack, caller="+3290123456").status == 603
    assert call(stack, branch="z9hG4bK-2", uri="sip:+3299999999@127.0.0.1").status == 404
    response = call(stack, branch="z9hG4bK-3", uri="sip:+3225551235@127.0.0.1")
    assert (response.status, response.reason) == (480, "Not Servable In Redirect Mode")
    clock.advance(12 * 3600)  # 22:00: outside office hours, and no rule holds
    response = call(stack, branch="z9hG4bK-4")
    assert (response.status, response.reason) == (480, "No Rule Matched")
    assert svc.decisions == 3


def test_options_and_bye(trees: Path) -> None:
    _, stack, _ = service(trees)
    transport = FakeTransport()
    stack.receive_datagram(request_bytes("OPTIONS", branch="z9hG4bK-o"), transport, PEER)
    stack.receive_datagram(request_bytes("BYE", branch="z9hG4bK-b", to_tag="x"), transport, PEER)
    options, bye = transport.messages()
    assert options.status == 200 and options.get("allow") == "ACK, BYE, CANCEL, INVITE, OPTIONS"
    assert bye.status == 481


def test_a_reload_takes_effect_for_new_calls(trees: Path) -> None:
    svc, stack, _ = service(trees, failover_contacts=False)
    assert call(stack).headers["contact"] == ["<sip:+3225550001@127.0.0.1:5080>"]
    (trees / "acme.yaml").write_text(TREE.replace("+3225550001", "+3225550009"))
    svc.router.trees = load_directory(trees)
    assert call(stack, branch="z9hG4bK-9").headers["contact"] == [
        "<sip:+3225550009@127.0.0.1:5080>"
    ]


def test_unservable_reports_each_rule_with_its_position(trees: Path) -> None:
    tree = load_directory(trees).trees[0]
    notices = [str(n) for n in unservable(tree, "redirect", 480)]
    file = str(trees / "acme.yaml")
    assert notices == [
        f"{file}:13:10: rule 'second-number': announce needs media; "
        "calls matching this rule get 480",
        f"{file}:18:22: rule 'vip' (on_no_answer): queue needs media; "
        "redirect mode leaves it out of the 302",
        f"{file}:22:7: rule 'office': max_calls is not enforced in redirect mode (no call state)",
    ]


@pytest.mark.parametrize(
    ("uri", "number"),
    [
        ("sip:+3225551234@h", "+3225551234"),
        ("sip:%2B3225551234@h", "+3225551234"),
        ("sip:025551234@h;user=phone", "+3225551234"),
        ("sip:003225551234@h", "+3225551234"),
        ("tel:+3225551234", "+3225551234"),
        ("sip:+3225551234;npdi@h", "+3225551234"),
        ("sip:reception@h", None),
        ("sip:h", None),
    ],
)
def test_called_number(uri: str, number: str | None) -> None:
    assert called_number(request("INVITE", uri=uri)) == number


@pytest.mark.parametrize(
    ("extra", "caller", "number"),
    [
        ("", "+3226001122", "+3226001122"),
        ("", "026001122", "+3226001122"),
        ("", "sipp", None),
        ("Privacy: id\r\n", "+3226001122", None),
        ("P-Asserted-Identity: <sip:+3238001122@pbx>\r\n", "+3226001122", "+3238001122"),
        ("P-Asserted-Identity: <sip:+3238001122@pbx>\r\nPrivacy: user; id\r\n", "+3226", None),
    ],
)
def test_caller_number(extra: str, caller: str, number: str | None) -> None:
    assert caller_number(request("INVITE", caller=caller, extra=extra)) == number


def test_anonymous_from_is_withheld() -> None:
    data = request_bytes("INVITE").replace(
        b"From: <sip:+3226001122@127.0.0.1>", b'From: "Anonymous" <sip:anonymous@anonymous.invalid>'
    )
    message = parse_datagram(data)
    assert caller_number(message) is None  # type: ignore[arg-type]


def test_destinations_behind_a_down_site_are_left_out(trees: Path) -> None:
    from engine.sites.health import Site, SiteTable

    def down(numbers: tuple[str, ...]) -> SiteTable:
        table = SiteTable([Site("gw", ("127.0.0.1", 5090), numbers=numbers)], clock)
        for _ in range(3):
            table.record("gw", False, "timeout")
        assert table.down() == ["gw"]
        return table

    svc, stack, clock = service(trees)
    svc.sites = down(("+32475*",))
    assert call(stack).headers["contact"] == ["<sip:+3225550001@127.0.0.1:5080>"]
    svc.sites = down(("+32*",))
    response = call(stack, branch="z9hG4bK-2")
    assert (response.status, response.reason) == (503, "Destination Unreachable")


@pytest.mark.parametrize("code", [503, 486])
def test_unknown_numbers_from_one_source_are_limited(trees: Path, code: int) -> None:
    svc, stack, _ = service(trees)
    svc.floods = FloodGuard(stack.clock, FloodSettings(per_source=RateLimit(1.0, 3), response=code))
    statuses = [call(stack, f"z9hG4bK-u{i}", uri=f"sip:+32255599{i:02d}@127.0.0.1:5060").status  # type: ignore[attr-defined]
                for i in range(6)]  # fmt: skip
    assert statuses == [404] * 3 + [code] * 3
    assert svc.floods.counters.refused_source == 3 and not svc.floods.numbers


def test_a_refused_call_is_never_evaluated(trees: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    evaluate = CompiledTree.evaluate

    def counting(tree: CompiledTree, facts: Any) -> Any:
        seen.append(facts.called)
        return evaluate(tree, facts)

    monkeypatch.setattr(CompiledTree, "evaluate", counting)
    svc, stack, _ = service(trees)
    svc.floods = FloodGuard(stack.clock, FloodSettings(per_number=RateLimit(1.0, 1)),
                            {"acme": RateLimit(1.0, 2)})  # fmt: skip
    statuses = [call(stack, f"z9hG4bK-r{i}").status for i in range(3)]  # type: ignore[attr-defined]
    assert statuses == [302, 302, 503]  # acme's own limit, known before the tree runs
    assert seen == ["+3225551234"] * 2 and svc.decisions == 2
    assert svc.floods.counters.refused_number == 1


def test_a_down_trunk_site_without_numbers_leaves_nothing_to_redirect_to(
    trees: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from engine.config import load_config
    from engine.sites.health import SiteTable

    path = tmp_path_factory.mktemp("config") / "vms.yaml"
    path.write_text("trees: trees/\nsites: {trunk: {interval: 5}}\n")  # numbers: everything
    svc, stack, clock = service(trees)
    svc.sites = SiteTable(load_config(path).sites.values(), clock)
    for _ in range(3):
        svc.sites.record("trunk", False, "timeout")
    response = call(stack)
    assert (response.status, response.reason) == (503, "Destination Unreachable")  # type: ignore[attr-defined]
