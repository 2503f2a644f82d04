"""Site health: the state table row by row, the down-site lookup, and the prober on a fake wire.

The prober runs on a real ``SipStack`` driven by ``task.Clock`` with a
recording transport: the peer's answers are fed back as datagrams, so the
request it sends, the transaction matching, the timeout and the end of the
transaction are all exercised without sockets or sleeps.
"""

from __future__ import annotations

import json
import logging
import os
import time
from io import StringIO
from pathlib import Path

import pytest
from twisted.internet.task import Clock

from engine.config import load_config
from engine.sip.message import Request
from engine.sip.parser import parse_datagram
from engine.sip.stack import SipStack
from engine.sites.command import run
from engine.sites.health import (
    DOWN,
    TRANSITIONS,
    UNKNOWN,
    UP,
    Site,
    SiteHealth,
    SiteTable,
    probe_succeeded,
)
from engine.sites.prober import SiteProber, resolve_host
from sipkit import FakeTransport, RecordingTU

LOCAL = ("127.0.0.1", 5060)
PBX = ("127.0.0.1", 5090)
TRUNK = ("127.0.0.1", 5080)


# -- the state table ---------------------------------------------------------------------


@pytest.mark.parametrize(("row", "after"), sorted(TRANSITIONS.items()))
def test_every_row_of_the_state_table(row: tuple[str, bool, bool], after: str) -> None:
    """Put a site in the row's state with counts one short of (or at) the threshold."""
    state, ok, reached = row
    site = Site("s", PBX, down_after=3, up_after=2)
    health = SiteHealth(since=0.0, state=state)
    if ok:
        health.successes = 1 if reached else 0  # the next success makes 2 (reached) or 1
    else:
        health.failures = 2 if reached else 0  # the next failure makes 3 (reached) or 1
    transition = health.record(site, ok, "200 OK" if ok else "timeout", 10.0)
    assert health.state == after
    assert (transition is not None) == (after != state)
    assert health.since == (10.0 if after != state else 0.0)


def test_the_table_covers_every_state_result_and_threshold() -> None:
    assert set(TRANSITIONS) == {(s, ok, r) for s in (UNKNOWN, UP, DOWN)
                                for ok in (True, False) for r in (True, False)}  # fmt: skip


def test_a_site_starts_unknown_and_is_not_down() -> None:
    clock = Clock()
    clock.advance(100)
    table = SiteTable([Site("trunk", numbers=("*",))], clock)
    assert table.state("trunk") == UNKNOWN
    assert table.health["trunk"].since == 100
    assert table.down_site_for("+3225551234") is None


def test_down_after_n_failures_up_after_m_successes_and_counts_reset() -> None:
    clock = Clock()
    table = SiteTable([Site("pbx", PBX, numbers=("+3225550*",), down_after=3, up_after=2)], clock)
    assert table.record("pbx", True, "200 OK").new == UP  # type: ignore[union-attr]
    assert table.record("pbx", False, "timeout") is None
    assert table.record("pbx", False, "timeout") is None
    assert table.record("pbx", True, "200 OK") is None  # resets the failures
    assert table.health["pbx"].failures == 0
    assert table.record("pbx", False, "timeout") is None
    assert table.record("pbx", False, "503 Service Unavailable") is None
    clock.advance(7)
    down = table.record("pbx", False, "timeout")
    assert down is not None and (down.old, down.new, down.count, down.result, down.at) == (
        UP, DOWN, 3, "timeout", 7)  # fmt: skip
    assert table.down_site_for("+3225550123") == "pbx"
    assert table.record("pbx", True, "200 OK") is None  # one success is not enough
    assert table.record("pbx", False, "timeout") is None  # and resets the successes
    assert table.health["pbx"].successes == 0
    assert table.record("pbx", True, "200 OK") is None
    up = table.record("pbx", True, "200 OK")
    assert up is not None and (up.old, up.new, up.count) == (DOWN, UP, 2)
    assert table.down_site_for("+3225550123") is None
    health = table.health["pbx"]
    assert (health.probes, health.last_result, health.last_ok) == (11, "200 OK", True)


