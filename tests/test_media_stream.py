"""RTP streams and the media plane on task.Clock and fake UDP ports: what goes out, when, where."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
from mediakit import HOST, PARTY, FakePort, FakeReactor, make_plane, rtp

from media.dtmf.rfc4733 import decode_event, encode_event
from media.g711 import ALAW_TO_ULAW, ULAW_TO_ALAW, ulaw_encode
from media.plane import MediaError, MediaPlane
from media.recording import RecordingWriter
from media.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    SenderReport,
    build_compound,
    parse_rtcp,
)
from media.stream import RtpStream

OTHER = ("203.0.113.9", 50000)


def setup(**kw: object) -> tuple[FakeReactor, MediaPlane, RtpStream]:
    reactor = FakeReactor()
    plane = make_plane(reactor, **kw)  # type: ignore[arg-type]
    stream = plane.open_stream()
    stream.configure(PARTY, "PCMU", 0, 101)
    return reactor, plane, stream


def port(reactor: FakeReactor, stream: RtpStream, rtcp: bool = False) -> FakePort:
    return reactor.ports[stream.port + rtcp]


def frames(count: int) -> list[bytes]:
    return [bytes([n % 256]) * 160 for n in range(count)]


def run(reactor: FakeReactor, seconds: float) -> None:
    reactor.advance(0)
    for _ in range(round(seconds / 0.02)):
        reactor.advance(0.02)


# -- ports -------------------------------------------------------------------------------------


def test_streams_get_even_ports_in_the_range_round_robin_and_run_out() -> None:
    reactor = FakeReactor()
    reactor.busy.add(20003)  # someone holds an RTCP port: that pair is skipped
    plane = make_plane(reactor, ports=(19999, 20009))
    streams = [plane.open_stream() for _ in range(3)]
    assert [s.port for s in streams] == [20000, 20004, 20006]
    assert all((s.address, s.port + 1 in reactor.ports) == (HOST, True) for s in streams)
    assert 20002 not in reactor.ports
    plane.open_stream()
    with pytest.raises(MediaError, match="no free RTP port"):
        plane.open_stream()
    assert plane.streams == 4
    streams[0].close()
    assert 20000 not in reactor.ports and 20001 not in reactor.ports
    assert plane.open_stream().port == 20000
    plane.close()
    assert plane.streams == 0 and reactor.ports == {}
    assert reactor.getDelayedCalls() == []


def test_configure_refuses_codecs_the_plane_cannot_play() -> None:
    _, _, stream = setup()
    with pytest.raises(MediaError, match="G729"):
        stream.configure(PARTY, "G729", 18, None)


# -- playing -----------------------------------------------------------------------------------


def test_play_sends_one_frame_per_tick_with_rtp_numbering_then_on_done() -> None:
    reactor, _, stream = setup()
    done: list[float] = []
    stream.play(frames(5), lambda: done.append(reactor.seconds()))
    reactor.advance(0)
    run(reactor, 0.2)
    out = port(reactor, stream).packets()
    assert [p.payload[0] for p in out] == [0, 1, 2, 3, 4]
    assert [p.marker for p in out] == [True, False, False, False, False]
    assert {p.ssrc for p in out} == {stream.ssrc}
    assert {p.payload_type for p in out} == {0}
    assert [(p.sequence - out[0].sequence) % 65536 for p in out] == [0, 1, 2, 3, 4]
    assert [(p.timestamp - out[0].timestamp) % 2**32 for p in out] == [0, 160, 320, 480, 640]
    assert {addr for _, addr in port(reactor, stream).sent} == {PARTY}
    assert done == [pytest.approx(0.08)]
    assert not stream.playing
    assert stream.stats.packets_sent == 5 and stream.stats.octets_sent == 800


def test_a_pause_moves_the_media_clock_and_stop_skips_on_done() -> None:
    reactor, _, stream = setup()
    stream.play(frames(2))
    run(reactor, 1.0)
    done: list[int] = []
    stream.play(frames(50), lambda: done.append(1))
    run(reactor, 0.1)
    stream.stop_playing()
    run(reactor, 2.0)
    out = port(reactor, stream).packets()
    assert len(out) == 2 + 6
    # The second prompt starts a second after the first ended: 50 packets' worth of samples.
    gap = (out[2].timestamp - out[1].timestamp) % 2**32
    assert gap == pytest.approx(8000 * 1.0, abs=320)
    assert out[2].marker
    assert done == []


def test_play_replaces_what_was_playing_and_empty_play_is_done_at_once() -> None:
    reactor, _, stream = setup()
    first: list[int] = []
    stream.play(frames(10), lambda: first.append(1))
    run(reactor, 0.06)
    stream.play([b"\x7f" * 160])
    run(reactor, 0.5)
    assert [p.payload[0] for p in port(reactor, stream).packets()] == [0, 1, 2, 3, 0x7F]
    assert first == []
    empty: list[int] = []
    stream.play([], lambda: empty.append(1))
    assert empty == [1]


def test_hundreds_of_playing_streams_share_two_timers() -> None:
    reactor = FakeReactor()
    plane = make_plane(reactor, ports=(20000, 21000))
    for _ in range(300):
        stream = plane.open_stream()
        stream.configure(PARTY, "PCMU", 0, None)
        stream.play(frames(100))
    assert len(reactor.getDelayedCalls()) == 2  # the pacer and the housekeeping


# -- symmetric RTP and hold --------------------------------------------------------------------


def test_the_sdp_address_or_two_packets_in_sequence_latch_and_strangers_are_dropped() -> None:
    reactor, _, stream = setup()
    rtp_port = port(reactor, stream)
    rtp_port.deliver(rtp(1, 0, pt=34), OTHER)  # not a negotiated type: no latch
    assert stream.remote == PARTY
    natted = ("198.51.100.7", 61000)
    rtp_port.deliver(rtp(1, 0), natted)  # one packet from elsewhere does not steer us
    assert stream.remote == PARTY
    rtp_port.deliver(rtp(5, 640), OTHER)  # nor does a stranger's, out of that sequence
    rtp_port.deliver(rtp(2, 160), natted)
    assert stream.remote == PARTY  # the stranger broke the candidate's run
    rtp_port.deliver(rtp(3, 320), natted)  # two in sequence: the party is behind NAT
    assert stream.remote == natted
    rtp_port.deliver(rtp(4, 480), natted)
    rtp_port.deliver(rtp(6, 800), OTHER)
    rtp_port.deliver(rtp(7, 960), OTHER)
    assert stream.remote == natted
    assert stream.stats.packets_received == 2
    stream.play(frames(1))
    run(reactor, 0.02)
    assert rtp_port.sent[-1][1] == natted
    # A refresh with the same SDP keeps the latch; a new SDP address opens it again.
    stream.configure(PARTY, "PCMU", 0, 101)
    rtp_port.deliver(rtp(8, 1120), OTHER)
    rtp_port.deliver(rtp(9, 1280), OTHER)
    assert stream.remote == natted
    moved = ("198.51.100.8", 40002)
    stream.configure(moved, "PCMU", 0, 101)
    assert stream.remote == moved
    rtp_port.deliver(rtp(10, 1440), moved)
    assert stream.remote == moved and stream.stats.packets_received == 3


def test_a_packet_from_the_sdp_address_latches_at_once() -> None:
    reactor, _, stream = setup()
    port(reactor, stream).deliver(rtp(1, 0), PARTY)
    assert stream.remote == PARTY and stream.stats.packets_received == 1


@pytest.mark.parametrize(
    ("remote", "direction"),
    [(PARTY, "recvonly"), (PARTY, "inactive"), (("0.0.0.0", 40000), "sendrecv")],
)
def test_hold_sends_nothing_but_the_prompt_runs_out_on_time(
    remote: tuple[str, int], direction: str
) -> None:
    reactor, _, stream = setup()
    stream.configure(remote, "PCMU", 0, 101, direction)
    done: list[float] = []
    stream.play(frames(10), lambda: done.append(reactor.seconds()))
    run(reactor, 0.3)
    assert port(reactor, stream).sent == []
    assert done == [pytest.approx(0.18)]
    stream.configure(PARTY, "PCMU", 0, 101, "sendrecv")
    stream.play(frames(1))
    run(reactor, 0.02)
    assert len(port(reactor, stream).sent) == 1


# -- dead media --------------------------------------------------------------------------------


def test_dead_media_fires_once_after_the_quiet_period_and_rearms_on_traffic() -> None:
    reactor, _, stream = setup(dead_media=5.0)
    dead: list[float] = []
    stream.on_dead = lambda: dead.append(reactor.seconds())
    reactor.pump([1.0] * 10)
    assert dead == []  # not watched before the party answered
    stream.watch_media()
    start = reactor.seconds()
    for second in range(4):
        port(reactor, stream).deliver(rtp(second, second * 8000))
        reactor.advance(1.0)
    reactor.pump([1.0] * 12)
    assert dead == [pytest.approx(start + 9.0, abs=1.0)]
    port(reactor, stream).deliver(rtp(5, 40000))
    reactor.pump([1.0] * 7)
    assert len(dead) == 2


def test_no_dead_media_on_hold() -> None:
    reactor, _, stream = setup(dead_media=5.0)
    stream.configure(PARTY, "PCMU", 0, 101, "recvonly")
    stream.watch_media()
    dead: list[int] = []
    stream.on_dead = lambda: dead.append(1)
    reactor.pump([1.0] * 20)
    assert dead == []


# -- digits ------------------------------------------------------------------------------------


def event_packets(digit: str, seq: int, ts: int, pt: int = 101) -> list[bytes]:
    out = [rtp(seq, ts, encode_event(digit, False, 10, 0), pt=pt, marker=True)]
    out += [rtp(seq + i, ts, encode_event(digit, False, 10, 160 * i), pt=pt) for i in (1, 2)]
    out += [rtp(seq + 3 + i, ts, encode_event(digit, True, 10, 800), pt=pt) for i in range(3)]
    return out


def test_rfc4733_events_give_each_digit_once() -> None:
    reactor, _, stream = setup()
    digits: list[tuple[str, str]] = []
    stream.on_digit = lambda digit, source: digits.append((digit, source))
    for data in event_packets("5", 1, 1000) + event_packets("#", 7, 3000):
        port(reactor, stream).deliver(data)
    assert digits == [("5", "rfc4733"), ("#", "rfc4733")]


def tone(digit_hz: tuple[float, float], seconds: float) -> np.ndarray:
    t = np.arange(round(8000 * seconds)) / 8000
    wave = sum(np.sin(2 * np.pi * f * t) for f in digit_hz)
    return np.asarray(wave * 6000, dtype=np.int16)


def inband(stream: RtpStream, reactor: FakeReactor) -> None:
    pcm = np.concatenate([tone((770, 1336), 0.1), np.zeros(800, dtype=np.int16)])
    payload = ulaw_encode(pcm)
    for n in range(len(payload) // 160):
        port(reactor, stream).deliver(rtp(n, n * 160, payload[n * 160 : n * 160 + 160]))


def test_inband_tones_are_detected_only_while_asked() -> None:
    reactor, _, stream = setup()
    stream.configure(PARTY, "PCMU", 0, None)
    digits: list[tuple[str, str]] = []
    stream.on_digit = lambda digit, source: digits.append((digit, source))
    inband(stream, reactor)
    assert digits == []
    stream.detect_inband = True
    inband(stream, reactor)
    assert digits == [("5", "inband")]
    stream.configure(PARTY, "PCMU", 0, 101)  # telephone-event too: tones still count
    inband(stream, reactor)
    assert digits == [("5", "inband"), ("5", "inband")]
    stream.detect_inband = False
    inband(stream, reactor)
    assert len(digits) == 2


def test_send_digit_sends_rfc4733_packets_and_queues_the_next() -> None:
    reactor, _, stream = setup()
    assert stream.send_digit("7", 60)
    assert stream.send_digit("8", 40)
    run(reactor, 0.6)
    out = port(reactor, stream).packets()
    assert {p.payload_type for p in out} == {101}
    events = [(decode_event(p.payload), p.marker, p.timestamp) for p in out]
    sevens = [e for e in events if e[0] is not None and e[0].digit == "7"]
    eights = [e for e in events if e[0] is not None and e[0].digit == "8"]
    assert [s[1] for s in sevens] == [True, False, False, False, False, False]
    assert [s[0].end for s in sevens if s[0] is not None] == [False] * 3 + [True] * 3
    assert len({s[2] for s in sevens}) == 1 and len(eights) == 5
    assert eights[0][1] and eights[0][2] != sevens[0][2]
    assert [(p.sequence - out[0].sequence) % 65536 for p in out] == list(range(len(out)))
    stream.configure(PARTY, "PCMU", 0, None)
    assert not stream.send_digit("1")


# -- bridge ------------------------------------------------------------------------------------


def bridged(
    a_codec: str = "PCMU", b_codec: str = "PCMA", b_dtmf: int | None = 96
) -> tuple[FakeReactor, RtpStream, RtpStream]:
    reactor = FakeReactor()
    plane = make_plane(reactor)
    a, b = plane.open_stream(), plane.open_stream()
    a.configure(PARTY, a_codec, 0 if a_codec == "PCMU" else 8, 101)
    b.configure(OTHER, b_codec, 0 if b_codec == "PCMU" else 8, b_dtmf)
    a.bridge(b)
    return reactor, a, b


def test_bridge_relays_with_our_ssrc_continuous_clock_and_transcoding() -> None:
    reactor, a, b = bridged()
    voice = bytes(range(160))
    for n in range(3):
        port(reactor, a).deliver(rtp(500 + n, 90000 + 160 * n, voice, ssrc=0xAAAA))
    port(reactor, a).deliver(rtp(504, 90000 + 160 * 4, voice, ssrc=0xAAAA))  # one lost
    out = port(reactor, b).packets()
    assert [addr for _, addr in port(reactor, b).sent] == [OTHER] * 4
    assert {(p.ssrc, p.payload_type) for p in out} == {(b.ssrc, 8)}
    assert all(p.payload == voice.translate(ULAW_TO_ALAW) for p in out)
    assert [(p.sequence - out[0].sequence) % 65536 for p in out] == [0, 1, 2, 3]
    assert [(p.timestamp - out[0].timestamp) % 2**32 for p in out] == [0, 160, 320, 640]
    assert [p.marker for p in out] == [True, False, False, False]
    # The caller's side restarts (new SSRC): the relayed stream stays ours and continuous.
    a.configure(PARTY, "PCMU", 0, 101)
    port(reactor, a).deliver(rtp(9, 7, voice, ssrc=0xBBBB))
    last = port(reactor, b).packets()[-1]
    assert last.ssrc == b.ssrc and last.marker
    assert (last.timestamp - out[-1].timestamp) % 2**32 == 160
    # And the other way: B's A-law reaches A as µ-law.
    port(reactor, b).deliver(rtp(1, 0, voice, pt=8), OTHER)
    back = port(reactor, a).packets()
    assert back[-1].payload == voice.translate(ALAW_TO_ULAW) and back[-1].ssrc == a.ssrc


def test_bridge_relays_events_with_the_peers_payload_type_or_reports_them() -> None:
    reactor, a, b = bridged(b_dtmf=96)
    digits: list[tuple[str, str]] = []
    a.on_digit = lambda digit, source: digits.append((digit, source))
    for data in event_packets("9", 1, 4000):
        port(reactor, a).deliver(data)
    out = port(reactor, b).packets()
    assert len(out) == 6 and {p.payload_type for p in out} == {96}
    assert len({p.timestamp for p in out}) == 1 and out[0].marker
    assert digits == []

    reactor, a, b = bridged(b_dtmf=None)
    a.on_digit = lambda digit, source: digits.append((digit, source))
    for data in event_packets("9", 1, 4000):
        port(reactor, a).deliver(data)
    assert port(reactor, b).sent == []
    assert digits == [("9", "rfc4733")]


def test_playing_on_a_bridged_stream_pauses_the_relay_towards_it() -> None:
    reactor, a, b = bridged("PCMU", "PCMU")
    b.play(frames(3))
    port(reactor, a).deliver(rtp(1, 0, b"\x01" * 160))
    run(reactor, 0.1)
    port(reactor, a).deliver(rtp(2, 160, b"\x02" * 160))
    out = port(reactor, b).packets()
    assert [p.payload[0] for p in out] == [0, 1, 2, 2]
    assert out[3].marker
    assert [(p.timestamp - out[0].timestamp) % 2**32 for p in out][:3] == [0, 160, 320]
    assert (out[3].timestamp - out[2].timestamp) % 2**32 >= 160
    a.unbridge()
    port(reactor, a).deliver(rtp(3, 320, b"\x03" * 160))
    assert len(port(reactor, b).sent) == 4 and b.bridged_to is None


def test_record_taps_both_directions_into_a_wav(tmp_path: Path) -> None:
    reactor, a, b = bridged("PCMU", "PCMA")
    with pytest.raises(MediaError):
        make_plane(reactor, ports=(30000, 30010)).open_stream().record(object())  # type: ignore[arg-type]
    writer = RecordingWriter(tmp_path / "call.wav", 2)
    a.record(writer)
    reactor.advance(0)  # the first tick: nothing heard yet, silence on both channels
    loud = ulaw_encode(np.full(160, 8000, dtype=np.int16))
    for n in range(50):
        port(reactor, a).deliver(rtp(n, n * 160, loud))
        if n % 2 == 0:  # the other side is heard every other tick only
            port(reactor, b).deliver(rtp(n, n * 160, b"\xd5" * 160, pt=8), OTHER)
        reactor.advance(0.02)
    for n in range(50, 60):  # a burst beyond the queue: the overflow is dropped
        port(reactor, a).deliver(rtp(n, n * 160, loud))
    reactor.advance(0.02)
    b.unbridge()
    run(reactor, 0.2)
    audio, rate = soundfile.read(str(writer.close()), dtype="int16")
    assert rate == 8000 and audio.shape == (52 * 160, 2)
    assert np.all(np.abs(audio[:160]) < 16)
    assert np.all(np.abs(audio[160:, 0] - 8000) < 300)
    assert np.all(np.abs(audio[:, 1]) < 16)


# -- RTCP --------------------------------------------------------------------------------------


def test_rtcp_reports_while_sending_bye_at_close_and_incoming_reports_in_stats() -> None:
    reactor, _, stream = setup()
    rtcp_port = port(reactor, stream, rtcp=True)
    run(reactor, 8.0)
    first = [parse_rtcp(data) for data, _ in rtcp_port.sent]
    assert first and all(isinstance(p[0], ReceiverReport) for p in first if p)
    stream.play(frames(400))
    run(reactor, 8.0)
    reports = [parse_rtcp(data) for data, addr in rtcp_port.sent]
    assert {addr for _, addr in rtcp_port.sent} == {(PARTY[0], PARTY[1] + 1)}
    sr = [p[0] for p in reports if p and isinstance(p[0], SenderReport)]
    assert sr and sr[-1].ssrc == stream.ssrc and sr[-1].packet_count > 100
    # The party's SR and its report block about us.
    for n in range(5):
        port(reactor, stream).deliver(rtp(n, n * 160, ssrc=0x5555))
    block = ReportBlock(stream.ssrc, 12, 3, 1000, 40)
    theirs = SenderReport(0x5555, 1 << 40, 800, 5, 800, (block,))
    rtcp_port.deliver(build_compound(theirs, "party@x", Bye((0x5555,))), ("198.51.100.7", 40001))
    assert stream.stats.rtcp_received == 1 and stream.stats.remote_report == block
    assert stream.stats.packets_received == 5 and stream.stats.lost == 0
    stream.close()
    bye = parse_rtcp(rtcp_port.sent[-1][0])
    assert bye is not None and isinstance(bye[-1], Bye) and bye[-1].ssrcs == (stream.ssrc,)
    assert isinstance(bye[0], SenderReport) and bye[0].reports[0].ssrc == 0x5555
