"""Redirect mode against SIPp: the 302 and its Contact for each kind of call (contract.md).

One ``vms serve`` serves the module. Its trees are written at start relative
to the present in the trees' timezone (Asia/Kolkata, five and a half hours
off UTC, so a tree evaluated in the wrong zone picks the wrong window): the
engine reads the real clock, and every window keeps an hour between now and
its edges.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from vmskit import (
    REPO,
    TRUNK,
    Clockwork,
    ServeFactory,
    Server,
    UdpPeer,
    contact_regexp,
    contacts,
    run_sipp,
    scenario,
    tree,
)

pytestmark = pytest.mark.integration

TZ = "Asia/Kolkata"
MAIN = "+3225550100"  # lists, anonymous, office hours
FAILOVER = "+3225550101"
REJECT = "+3225550102"
NO_RULE = "+3225550103"
WINDOWS = "+3225550104"
MIDNIGHT = "+3225550105"
CALENDAR = "+3225550106"
MEDIA = "+3225550107"  # an announcement: not servable by a redirect server
UNKNOWN = "+3225550199"  # nobody's
ORDINARY = "+3227001122"  # in no list
OFFICE, VIP_DESK, WITHHELD_DESK = "+3225550001", "+32475999999", "+3225559001"
FAILOVER_CHAIN = ["+3225550011", "+32475000001", "+32475000002", "+32475000003"]
#: RFC 3261 §25.1 qvalue.
QVALUE = re.compile(r"^(0(\.\d{0,3})?|1(\.0{0,3})?)$")


def trees(clock: Clockwork) -> dict[str, str]:
    today = clock.today()
    crossing_in, crossing_out = clock.crossing_windows()

    def day(offset: int) -> str:
        return (today + timedelta(days=offset)).isoformat()

    return {
        "main.yaml": tree(
            MAIN,
            timezone=TZ,
            head=('lists:\n  vip: ["+32475123456", "+3226*"]\n  blocked: ["+3290*"]\n'),
            routes=f"""\
  - name: blocked
    when: {{caller_in: blocked}}
    do: {{reject: 603}}
  - name: withheld
    when: {{anonymous: true}}
    do: {{forward: "{WITHHELD_DESK}"}}
  - name: vip
    when: {{caller_in: vip}}
    do: {{forward: "{VIP_DESK}", timeout: 15}}
  - name: office-hours
    when: {{time: "{clock.open_window()}"}}
    do: {{forward: "{OFFICE}", timeout: 20}}
  - name: after-hours
    do: {{reject: 486}}
""",
        ),
        "failover.yaml": tree(
            FAILOVER,
            timezone=TZ,
            routes=f"""\
  - name: with-failover
    do:
      forward: "{FAILOVER_CHAIN[0]}"
      timeout: 20
      on_busy: {{forward: "{FAILOVER_CHAIN[1]}"}}
      on_no_answer:
        forward: "{FAILOVER_CHAIN[2]}"
        on_no_answer: {{forward: "{FAILOVER_CHAIN[3]}"}}
      on_unreachable: {{forward: "{FAILOVER_CHAIN[1]}"}}
""",
        ),
        "reject.yaml": tree(
            REJECT,
            timezone=TZ,
            routes="""\
  - name: refuse
    do: {reject: 603}
""",
        ),
        "norule.yaml": tree(
            NO_RULE,
            timezone=TZ,
            head='lists:\n  vip: ["+32475123456"]\n',
            routes="""\
  - name: vip-only
    when: {caller_in: vip}
    do: {forward: "+3225550031"}
""",
        ),
        "windows.yaml": tree(
            WINDOWS,
            timezone=TZ,
            routes=f"""\
  - name: later-today
    when: {{time: "{clock.closed_window()}"}}
    do: {{forward: "+3225550041"}}
  - name: around-now
    when: {{time: "{clock.open_window()}"}}
    do: {{forward: "+3225550042"}}
  - name: otherwise
    do: {{reject: 486}}
""",
        ),
        "midnight.yaml": tree(
            MIDNIGHT,
            timezone=TZ,
            routes=f"""\
  - name: other-night
    when: {{time: "{crossing_out}"}}
    do: {{forward: "+3225550051"}}
  - name: this-night
    when: {{time: "{crossing_in}"}}
    do: {{forward: "+3225550052"}}
  - name: otherwise
    do: {{reject: 486}}