def test_unknown_goes_down_after_n_failures_without_ever_being_up() -> None:
    table = SiteTable([Site("gw", PBX, numbers=("*",), down_after=2)], Clock())
    assert table.record("gw", False, "timeout") is None
    assert table.state("gw") == UNKNOWN
    transition = table.record("gw", False, "timeout")
    assert transition is not None and (transition.old, transition.new) == (UNKNOWN, DOWN)


@pytest.mark.parametrize(
    ("status", "alive"),
    [(200, True), (404, True), (405, True), (403, True), (480, True), (486, True), (500, True),
     (501, True), (502, True), (600, True), (408, False), (503, False), (504, False),
     (100, False), (180, False)],
)  # fmt: skip
def test_which_final_responses_prove_a_site_alive(status: int, alive: bool) -> None:
    assert probe_succeeded(status) is alive


# -- the down-site lookup -------------------------------------------------------------------


def _table(*sites: Site) -> SiteTable:
    return SiteTable(sites, Clock())


def _down(table: SiteTable, *names: str) -> None:
    for name in names:
        for _ in range(table.sites[name].down_after):
            table.record(name, False, "timeout")
        assert table.state(name) == DOWN


def test_a_down_site_with_star_makes_everything_unreachable() -> None:
    table = _table(Site("trunk", numbers=("*",)), Site("pbx", PBX, numbers=("+3225550*",)))
    _down(table, "trunk")
    assert table.down_site_for("+3225551234") == "trunk"
    assert table.down_site_for("+3225550001") == "trunk"  # the PBX is reached through the trunk
    assert table.down_site_for("+447700900123") == "trunk"


def test_the_most_specific_down_site_is_named() -> None:
    table = _table(
        Site("trunk", numbers=("*",)),
        Site("pbx", PBX, numbers=("+3225550*",)),
        Site("pbx-floor2", ("127.0.0.1", 5091), numbers=("+32255502*",)),
        Site("desk", ("127.0.0.1", 5092), numbers=("+3225550001",)),
    )
    _down(table, "pbx")
    assert table.down_site_for("+3225550123") == "pbx"
    assert table.down_site_for("+3225550001") == "pbx"
    assert table.down_site_for("+3225551234") is None  # not behind a down site
    _down(table, "pbx-floor2", "desk", "trunk")
    assert table.down_site_for("+3225550234") == "pbx-floor2"  # longest prefix
    assert table.down_site_for("+3225550123") == "pbx"
    assert table.down_site_for("+3225550001") == "desk"  # an exact number beats any prefix
    assert table.down_site_for("+3225551234") == "trunk"  # then *
    for name in ("pbx-floor2", "desk"):
        table.record(name, True, "200 OK")
        table.record(name, True, "200 OK")
    assert table.down_site_for("+3225550234") == "pbx"
    assert table.down() == ["trunk", "pbx"]


def test_a_site_that_comes_back_leaves_the_index() -> None:
    table = _table(Site("pbx", PBX, numbers=("+3225550*", "+3226001122"), up_after=1))
    _down(table, "pbx")
    assert table.down_site_for("+3226001122") == "pbx"
    table.record("pbx", True, "200 OK")
    assert table.down_site_for("+3226001122") is None
    assert table.down_site_for("+3225550001") is None


def test_a_down_site_without_numbers_blocks_nothing() -> None:
    table = _table(Site("monitor-only", PBX))
    _down(table, "monitor-only")
    assert table.down_site_for("+3225550001") is None


def test_lookup_is_fast() -> None:
    sites = [Site("trunk", numbers=("*",))] + [
        Site(f"pbx{i}", ("127.0.0.1", 6000 + i),
             numbers=(f"+32{20 + i}5550*", f"+32{20 + i}55600{i}"))
        for i in range(50)
    ]  # fmt: skip
    table = _table(*sites)
    numbers = [f"+32{20 + i}5551234" for i in range(50)]
    start = time.perf_counter()
    for _ in range(200):
        for number in numbers:
            table.down_site_for(number)
    idle = (time.perf_counter() - start) / 10_000
    _down(table, *[f"pbx{i}" for i in range(0, 50, 2)])
    start = time.perf_counter()
    for _ in range(200):
        for number in numbers:
            table.down_site_for(number)
    busy = (time.perf_counter() - start) / 10_000
    assert idle < 2e-6 and busy < 5e-6, (idle, busy)


