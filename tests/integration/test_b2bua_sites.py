"""B2BUA mode: a site that its health checks mark down makes its destinations unreachable.

A SIPp OPTIONS responder (``tests/sipp/options_uas.xml``) plays the site
whose numbers include the destination; the calls themselves still go to
the trunk (a SIPp UAS running ``tests/sipp/b2bua_trunk.xml``, where a
destination ending in 3 answers). The responder is stopped until
``vms sites --json`` says the site is down; a call to the destination is
then unreachable at once, with no INVITE to the trunk, and follows
``on_unreachable``. The responder comes back, the site is up again, and the
next call goes through.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vmskit import (
    ServeFactory,
    Server,
    b2bua,
    caller_call_ids,
    run_sipp,
    run_vms,
    scenario,
    tree,
    wait_calls,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CALLER = "+3227001122"
NUMBER, BEHIND_SITE, ELSEWHERE = "+3225551301", "+3225550303", "+32475001313"


def site_state(server: Server, name: str) -> str:
    done = run_vms("sites", "--config", str(server.config), "--json")
    assert done.returncode == 0, done.stderr
    (row,) = [r for r in json.loads(done.stdout)["sites"] if r["name"] == name]
    return str(row["state"])


def wait_site(server: Server, name: str, state: str, timeout: float = 15.0) -> None:
    wait_until(f"vms sites says {name} is {state}", lambda: site_state(server, name) == state,
               timeout, interval=0.2)  # fmt: skip


def test_a_site_going_down_and_up(
    sipp: str, serve: ServeFactory, sipp_peers: Any, tmp_path: Path
) -> None:
    trunk = sipp_peers("b2bua_trunk.xml")
    site = sipp_peers("options_uas.xml")
    routes = (f'  - name: desk\n    do:\n      forward: "{BEHIND_SITE}"\n'
              f'      on_unreachable: {{forward: "{ELSEWHERE}"}}\n')  # fmt: skip
    sites = {"gw": {"address": site.hostport, "numbers": [BEHIND_SITE], "interval": 1,
                    "down_after": 2, "up_after": 2}}  # fmt: skip
    sip = b2bua(trunk.hostport)
    server = serve({"desk.yaml": tree(NUMBER, routes)}, [NUMBER], sip=sip, extra={"sites": sites})
    xml = scenario(tmp_path, "b2bua_uac.xml")

    def one_call() -> str:
        result = run_sipp(sipp, tmp_path, xml, server.sip, service=NUMBER,
                          keys={"caller": CALLER}, extra=("-d", "200"), trace=True)  # fmt: skip
        assert (result.successful, result.failed) == (1, 0), result.explain()
        (call_id,) = caller_call_ids(result.messages)
        return call_id

    wait_site(server, "gw", "up")
    site.stop()
    wait_site(server, "gw", "down")
    server.wait_stderr(r"site gw \(127\.0\.0\.1:\d+\) is down: 2 probes failed")
    down_call = one_call()
    legs = wait_calls(server.config, {down_call: 3})[down_call]
    assert [(r["destination"], r["outcome"], r["action_path"]) for r in legs] == [
        (None, "answered", ""),
        (BEHIND_SITE, "unreachable", ""),
        (ELSEWHERE, "answered", "on_unreachable"),
    ]
    assert legs[1]["reason"] == "site gw is down" and legs[1]["duration"] == 0
    assert legs[1]["start"] == legs[1]["end"]  # at once: not placed, no ring timeout
    placed = [m.message.start.split()[1].split("@")[0] for m in trunk.invites()]
    assert placed == [f"sip:{ELSEWHERE}"]  # no INVITE to the destination behind the down site

    site.restart()
    wait_site(server, "gw", "up")
    up_call = one_call()
    legs = wait_calls(server.config, {up_call: 2})[up_call]
    assert [(r["destination"], r["outcome"]) for r in legs] == [
        (None, "answered"), (BEHIND_SITE, "answered")]  # fmt: skip
    placed = [m.message.start.split()[1].split("@")[0] for m in trunk.invites()]
    assert placed == [f"sip:{ELSEWHERE}", f"sip:{BEHIND_SITE}"]