""",
        ),
        "media.yaml": tree(
            MEDIA,
            timezone=TZ,
            head="prompts:\n  closed: closed-nl.wav\n",
            routes="  - name: closed\n    do: {announce: closed}\n",
        ),
        "calendar.yaml": tree(
            CALENDAR,
            timezone=TZ,
            head=(
                f'calendars:\n  other-days: ["{day(-3)}", "{day(3)}..{day(9)}"]\n'
                f'  these-days: ["{day(0)}", "{day(1)}"]\n'
            ),
            routes="""\
  - name: other-days
    when: {date_in: other-days}
    do: {forward: "+3225550061"}
  - name: these-days
    when: {date_in: these-days}
    do: {forward: "+3225550062"}
  - name: otherwise
    do: {reject: 486}
""",
        ),
    }


@pytest.fixture(scope="module")
def clock() -> Clockwork:
    return Clockwork.at_present(TZ)


@pytest.fixture(scope="module")
def server(serve_module: ServeFactory, clock: Clockwork) -> Server:
    numbers = [MAIN, FAILOVER, REJECT, NO_RULE, WINDOWS, MIDNIGHT, CALENDAR, MEDIA]
    prompt = (REPO / "routing_trees" / "examples" / "prompts" / "closed-nl.wav").read_bytes()
    return serve_module(trees(clock), numbers, name="redirect",
                        files={"closed-nl.wav": prompt})  # fmt: skip


def expect_302(
    sipp: str,
    server: Server,
    work: Path,
    service: str,
    destination: str,
    *,
    caller: str = ORDINARY,
    calls: int = 1,
    xml: str = "redirect_uac.xml",
) -> None:
    """SIPp places ``calls`` calls; each must get a 302 to exactly ``destination``."""
    path = scenario(work, xml, CONTACT_REGEXP=contact_regexp(destination))
    result = run_sipp(sipp, work, path, server.sip, service=service, calls=calls,
                      keys={"caller": caller})  # fmt: skip
    assert result.returncode == 0, result.explain()
    assert (result.successful, result.failed) == (calls, 0), result.explain()


def expect_final(sipp: str, server: Server, work: Path, service: str, status: int, *,
                 caller: str = ORDINARY) -> None:  # fmt: skip
    path = scenario(work, "final_uac.xml", FINAL_STATUS=str(status))
    result = run_sipp(sipp, work, path, server.sip, service=service, keys={"caller": caller})
    assert result.returncode == 0, result.explain()
    assert (result.successful, result.failed) == (1, 0), result.explain()


def test_an_ordinary_caller_in_office_hours_gets_the_office(
    sipp: str, server: Server, tmp_path: Path
) -> None:
    expect_302(sipp, server, tmp_path, MAIN, OFFICE, calls=5)


@pytest.mark.parametrize("caller", ["+32475123456", "0475123456", "+3226001122", "003226001122"])
def test_a_caller_in_a_list_exact_or_by_prefix(
    sipp: str, server: Server, tmp_path: Path, caller: str
) -> None:
    """``vip: ["+32475123456", "+3226*"]``: the number (in any form) and the prefix."""
    expect_302(sipp, server, tmp_path, MAIN, VIP_DESK, caller=caller)


def test_a_caller_in_a_blocked_prefix_list_gets_603(
    sipp: str, server: Server, tmp_path: Path
) -> None:
    expect_final(sipp, server, tmp_path, MAIN, 603, caller="+3290123456")


def test_an_anonymous_caller_is_routed_as_anonymous(
    sipp: str, server: Server, tmp_path: Path
) -> None:
    """From ``"Anonymous" <sip:anonymous@anonymous.invalid>`` with ``Privacy: id``."""
    expect_302(sipp, server, tmp_path, MAIN, WITHHELD_DESK, xml="anonymous_uac.xml")


def test_privacy_id_hides_a_listed_callers_number(server: Server) -> None:
    """A VIP who withholds its number is anonymous to the tree (raw socket: a real From)."""
    with UdpPeer() as peer:
        response = peer.call(MAIN, server.sip, caller="+32475123456", extra="Privacy: id\r\n")
    assert response.status == 302
    assert contacts(response) == [f"<sip:{WITHHELD_DESK}@{TRUNK[0]}:{TRUNK[1]}>"]


@pytest.mark.parametrize("service", ["025550100", "%2B3225550100", "003225550100",
                                     "+3225550100"])  # fmt: skip
def test_the_called_number_in_any_form_is_normalised(
    sipp: str, server: Server, tmp_path: Path, service: str
) -> None:
    """National form and a %-escaped ``+`` in the Request-URI reach the same tree."""
    expect_302(sipp, server, tmp_path, service, OFFICE)


def test_failover_branches_follow_as_contacts_with_falling_q(
    sipp: str, server: Server, tmp_path: Path
) -> None:
    """SIPp checks the Contact header fields, in order, with their q-values."""
    host = rf"{re.escape(TRUNK[0])}:{TRUNK[1]}"
    qs = [r"1(\.0{1,3})?", r"0?\.750?", r"0?\.50{0,2}", r"0?\.250?"]
    regexp = r"[[:space:]]+".join(
        rf"Contact: <sip:{re.escape(number)}@{host}>;q={q}"
        for number, q in zip(FAILOVER_CHAIN, qs, strict=True)
    )
    path = scenario(tmp_path, "failover_uac.xml", CONTACTS_REGEXP=regexp + r"[[:space:]]")
    result = run_sipp(sipp, tmp_path, path, server.sip, service=FAILOVER, calls=3,
                      keys={"caller": ORDINARY})  # fmt: skip
    assert result.returncode == 0, result.explain()
    assert (result.successful, result.failed) == (3, 0), result.explain()


def test_failover_contacts_parsed(server: Server) -> None:
    """The same 302 read field by field: order, each once, valid and falling q-values."""
    with UdpPeer() as peer:
        response = peer.call(FAILOVER, server.sip)
    assert response.status == 302
    found = contacts(response)
    uris = [c.partition(";")[0] for c in found]
    assert uris == [f"<sip:{n}@{TRUNK[0]}:{TRUNK[1]}>" for n in FAILOVER_CHAIN]
    qs = [c.partition(";q=")[2] for c in found]
    assert all(QVALUE.match(q) for q in qs), qs
    assert [float(q) for q in qs] == [1.0, 0.75, 0.5, 0.25]


def test_reject_603_is_sent_and_acknowledged(sipp: str, server: Server, tmp_path: Path) -> None:
    expect_final(sipp, server, tmp_path, REJECT, 603)


def test_an_unknown_number_gets_404(sipp: str, server: Server, tmp_path: Path) -> None:
    expect_final(sipp, server, tmp_path, UNKNOWN, 404)


def test_a_served_number_where_no_rule_holds_gets_480(
    sipp: str, server: Server, tmp_path: Path
) -> None:
    expect_final(sipp, server, tmp_path, NO_RULE, 480)


def test_the_window_holding_now_wins_over_one_that_does_not(
    sipp: str, server: Server, tmp_path: Path
) -> None:
    expect_302(sipp, server, tmp_path, WINDOWS, "+3225550042")


def test_a_window_crossing_midnight_holds_on_both_sides(
    sipp: str, server: Server, tmp_path: Path
) -> None:
    """Tonight's window (or last night's, in the morning) holds; the other night's does not."""
    expect_302(sipp, server, tmp_path, MIDNIGHT, "+3225550052")


def test_the_calendar_holding_today_wins(sipp: str, server: Server, tmp_path: Path) -> None:
    expect_302(sipp, server, tmp_path, CALENDAR, "+3225550062")


def test_an_action_that_needs_media_gets_480_and_was_reported_at_start(
    sipp: str, server: Server, tmp_path: Path
) -> None:
    """Redirect mode cannot announce: the call gets 480, and the start-up log named the rule."""
    expect_final(sipp, server, tmp_path, MEDIA, 480)
    where = re.escape(str((server.trees / "media.yaml").resolve()))
    server.wait_stderr(rf"WARNING vms: {where}:\d+:\d+: rule 'closed': announce needs media; "
                       r"calls matching this rule get 480")  # fmt: skip