def test_snapshot_is_json_ready() -> None:
    clock = Clock()
    clock.advance(1_780_000_000)
    table = SiteTable([Site("pbx", PBX, numbers=("+3225550*",))], clock)
    table.record("pbx", True, "200 OK")
    snapshot = table.snapshot()
    json.dumps(snapshot)
    assert snapshot["pbx"]["state"] == UP
    assert snapshot["pbx"]["since"] == "2026-05-28T20:26:40Z"
    assert snapshot["pbx"]["numbers"] == ["+3225550*"]


# -- the prober on a fake wire ----------------------------------------------------------------


class Wire:
    """A SipStack on task.Clock with a recording transport, and a prober on it."""

    def __init__(self, tmp_path: Path, *sites: Site, resolve: object = None) -> None:
        self.clock = Clock()
        self.clock.advance(1_780_000_000)
        tu = RecordingTU(None)
        self.stack = SipStack(self.clock, tu)
        tu.stack = self.stack
        self.tu = tu
        self.udp = FakeTransport()
        self.table = SiteTable(sites, self.clock)
        kwargs = {} if resolve is None else {"resolve": resolve}
        self.prober = SiteProber(self.stack, self.table, {"udp": self.udp}, LOCAL, tmp_path,
                                 TRUNK, **kwargs)  # type: ignore[arg-type]  # fmt: skip
        self.path = tmp_path / "sites.json"

    def requests(self) -> list[tuple[Request, tuple[str, int]]]:
        """The probes sent, in order (retransmissions left out)."""
        out = []
        branches = set()
        for data, addr in self.udp.sent:
            message = parse_datagram(data)
            assert isinstance(message, Request)
            if message.top_via().branch not in branches:
                branches.add(message.top_via().branch)
                out.append((message, addr))
        return out

    def answer(self, index: int, status: int, reason: str | None = None) -> None:
        request, addr = self.requests()[index]
        response = request.response(status, reason, "peer-tag")
        self.stack.receive_datagram(response.to_bytes(), self.udp, addr)

    def advance(self, seconds: float, step: float = 0.01) -> None:
        """Move the clock in timer-queue ticks; a timer may fire up to one tick late."""
        target = self.clock.seconds() + seconds
        while self.clock.seconds() + step < target:
            self.clock.advance(step)
        self.clock.advance(max(0.0, target - self.clock.seconds()))

    def document(self) -> dict[str, object]:
        data = json.loads(self.path.read_text())
        assert isinstance(data, dict)
        return data


def test_the_probe_is_an_options_the_peer_can_answer(tmp_path: Path) -> None:
    wire = Wire(tmp_path, Site("pbx-acme", PBX, numbers=("+3225550*",)), Site("trunk"))
    wire.prober.start()
    (first, addr1), (second, addr2) = wire.requests()
    assert (addr1, addr2) == (PBX, TRUNK)
    assert first.method == "OPTIONS" and first.uri == "sip:127.0.0.1:5090"
    assert second.uri == "sip:127.0.0.1:5080"  # the trunk site probes sip.trunk
    via = first.top_via()
    assert (via.transport, via.host, via.port) == ("UDP", "127.0.0.1", 5060)
    assert via.branch is not None and via.branch.startswith("z9hG4bK")
    assert "rport" in via.params
    assert first.get("max-forwards") == "70"
    sender = first.from_address()
    assert str(sender.uri) == "sip:vms@127.0.0.1" and sender.tag
    assert str(first.to_address().uri) == "sip:127.0.0.1:5090"
    assert first.to_address().tag is None
    assert first.cseq() == (1, "OPTIONS")
    assert first.get("call-id") != second.get("call-id")
    assert next(iter(first.headers)) == "via"
    wire.answer(0, 200)
    wire.advance(5.02)
    third, _ = wire.requests()[2]
    assert third.cseq() == (2, "OPTIONS") and third.uri == "sip:127.0.0.1:5090"
    assert third.get("call-id") != first.get("call-id")


