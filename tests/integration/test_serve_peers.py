"""Only configured peers are served: a loopback request to a server that trusts
``10.0.0.0/8`` gets 403 and no routing decision."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmskit import ServeFactory, UdpPeer, ack_for, parse, request, run_sipp, scenario, tree

pytestmark = pytest.mark.integration

NUMBER = "+3225550700"


def test_a_request_from_outside_the_peers_gets_403_and_no_302(
    sipp: str, serve: ServeFactory, tmp_path: Path
) -> None:
    routes = '  - name: desk\n    do: {forward: "+3225550701"}\n'
    server = serve({"desk.yaml": tree(NUMBER, routes)}, [NUMBER], sip={"peers": ["10.0.0.0/8"]})
    path = scenario(tmp_path, "final_uac.xml", FINAL_STATUS="403")
    result = run_sipp(sipp, tmp_path, path, server.sip, service=NUMBER, calls=3,
                      keys={"caller": "+3227001122"})  # fmt: skip
    assert result.returncode == 0, result.explain()
    assert (result.successful, result.failed) == (3, 0), result.explain()
    with UdpPeer() as peer:
        invite = request("INVITE", NUMBER, server.sip, peer.local)
        peer.send(invite, server.sip)
        branch = parse(invite).branch or ""
        first = peer.final(branch)
        assert first.status == 403
        peer.send(ack_for(invite, first), server.sip)
        # Everything up to the answer to a later request: only that 403 (or
        # copies of it, resent before the ACK arrived), never a 302.
        options = request("OPTIONS", NUMBER, server.sip, peer.local)
        peer.send(options, server.sip)
        seen = []
        while (message := peer.receive(5.0)) is not None:
            if message.branch == parse(options).branch:
                break
            seen.append(message.raw)
        assert message is not None and message.status == 403  # not a peer for OPTIONS either
        assert set(seen) <= {first.raw}, seen
    server.wait_stderr(r"refused SIP from 127\.0\.0\.1: not a configured peer")
