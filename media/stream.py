"""One RTP stream of the engine: a pair of UDP ports, what it plays, hears and relays.

A stream is the engine's end of one party's media: prompts and digits go
out on it, the party's audio and digits come in, and a bridge relays what
one party says to the other. The plane (``media.plane``) owns the sockets
and the clocks; the stream decides, packet by packet.

Sending (RFC 3550). Each stream has one random SSRC, sequence and media
clock (``media.rtp.RtpSender``) for everything it sends: prompts,
RFC 4733 events and relayed audio, so the party sees one continuous
source whatever the engine does. A pause moves the media clock by the
time that passed, a new source (prompt start, relay start) sets the
marker bit. Prompts are paced by the plane's shared 20 ms ``Pacer``.

Symmetric RTP. Parties behind NAT announce an address they cannot be
reached at, so we send to where their packets come from. After
``configure`` the stream latches to the first packet of a negotiated
payload type from the SDP address, or, from any other address, to the
second of two packets in sequence from it (one stray packet cannot steer
our media; a stray packet of another type never counts). After that,
packets from any other address are counted in ``foreign`` and dropped. A
re-INVITE with the same SDP address (a session refresh, hold) keeps the
latch; a new address opens it again.

Direction. ``direction`` is ours as negotiated (``media.sdp``: the mirror
of the party's): when the party holds us (its ``sendonly`` or ``inactive``,
so ours is ``recvonly`` or ``inactive``) or its address is 0.0.0.0, we send
nothing; prompts keep running silently so their ``on_done`` comes on time.
Dead media is watched once the call controller asks (``watch_media``: the
party answered; before that, many phones send nothing) and only while the
direction is ``sendrecv``.

Digits. RFC 4733 events are reported once per event. When the stream is
bridged to a peer that negotiated telephone-event and is not playing, the
event is relayed to it instead (its payload type, its SSRC); otherwise it
becomes ``on_digit(digit, "rfc4733")``, so each digit goes exactly one way.
In-band tones are looked for while ``detect_inband`` is set (a menu
listens), whether or not telephone-event was negotiated: gateways that
negotiate it still pass some callers' tones in the audio, and the call's
digit collector counts a press that arrives both ways once.

The receive path parses the header once and does no logging or string
formatting per packet.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from twisted.internet.protocol import DatagramProtocol

from media.dtmf.rfc4733 import EventPacket, EventReceiver, EventSender
from media.dtmf.tones import ToneDetector
from media.g711 import ALAW_TO_ULAW, ULAW_TO_ALAW, alaw_decode, ulaw_decode
from media.pacer import PACKET_INTERVAL
from media.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    SenderReport,
    build_compound,
    ntp_middle32,
    ntp_timestamp,
    parse_rtcp,
)
from media.rtp import RtpReceiverStats, RtpSender, parse_rtp

if TYPE_CHECKING:
    from media.plane import MediaPlane
    from media.recording import RecordingWriter

__all__ = ["CODECS", "MediaError", "RtpStream", "StreamStats"]

log = logging.getLogger(__name__)

CODECS = frozenset({"PCMU", "PCMA"})
CLOCK_RATE = 8000
FRAME_SAMPLES = 160
"""Samples in one 20 ms G.711 packet."""
TAP_QUEUE = 5
"""Frames (100 ms) a recording keeps per direction for late packets; more are dropped."""

_TS_MOD = 1 << 32
_TRANSLATE = {("PCMU", "PCMA"): ULAW_TO_ALAW, ("PCMA", "PCMU"): ALAW_TO_ULAW}
_DECODE = {"PCMU": ulaw_decode, "PCMA": alaw_decode}
_SENDING = frozenset({"sendrecv", "sendonly"})
_DIRECTIONS = frozenset({"sendrecv", "sendonly", "recvonly", "inactive"})
_HOLD_HOSTS = frozenset({"0.0.0.0", "::"})
_EVENT_GAP_MS = 40
"""Pause between two queued digits, so the far end sees two key presses."""

Address = tuple[str, int]


class MediaError(Exception):
    """The media plane cannot do what was asked (no port left, unknown codec, no bridge)."""


@dataclass(frozen=True, slots=True)
class StreamStats:
    """What a stream sent and received; ``lost`` and ``jitter_ms`` follow RFC 3550 A.3 and A.8."""

    packets_sent: int
    octets_sent: int
    packets_received: int
    octets_received: int
    lost: int
    jitter_ms: float
    foreign: int
    """Packets dropped because they came from somewhere other than the latched party."""
    rtcp_received: int
    remote_report: ReportBlock | None
    """The party's last report block about our stream (its view of loss and jitter)."""