def test_down_after_three_timeouts_then_up_after_two_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "vms.sites")
    site = Site("pbx-acme", PBX, numbers=("+3225550*",), interval=5, timeout=2)
    wire = Wire(tmp_path, site)
    wire.prober.start()
    wire.answer(0, 200)
    assert wire.table.state("pbx-acme") == UP
    assert caplog.messages == ["site pbx-acme (127.0.0.1:5090) is up (200 OK)"]
    wire.advance(0.02)
    for _ in range(3):
        wire.advance(5)
    assert len(wire.requests()) == 4  # at 0 (answered), 5, 10 and 15 s (not)
    assert wire.table.state("pbx-acme") == UP  # 2 failures so far (the 3rd is in flight)
    wire.advance(2)
    assert wire.table.state("pbx-acme") == DOWN
    assert wire.table.down_site_for("+3225550001") == "pbx-acme"
    assert caplog.messages[-1] == \
        "site pbx-acme (127.0.0.1:5090) is down: 3 probes failed (timeout)"  # fmt: skip
    assert caplog.records[-1].levelno == logging.WARNING
    assert wire.document()["sites"]["pbx-acme"]["state"] == DOWN  # type: ignore[index]
    wire.advance(3)
    wire.answer(4, 200)
    assert wire.table.state("pbx-acme") == DOWN
    wire.advance(5)
    wire.answer(5, 404, "Not Found")  # a peer that answers at all is alive
    assert wire.table.state("pbx-acme") == UP
    assert caplog.messages[-1] == "site pbx-acme (127.0.0.1:5090) is up again after 2 probes"
    assert len(caplog.messages) == 3


@pytest.mark.parametrize("status", [408, 503, 504])
def test_busy_or_timed_out_answers_fail(tmp_path: Path, status: int) -> None:
    wire = Wire(tmp_path, Site("gw", PBX, down_after=1))
    wire.prober.start()
    wire.answer(0, status)
    assert wire.table.state("gw") == DOWN
    assert wire.table.health["gw"].last_result is not None
    assert wire.table.health["gw"].last_result.startswith(str(status))


def test_a_provisional_answer_does_not_end_the_probe(tmp_path: Path) -> None:
    wire = Wire(tmp_path, Site("gw", PBX, down_after=1, timeout=1))
    wire.prober.start()
    wire.answer(0, 100)
    assert wire.table.health["gw"].probes == 0
    wire.advance(1.1)
    assert wire.table.state("gw") == DOWN
    assert wire.table.health["gw"].last_result == "timeout"


def test_timeout_ends_the_transaction_and_a_late_answer_is_ignored(tmp_path: Path) -> None:
    wire = Wire(tmp_path, Site("gw", PBX, interval=5, timeout=2, down_after=1))
    wire.prober.start()
    assert len(wire.stack.client) == 1
    wire.advance(1.6)  # timer E retransmits meanwhile (0.5, 1.5)
    assert len(wire.udp.sent) == 3
    wire.advance(0.5)
    assert wire.table.state("gw") == DOWN
    assert wire.stack.client == {}  # no retransmissions outlive the probe
    sent = len(wire.udp.sent)
    wire.advance(2.5)
    assert len(wire.udp.sent) == sent
    wire.answer(0, 200)  # late: absorbed, not a result, not a stray for the TU to see
    assert wire.table.state("gw") == DOWN
    assert wire.table.health["gw"].probes == 1


def test_one_probe_in_flight_per_site(tmp_path: Path) -> None:
    wire = Wire(tmp_path, Site("gw", PBX, interval=1, timeout=1))
    wire.prober.start()
    wire.advance(0.5)
    wire.prober.probe("gw")  # a tick while the first is unanswered
    assert wire.prober.skipped == 1
    assert wire.prober.sent == 1


def test_a_transport_error_fails_the_probe(tmp_path: Path) -> None:
    wire = Wire(tmp_path, Site("gw", PBX, down_after=1))
    wire.prober.start()
    wire.stack.transport_error(wire.udp, PBX)
    assert wire.table.state("gw") == DOWN
    assert wire.table.health["gw"].last_result == "transport"


