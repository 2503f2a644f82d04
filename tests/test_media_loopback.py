"""Two media planes on real UDP sockets on 127.0.0.1: a prompt, a digit and a bridge end to end."""

from __future__ import annotations

from pathlib import Path

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from media.plane import MediaPlane
from media.prompts import load_prompt
from media.rtp import RtpPacket, parse_rtp
from media.stream import RtpStream

PROMPT = Path("/work/shared/data/prompts/campaign-en.wav")
LOCAL = "127.0.0.1"


def tap(stream: RtpStream) -> list[RtpPacket]:
    """Keep a parsed copy of every datagram the stream receives, then let the stream have it."""
    seen: list[RtpPacket] = []
    protocol = stream.rtp_protocol
    handler = protocol._handler

    def spy(data: bytes, addr: tuple[str, int]) -> None:
        packet = parse_rtp(data)
        if packet is not None:
            seen.append(packet)
        handler(data, addr)

    protocol._handler = spy
    return seen


async def until(condition: object, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if callable(condition) and condition():
            return
        await deferLater(reactor, 0.01, lambda: None)
    raise AssertionError("timed out waiting for packets")


@pytest_twisted.ensureDeferred
async def test_a_prompt_a_digit_and_a_bridge_across_two_planes() -> None:
    engine = MediaPlane(reactor, LOCAL, LOCAL, (41000, 41199))
    peer = MediaPlane(reactor, LOCAL, LOCAL, (41200, 41399))
    try:
        caller, caller_phone = engine.open_stream(), peer.open_stream()
        callee, callee_phone = engine.open_stream(), peer.open_stream()
        ports = [s.port for s in (caller, callee, caller_phone, callee_phone)]
        assert all(p % 2 == 0 for p in ports)
        assert 41000 <= caller.port < 41200 and 41200 <= caller_phone.port < 41400
        caller.configure((LOCAL, caller_phone.port), "PCMU", 0, 101)
        caller_phone.configure((LOCAL, caller.port), "PCMU", 0, 101)
        callee.configure((LOCAL, callee_phone.port), "PCMA", 8, 96)
        callee_phone.configure((LOCAL, callee.port), "PCMA", 8, 96)
        heard_by_caller = tap(caller_phone)
        heard_by_callee = tap(callee_phone)

        frames = load_prompt(PROMPT).frames("PCMU")[:25]
        done: Deferred[None] = Deferred()
        caller.play(frames, lambda: done.callback(None))
        await done
        await until(lambda: len(heard_by_caller) == 25)
        assert [p.payload for p in heard_by_caller] == list(frames)
        assert {p.ssrc for p in heard_by_caller} == {caller.ssrc}
        first = heard_by_caller[0]
        assert [(p.sequence - first.sequence) % 65536 for p in heard_by_caller] == list(range(25))
        assert [(p.timestamp - first.timestamp) % 2**32 for p in heard_by_caller] == [
            160 * n for n in range(25)
        ]
        assert caller_phone.remote == (LOCAL, caller.port)

        digits: list[tuple[str, str]] = []
        caller_phone.on_digit = lambda digit, source: digits.append((digit, source))
        caller.send_digit("5")
        await until(lambda: digits == [("5", "rfc4733")])

        # The caller's phone talks; the engine relays to the callee's phone as A-law.
        caller.bridge(callee)
        caller_phone.play(frames)
        await until(lambda: len([p for p in heard_by_callee if p.payload_type == 8]) == 25)
        relayed = [p for p in heard_by_callee if p.payload_type == 8]
        assert {p.ssrc for p in relayed} == {callee.ssrc}
        assert [(p.sequence - relayed[0].sequence) % 65536 for p in relayed] == list(range(25))
        assert callee.stats.packets_sent == 25 and caller.stats.packets_received >= 25
        assert callee_phone.stats.lost == 0 and callee_phone.remote == (LOCAL, callee.port)
    finally:
        engine.close()
        peer.close()
    assert engine.streams == 0 and peer.streams == 0
