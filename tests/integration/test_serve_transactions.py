"""INVITE transactions over UDP against a real server: retransmissions and the ACK.

Every server transaction tags its responses with a To tag of its own, and a
decision is made once per transaction (when it starts). A retransmitted
INVITE answered with the first answer's To tag, byte for byte, was therefore
matched to that transaction and not decided again; a new INVITE gets a new
tag.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from vmskit import (
    TRUNK,
    ServeFactory,
    Server,
    UdpPeer,
    ack_for,
    contact_regexp,
    contacts,
    parse,
    request,
    run_sipp,
    scenario,
    tree,
)

pytestmark = pytest.mark.integration

NUMBER, DESK = "+3225550200", "+3225550201"
CONTACT = f"<sip:{DESK}@{TRUNK[0]}:{TRUNK[1]}>"


@pytest.fixture(scope="module")
def server(serve_module: ServeFactory) -> Server:
    routes = f'  - name: desk\n    do: {{forward: "{DESK}"}}\n'
    return serve_module({"desk.yaml": tree(NUMBER, routes)}, [NUMBER], name="transactions")


def test_sipp_retransmitted_invite_gets_the_same_302(
    sipp: str, server: Server, tmp_path: Path
) -> None:
    """SIPp sends each INVITE twice (same branch); both 302s carry one To tag."""
    path = scenario(tmp_path, "retrans_uac.xml", CONTACT_REGEXP=contact_regexp(DESK))
    result = run_sipp(sipp, tmp_path, path, server.sip, service=NUMBER, calls=5, rate=20,
                      keys={"caller": "+3227001122"}, extra=("-nr",))  # fmt: skip
    assert result.returncode == 0, result.explain()
    assert (result.successful, result.failed) == (5, 0), result.explain()


def test_identical_invites_get_byte_identical_responses(server: Server) -> None:
    with UdpPeer() as peer:
        data = request("INVITE", NUMBER, server.sip, peer.local)
        branch = parse(data).branch or ""
        for _ in range(3):
            peer.send(data, server.sip)
        answers = [peer.final(branch) for _ in range(3)]
        assert len({a.raw for a in answers}) == 1, [a.raw for a in answers]
        first = answers[0]
        assert first.status == 302 and contacts(first) == [CONTACT]
        assert first.to_tag
        # A new transaction (a new branch, the same call otherwise) is decided anew.
        again = data.replace(branch.encode(), b"z9hG4bK-another-one")
        peer.send(again, server.sip)
        other = peer.final("z9hG4bK-another-one")
        assert other.status == 302 and other.to_tag != first.to_tag
        for message, response in ((data, first), (again, other)):
            peer.send(ack_for(message, response), server.sip)


def test_the_302_is_retransmitted_until_the_ack_and_not_after(server: Server) -> None:
    """Timer G resends the 302 over UDP (T1 = 0.5 s); the ACK stops it for good."""
    with UdpPeer() as peer:
        data, first = peer.invite(NUMBER, server.sip)
        branch = parse(data).branch or ""
        resent = peer.final(branch, timeout=5.0)  # the first retransmission, after ~T1
        assert resent.raw == first.raw
        peer.send(ack_for(data, first), server.sip)
        # The OPTIONS is handled after the ACK: whatever the server sent
        # before answering it may still be on its way; after, nothing may come.
        probe = request("OPTIONS", NUMBER, server.sip, peer.local)
        peer.send(probe, server.sip)
        assert peer.final(parse(probe).branch or "").status == 200
        quiet_until = time.monotonic() + 2.0
        late = []
        while (left := quiet_until - time.monotonic()) > 0:
            message = peer.receive(left)
            if message is not None:
                late.append(message.start)
        assert late == [], "the 302 was retransmitted after its ACK"