def test_a_missing_transport_or_an_unresolved_name_fails_without_sending(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def resolve(host: str) -> str:
        if host.endswith(".invalid"):
            raise OSError("Name or service not known")
        return host

    wire = Wire(tmp_path, Site("gw", ("gw.invalid", 5060), down_after=1),
                Site("tcp-gw", PBX, transport="tcp", down_after=1), resolve=resolve)  # fmt: skip
    wire.prober.start()
    assert wire.udp.sent == []
    assert wire.table.health["gw"].last_result == "cannot resolve gw.invalid"
    assert wire.table.health["tcp-gw"].last_result == "no tcp transport"
    assert wire.table.state("gw") == wire.table.state("tcp-gw") == DOWN
    assert caplog.messages[0] == ("site gw: cannot resolve 'gw.invalid' (Name or service not "
                                  "known); its probes fail until the engine restarts")  # fmt: skip
    assert "site tcp-gw (127.0.0.1:5090 over TCP) is down: 1 probe failed (no tcp transport)" \
        in caplog.messages  # fmt: skip


def test_resolve_host() -> None:
    assert resolve_host("127.0.0.1") == "127.0.0.1"
    assert resolve_host("::1") == "::1"
    assert resolve_host("localhost") in ("127.0.0.1", "::1")
    with pytest.raises(OSError):
        resolve_host("no-such-host.invalid")


def test_sites_json_on_start_on_transitions_and_at_most_every_interval(tmp_path: Path) -> None:
    wire = Wire(tmp_path, Site("gw", PBX, interval=5, timeout=2))
    wire.prober.start()
    document = wire.document()
    assert document["sites"] == {"gw": {  # written at start: every site unknown
        "address": "127.0.0.1:5090", "transport": "udp", "state": "unknown",
        "since": "2026-05-28T20:26:40Z", "failures": 0, "successes": 0, "probes": 0,
        "last_result": None, "last_ok": None, "last_probe": None, "numbers": []}}  # fmt: skip
    assert document["pid"] == os.getpid() and document["written_at"] == 1_780_000_000
    wire.answer(0, 200)  # a transition: written at once
    assert wire.document()["sites"]["gw"]["state"] == UP  # type: ignore[index]
    writes = []
    real = wire.prober.write

    def counting() -> None:
        writes.append(wire.clock.seconds())
        real()

    wire.prober.write = counting  # type: ignore[method-assign]
    wire.advance(0.02)
    for n in range(1, 5):
        wire.advance(5)
        wire.answer(n, 200)
    assert len(writes) == 4  # once per interval, no more
    wire.prober.write_every = 60
    wire.advance(5)
    wire.answer(5, 200)
    assert len(writes) == 4
    assert not list(tmp_path.glob(".sites.json.*"))  # no temporary left behind


def test_an_unwritable_data_dir_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    wire = Wire(blocker / "var", Site("gw", PBX))
    wire.prober.start()
    assert any("cannot write" in m for m in caplog.messages)


def test_stop_ends_probes_and_ticks(tmp_path: Path) -> None:
    wire = Wire(tmp_path, Site("gw", PBX, interval=1, timeout=1))
    wire.prober.start()
    wire.prober.stop()
    assert wire.stack.client == {}
    wire.advance(5)
    assert len(wire.udp.sent) == 1
    assert wire.table.health["gw"].probes == 0


def test_ticks_do_not_drift(tmp_path: Path) -> None:
    wire = Wire(tmp_path, Site("gw", PBX, interval=1, timeout=0.5))
    wire.prober.start()
    wire.answer(0, 200)
    wire.advance(20.05)
    assert wire.prober.sent == 21  # at 0, 1, ..., 20 s although each timer fires up to 10 ms late


# -- vms sites -----------------------------------------------------------------------------------


CONFIG = """\
sip: {trunk: "127.0.0.1:5080"}
trees: trees/
data_dir: var/
sites:
  trunk:
    numbers: ["*"]
  pbx-acme:
    address: "127.0.0.1:5090"
    numbers: ["+3225550*", "025550001"]
"""


def test_a_down_trunk_configured_as_the_readme_shows_makes_everything_unreachable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "vms.yaml"
    path.write_text("sip: {trunk: \"127.0.0.1:5080\"}\ntrees: trees/\n"
                    "sites:\n  trunk: {interval: 5}\n")  # fmt: skip
    table = SiteTable(load_config(path).sites.values(), Clock())
    for _ in range(3):
        table.record("trunk", False, "timeout")
    assert table.down() == ["trunk"]
    for number in ("+3225551234", "+32475000001", "+33123456789", "+1"):
        assert table.down_site_for(number) == "trunk"


def _command(tmp_path: Path, as_json: bool = False) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    status = run(str(tmp_path / "vms.yaml"), as_json, out, err)
    return status, out.getvalue(), err.getvalue()


def test_vms_sites_before_any_engine_ran(tmp_path: Path) -> None:
    (tmp_path / "vms.yaml").write_text(CONFIG)
    status, out, err = _command(tmp_path)
    var = tmp_path / "var"
    assert (status, err) == (0, "")
    assert out.splitlines() == [
        f"trunk     127.0.0.1:5080 udp  unknown (no engine has written sites.json under {var})"
        "  numbers *",
        f"pbx-acme  127.0.0.1:5090 udp  unknown (no engine has written sites.json under {var})"
        "  numbers +3225550*, +3225550001",
    ]


def test_vms_sites_shows_what_the_engine_wrote(tmp_path: Path) -> None:
    (tmp_path / "vms.yaml").write_text(CONFIG)
    clock = Clock()
    clock.advance(time.time())
    stack = SipStack(clock, RecordingTU(None))
    from engine.config import load_config

    config = load_config(tmp_path / "vms.yaml")
    table = SiteTable(config.sites.values(), clock)
    prober = SiteProber(stack, table, {"udp": FakeTransport()}, LOCAL, config.data_dir,
                        config.sip.trunk)  # fmt: skip
    for _ in range(3):
        table.record("pbx-acme", False, "timeout")
    table.record("trunk", True, "200 OK")
    prober.write()
    status, out, err = _command(tmp_path)
    assert (status, err) == (0, "")
    trunk, pbx = out.splitlines()
    assert trunk.startswith("trunk     127.0.0.1:5080 udp  up    since ")
    assert "last 200 OK at " in trunk and "0 failed, 1 ok in a row  numbers *" in trunk
    assert pbx.startswith("pbx-acme  127.0.0.1:5090 udp  down  since ")
    assert "last timeout at" in pbx and pbx.endswith(
        "3 failed, 0 ok in a row  numbers +3225550*, +3225550001")  # fmt: skip
    status, out, _ = _command(tmp_path, as_json=True)
    data = json.loads(out)
    assert [(s["name"], s["state"], s["failures"]) for s in data["sites"]] == [
        ("trunk", "up", 0), ("pbx-acme", "down", 3)]  # fmt: skip
    assert data["written"].endswith("Z")
    # A site the engine does not know (the configuration changed since it started).
    (tmp_path / "vms.yaml").write_text(CONFIG + '  gw:\n    address: "127.0.0.1:5095"\n')
    _, out, _ = _command(tmp_path)
    assert out.splitlines()[2] == (
        "gw        127.0.0.1:5095 udp  unknown (the engine that wrote sites.json does not probe "
        "this site)  numbers none")  # fmt: skip


def test_vms_sites_warns_when_the_file_is_stale(tmp_path: Path) -> None:
    (tmp_path / "vms.yaml").write_text(CONFIG)
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "sites.json").write_text(json.dumps(
        {"written": "2020-01-01T00:00:00Z", "written_at": 1577836800, "sites": {}}))  # fmt: skip
    status, _, err = _command(tmp_path)
    assert status == 0
    assert "was last written at 2020-01-01T00:00:00Z" in err and err.count("\n") == 1


def test_vms_sites_bad_config_and_bad_file(tmp_path: Path) -> None:
    (tmp_path / "vms.yaml").write_text(CONFIG.replace("numbers: [\"*\"]", "numbers: [\"x*\"]"))
    status, out, err = _command(tmp_path)
    assert (status, out) == (1, "")
    assert err == (f"{tmp_path / 'vms.yaml'}:6:15: site 'trunk': 'x*' is not a phone number, "
                   "a prefix ending in * or *\n")  # fmt: skip
    (tmp_path / "vms.yaml").write_text(CONFIG)
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "sites.json").write_text("{half")
    status, out, err = _command(tmp_path)
    assert (status, out) == (1, "")
    assert err.startswith(f"vms sites: {tmp_path / 'var' / 'sites.json'} is not valid JSON; ")
    assert err.count("\n") == 1


def test_vms_sites_with_no_sites(tmp_path: Path) -> None:
    (tmp_path / "vms.yaml").write_text("trees: trees/\n")
    status, out, err = _command(tmp_path)
    assert (status, out) == (0, "")
    assert "configures no sites" in err
    status, out, _ = _command(tmp_path, as_json=True)
    assert json.loads(out)["sites"] == []