def _unbound(data: bytes, addr: Address) -> int:
    raise MediaError("the stream has no socket yet (MediaPlane.open_stream attaches one)")


class _Socket(DatagramProtocol):
    """A plain DatagramProtocol that hands its datagrams to one of the stream's handlers."""

    def __init__(self, handler: Callable[[bytes, Address], None]) -> None:
        self._handler = handler

    def datagramReceived(self, datagram: bytes, addr: Address) -> None:  # noqa: N802
        self._handler(datagram, addr)


class RtpStream:
    """One party's media on the engine; created by ``MediaPlane.open_stream``."""

    def __init__(self, plane: MediaPlane, address: str, port: int) -> None:
        self._plane = plane
        self._clock = plane.reactor
        self.address = address
        self.port = port
        self.rtp_protocol = _Socket(self._on_rtp)
        self.rtcp_protocol = _Socket(self._on_rtcp)
        self._rtp_port: Any = None
        self._rtcp_port: Any = None
        self._rtp_sendto: Callable[[bytes, Address], int] = _unbound
        self._rtcp_sendto: Callable[[bytes, Address], int] = _unbound
        self.on_digit: Callable[[str, str], None] | None = None
        self.on_dead: Callable[[], None] | None = None
        self.detect_inband = False
        self.closed = False
        # Negotiated from SDP.
        self._codec = ""
        self._pt = -1
        self._dtmf_pt: int | None = None
        self._sdp_remote: Address | None = None
        self._remote: Address | None = None
        self._rtcp_remote: Address | None = None
        self._latch_pending = False
        self._rtcp_latch_pending = False
        self._candidate: tuple[Address, int] | None = None  # a NAT source and its next sequence
        self._send_ok = False
        self._expect_media = False
        self._watching = False
        # Sending.
        self._sender = RtpSender(0, plane.rng)
        self._last_sent_at: float | None = None
        self._octets_sent = 0
        self.send_errors = 0
        """Datagrams the kernel refused (full buffer, unreachable): RTP is lossy, we go on."""
        self._frames: Sequence[bytes] | None = None
        self._frame_index = 0
        self._on_done: Callable[[], None] | None = None
        self._digits: deque[tuple[str, int]] = deque()
        self._events: list[EventPacket] = []
        self._event_ms = 0
        # Receiving.
        self._stats = RtpReceiverStats(CLOCK_RATE)
        self._received = 0
        self._octets_received = 0
        self.foreign = 0
        self._event_receiver = EventReceiver()
        self._tones: ToneDetector | None = None
        self._rtcp_received = 0
        self._remote_report: ReportBlock | None = None
        # Dead media and RTCP, checked by the plane's housekeeping.
        self._seen = 0
        self._quiet_since = 0.0
        self._dead_reported = False
        self._next_report = 0.0
        self._reported_packets = 0
        # Bridge and recording.
        self._peer: RtpStream | None = None
        self._relay_source: int | None = None
        self._relay_offset = 0
        self._tap: _RecordingTap | None = None
        self._tap_side = 0

    def __repr__(self) -> str:
        return f"<RtpStream {self.address}:{self.port} ssrc={self._sender.ssrc:08x}>"

    def attach(self, rtp_port: Any, rtcp_port: Any) -> None:
        """Hand over the listening ports the plane bound: we send from them and release them."""
        self._rtp_port = rtp_port
        self._rtcp_port = rtcp_port
        # Straight to the sockets: Twisted's Port.write validates the address on every
        # packet (a tenth of a bridge's CPU); ours come from SDP or a latch, checked once.
        self._rtp_sendto = rtp_port.socket.sendto
        self._rtcp_sendto = rtcp_port.socket.sendto
        self._next_report = self._clock.seconds() + self._plane.report_interval()

    @property
    def ssrc(self) -> int:
        return self._sender.ssrc

    @property
    def codec(self) -> str:
        return self._codec

    @property
    def remote(self) -> Address | None:
        """Where RTP goes now: the latched source, else the SDP address."""
        return self._remote

    @property
    def playing(self) -> bool:
        return self._frames is not None

    @property
    def bridged_to(self) -> RtpStream | None:
        return self._peer

    @property
    def stats(self) -> StreamStats:
        return StreamStats(
            packets_sent=self._sender.packet_count,
            octets_sent=self._octets_sent,
            packets_received=self._received,
            octets_received=self._octets_received,
            lost=self._stats.lost,
            jitter_ms=self._stats.jitter * 1000 / CLOCK_RATE,
            foreign=self.foreign,
            rtcp_received=self._rtcp_received,
            remote_report=self._remote_report,
        )

    # -- configuration ----------------------------------------------------------------------

    def configure(
        self,
        remote: Address | None,
        codec: str,
        payload_type: int,
        dtmf_payload_type: int | None,
        direction: str = "sendrecv",
    ) -> None:
        """Apply the negotiated SDP (again on a re-INVITE); see the module docstring."""
        if codec not in CODECS:
            raise MediaError(f"the media plane speaks PCMU and PCMA, not {codec}")
        if direction not in _DIRECTIONS:
            raise MediaError(f"unknown SDP direction {direction!r}")
        if remote is not None and remote[0] in _HOLD_HOSTS:
            remote, direction = None, "inactive"
        if remote != self._sdp_remote or self._remote is None:
            self._remote = remote
            self._rtcp_remote = None
            self._latch_pending = True
            self._rtcp_latch_pending = True
            self._candidate = None
        self._sdp_remote = remote
        self._codec = codec
        self._pt = payload_type
        self._sender.payload_type = payload_type
        self._dtmf_pt = dtmf_payload_type
        if dtmf_payload_type is None:
            self._digits.clear()
            self._events = []
        self._send_ok = direction in _SENDING
        self._expect_media = direction == "sendrecv"
        self._quiet_since = self._clock.seconds()
        self._dead_reported = False
        self._relay_source = None

    def watch_media(self) -> None:
        """Start the dead-media check: the party has answered, so it should be sending now."""
        self._watching = True
        self._seen = self._received
        self._quiet_since = self._clock.seconds()
        self._dead_reported = False

    # -- playing ------------------------------------------------------------------------------

    def play(self, frames: Sequence[bytes], on_done: Callable[[], None] | None = None) -> None:
        """Send these payloads (in the stream's codec), one per 20 ms tick, replacing what played.

        ``on_done`` runs after the last frame was sent, not when a later
        ``play`` or ``stop_playing`` replaces this one. While playing, the
        relay from a bridged peer towards this stream pauses.
        """
        self._frames = frames
        self._frame_index = 0
        self._on_done = on_done
        self._relay_source = None
        if not frames:
            self._finish_playing()
            return
        self._plane.pacer.add(self)

    def stop_playing(self) -> None:
        """Stop the prompt without its ``on_done``."""
        self._frames = None
        self._on_done = None
        self._relay_source = None

    def _finish_playing(self) -> None:
        on_done = self._on_done
        self._frames = None
        self._on_done = None
        if on_done is not None:
            on_done()

    def send_digit(self, digit: str, duration_ms: int = 100) -> bool:
        """Send a DTMF key as RFC 4733 events; False when no telephone-event was negotiated.

        Digits sent while one is going out queue behind it.
        """
        if self._dtmf_pt is None:
            return False
        self._digits.append((digit, duration_ms))
        self._plane.pacer.add(self)
        return True

    def on_tick(self) -> bool:
        """The pacer's 20 ms tick: the next prompt frame and the due event packets."""
        if self.closed:
            return False
        frames = self._frames
        if frames is not None:
            index = self._frame_index
            if self._send_ok and self._remote is not None:
                self._send_audio(frames[index], index == 0)
            else:
                self._sender.skip(FRAME_SAMPLES)
            self._frame_index = index + 1
            if index + 1 >= len(frames):
                self._finish_playing()
        if self._events or self._digits:
            self._tick_events()
        return self._frames is not None or bool(self._events) or bool(self._digits)

    def _tick_events(self) -> None:
        step = round(PACKET_INTERVAL * 1000)
        if not self._events:
            if self._event_ms < 0:  # the gap between two digits
                self._event_ms += step
                return
            digit, duration = self._digits.popleft()
            assert self._dtmf_pt is not None
            self._resync()
            start = self._sender.timestamp
            self._events = EventSender(self._dtmf_pt).packets(digit, start, duration)
            self._event_ms = 0
            # The event holds the media clock from now: the next source starts after it.
            self._last_sent_at = self._clock.seconds()
        while self._events and self._events[0].offset_ms <= self._event_ms:
            event = self._events.pop(0)
            if self._send_ok and self._remote is not None and self._dtmf_pt is not None:
                data = self._sender.packet_at(
                    event.timestamp, event.payload, event.marker, self._dtmf_pt
                )
                self._write(data, len(event.payload))
        self._event_ms += step
        if not self._events and self._digits:
            # The next digit starts after a gap, so the far end sees two presses.
            self._event_ms = -_EVENT_GAP_MS

    def _send_audio(self, payload: bytes, marker: bool) -> None:
        if marker:
            self._resync()
        self._write(self._sender.packet(payload, len(payload), marker), len(payload))
        self._last_sent_at = self._clock.seconds()

    def _resync(self) -> None:
        """Move the media clock over the time nothing was sent (RFC 3550 §5.1: it keeps running)."""
        if self._last_sent_at is None:
            return
        gap = self._clock.seconds() - self._last_sent_at - PACKET_INTERVAL
        if gap > 0:
            self._sender.skip(round(gap / PACKET_INTERVAL) * FRAME_SAMPLES)

    def _write(self, data: bytes, payload_octets: int) -> None:
        assert self._remote is not None
        self._octets_sent += payload_octets
        try:
            self._rtp_sendto(data, self._remote)
        except OSError:
            # A full socket buffer or an unreachable party: RTP is lossy, the next packet retries.
            self.send_errors += 1

    # -- receiving ----------------------------------------------------------------------------

    def _on_rtp(self, data: bytes, addr: Address) -> None:
        if self._pt < 0 or self.closed:
            return
        packet = parse_rtp(data)
        if packet is None:
            return
        pt = packet.payload_type
        if self._latch_pending:
            if pt not in (self._pt, self._dtmf_pt) or not self._latches(addr, packet.sequence):
                self.foreign += 1
                return
            self._latch_pending = False
            self._candidate = None
            self._remote = addr
        elif addr != self._remote:
            self.foreign += 1
            return
        now = self._clock.seconds()
        self._received += 1
        self._octets_received += len(packet.payload)
        self._stats.update(packet, now)
        peer = self._peer
        if pt == self._pt:
            if peer is not None and peer._frames is None:
                peer._relay(
                    packet.ssrc, packet.timestamp, packet.marker, self._codec, packet.payload
                )
            if self._tap is not None:
                self._tap.push(self._tap_side, self._codec, packet.payload)
            if self.detect_inband and self.on_digit is not None:
                if self._tones is None:
                    self._tones = ToneDetector()
                for key in self._tones.feed(_DECODE[self._codec](packet.payload)):
                    self.on_digit(key, "inband")
        elif pt == self._dtmf_pt:
            digit = self._event_receiver.feed(packet.timestamp, packet.marker, packet.payload)
            if peer is not None and peer._frames is None and peer._dtmf_pt is not None:
                peer._relay_event(packet.ssrc, packet.timestamp, packet.marker, packet.payload)
            elif digit is not None and self.on_digit is not None:
                self.on_digit(digit, "rfc4733")

    def _latches(self, addr: Address, sequence: int) -> bool:
        """Whether this packet fixes where we send: see "Symmetric RTP" above."""
        if addr == self._sdp_remote:
            return True
        candidate = self._candidate
        if candidate is not None and candidate == (addr, sequence):
            return True
        self._candidate = (addr, (sequence + 1) & 0xFFFF)
        return False

    def _relay(self, ssrc: int, timestamp: int, marker: bool, codec: str, payload: bytes) -> None:
        """Send a peer's audio packet as ours: our SSRC and sequence, our continuous media clock."""
        if not self._send_ok or self._remote is None:
            return
        if ssrc != self._relay_source:
            self._anchor(ssrc, timestamp)
            marker = True
        if codec != self._codec:
            payload = payload.translate(_TRANSLATE[codec, self._codec])
        sent = (timestamp + self._relay_offset) % _TS_MOD
        self._write(self._sender.packet_at(sent, payload, marker), len(payload))
        self._sender.timestamp = (sent + len(payload)) % _TS_MOD
        self._last_sent_at = self._clock.seconds()

    def _relay_event(self, ssrc: int, timestamp: int, marker: bool, payload: bytes) -> None:
        """Send a peer's telephone-event packet with our telephone-event payload type."""
        if not self._send_ok or self._remote is None or self._dtmf_pt is None:
            return
        if ssrc != self._relay_source:
            self._anchor(ssrc, timestamp)
        sent = (timestamp + self._relay_offset) % _TS_MOD
        self._write(self._sender.packet_at(sent, payload, marker, self._dtmf_pt), len(payload))

    def _anchor(self, ssrc: int, timestamp: int) -> None:
        """Map a new source's timestamps onto our media clock where it stands now."""
        self._resync()
        self._relay_source = ssrc
        self._relay_offset = (self._sender.timestamp - timestamp) % _TS_MOD

    # -- bridging and recording -------------------------------------------------------------

    def bridge(self, other: RtpStream) -> None:
        """Relay both ways between this stream and ``other`` (see the module docstring)."""
        if other is self:
            raise MediaError("a stream cannot be bridged to itself")
        if self.closed or other.closed:
            raise MediaError("a closed stream cannot be bridged")
        self.unbridge()
        other.unbridge()
        self._peer, other._peer = other, self
        self._relay_source = other._relay_source = None

    def unbridge(self) -> None:
        """Stop relaying (and recording) between this stream and its peer."""
        peer = self._peer
        if peer is None:
            return
        self.stop_recording()
        self._peer = peer._peer = None

    def record(self, writer: RecordingWriter) -> None:
        """Tap both directions of the bridge into ``writer``: channel a is what this stream hears.

        The caller closes the writer, after ``stop_recording``, ``unbridge`` or ``close``.
        """
        peer = self._peer
        if peer is None:
            raise MediaError("only a bridged stream can be recorded")
        self.stop_recording()
        tap = _RecordingTap(writer)
        self._tap, self._tap_side = tap, 0
        peer._tap, peer._tap_side = tap, 1
        self._plane.pacer.add(tap)

    def stop_recording(self) -> None:
        tap = self._tap
        if tap is None:
            return
        tap.stopped = True
        self._plane.pacer.discard(tap)
        self._tap = None
        if self._peer is not None:
            self._peer._tap = None

    # -- RTCP, dead media and the end -------------------------------------------------------

    def _on_rtcp(self, data: bytes, addr: Address) -> None:
        if self.closed or self._pt < 0:
            return
        packets = parse_rtcp(data)
        if packets is None:
            return
        if self._rtcp_latch_pending:
            self._rtcp_latch_pending = False
            self._rtcp_remote = addr
        elif addr != self._rtcp_remote:
            return
        self._rtcp_received += 1
        now = self._clock.seconds()
        for packet in packets:
            if not isinstance(packet, SenderReport | ReceiverReport):
                continue  # SDES and BYE: nothing to do; the SIP dialog ends calls, not RTCP.
            if isinstance(packet, SenderReport) and packet.ssrc == self._stats.ssrc:
                self._stats.sender_report(ntp_middle32(packet.ntp_timestamp), now)
            for block in packet.reports:
                if block.ssrc == self._sender.ssrc:
                    self._remote_report = block

    def housekeeping(self, now: float) -> None:
        """Once a second from the plane: dead-media check and, when due, our RTCP report."""
        if self._expect_media and self._watching:
            if self._received != self._seen:
                self._seen = self._received
                self._quiet_since = now
                self._dead_reported = False
            elif not self._dead_reported and now - self._quiet_since >= self._plane.dead_media:
                self._dead_reported = True
                if self.on_dead is not None:
                    self.on_dead()
        if now >= self._next_report:
            self._next_report = now + self._plane.report_interval()
            self._send_rtcp(now, None)

    def _report(self, now: float) -> SenderReport | ReceiverReport:
        """SR if we sent since the last report, else RR (RFC 3550 §6.4)."""
        blocks = (self._stats.report(now),) if self._stats.received else ()
        sender = self._sender
        if sender.packet_count == self._reported_packets or self._last_sent_at is None:
            return ReceiverReport(sender.ssrc, blocks)
        self._reported_packets = sender.packet_count
        # The media clock now: the next packet's timestamp belongs one interval after the last.
        ahead = (now - self._last_sent_at - PACKET_INTERVAL) * CLOCK_RATE
        return SenderReport(
            sender.ssrc,
            ntp_timestamp(now),
            (sender.timestamp + round(ahead)) % _TS_MOD,
            sender.packet_count,
            self._octets_sent % _TS_MOD,
            blocks,
        )

    def _send_rtcp(self, now: float, bye: Bye | None) -> None:
        target = self._rtcp_remote
        if target is None and self._remote is not None and self._send_ok:
            target = (self._remote[0], self._remote[1] + 1)
        if target is None:
            return
        data = build_compound(self._report(now), self._plane.cname, bye)
        try:
            self._rtcp_sendto(data, target)
        except OSError:
            self.send_errors += 1

    def close(self) -> None:
        """Say BYE in RTCP, stop everything and release the ports; idempotent."""
        if self.closed:
            return
        self._send_rtcp(self._clock.seconds(), Bye((self._sender.ssrc,)))
        self.closed = True
        self.unbridge()
        self._frames = None
        self._on_done = None
        self._plane.pacer.discard(self)
        self._rtp_port.stopListening()
        self._rtcp_port.stopListening()
        self._plane.forget(self)


class _RecordingTap:
    """Feeds a recording one frame per direction per tick, from small per-direction queues."""

    def __init__(self, writer: RecordingWriter) -> None:
        self.writer = writer
        self.stopped = False
        self.queues: tuple[deque[npt.NDArray[np.int16]], deque[npt.NDArray[np.int16]]] = (
            deque(),
            deque(),
        )
        self.dropped = 0

    def push(self, side: int, codec: str, payload: bytes) -> None:
        queue = self.queues[side]
        if len(queue) >= TAP_QUEUE:
            self.dropped += 1
            return
        queue.append(_DECODE[codec](payload))

    def on_tick(self) -> bool:
        if self.stopped:
            return False
        a, b = self.queues
        try:
            self.writer.write(a.popleft() if a else None, b.popleft() if b else None)
        except (OSError, ValueError):
            log.exception("recording failed; it stops, the call goes on")
            self.stopped = True
        return not self.stopped
