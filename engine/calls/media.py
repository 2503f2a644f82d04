"""The media a call anchors in the engine: RTP streams, SDP, prompts, digits, the bridge.

Until a call needs media, SDP passes through the B2BUA untouched and RTP
flows between the parties. A call anchors its media when its tree may make
the engine an endpoint (an ``announce`` or ``menu`` anywhere in the rule's
action), or its customer's calls are recorded: from the first answer to the
caller, so the caller sees one SDP for the whole call. From then on the
engine answers the caller's offer with a stream of its own, offers each
callee another stream, and relays between the two (transcoding PCMU/PCMA
and passing DTMF across); the caller never sees the callee's SDP, nor the
callee the caller's. Digits from the caller arrive by RFC 4733 events,
in-band tones (detected only while a menu listens) and SIP INFO, and are
kept in order (type-ahead) until a menu takes them.

Each side's SDP keeps its own ``o=`` version, raised only when what we say
changes (RFC 3264 §8). This module holds no sockets: the streams come from
the media plane (``media.plane``) through the small ``Stream`` interface,
so the call controller is tested with fakes and a ``task.Clock``.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from media.dtmf import DigitCollector
from media.recording import RecordingWriter
from media.ringback import ringback_frames
from media.sdp import (
    Negotiation,
    SdpError,
    SessionDescription,
    answer,
    format_sdp,
    make_offer,
    negotiated,
    parse_sdp,
)

if TYPE_CHECKING:
    from engine.calls.call import Call
    from engine.config import MediaSettings
    from media.prompts import Prompt

__all__ = ["CallMedia", "MediaServices", "MediaUnavailableError", "Plane", "Stream"]

log = logging.getLogger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


class Stream(Protocol):
    """One RTP stream of the engine's (``media.stream.RtpStream``)."""

    address: str
    port: int
    on_digit: Callable[[str, str], None] | None
    on_dead: Callable[[], None] | None
    detect_inband: bool

    def configure(
        self, remote: tuple[str, int] | None, codec: str, payload_type: int,
        dtmf_payload_type: int | None, direction: str = "sendrecv",
    ) -> None: ...  # fmt: skip

    def play(self, frames: Sequence[bytes], on_done: Callable[[], None] | None = None) -> None: ...

    def stop_playing(self) -> None: ...

    def watch_media(self) -> None: ...

    def bridge(self, other: Any) -> None: ...

    def unbridge(self) -> None: ...

    def record(self, writer: RecordingWriter) -> None: ...

    def close(self) -> None: ...


class Plane(Protocol):
    """The media plane (``media.plane.MediaPlane``): where streams come from."""

    def open_stream(self) -> Stream: ...

    def close(self) -> None: ...


class MediaUnavailableError(Exception):
    """No stream could be opened (port range exhausted): the call cannot anchor media."""


@dataclass
class MediaServices:
    """What calls need to anchor media, gathered once by ``vms serve``."""

    plane: Plane
    #: The trees' prompts, decoded, by the path the tree gives; replaced as a whole on reload.
    prompts: Mapping[str, Prompt]
    settings: MediaSettings
    #: Where recordings go (``data_dir/recordings``).
    recordings: Path
    #: Customers whose calls are recorded (the ``recording`` option).
    recorded: frozenset[str] = frozenset()


def _sendable(address: str) -> bool:
    """An address RTP can go to as it is: an IP, not hold's 0.0.0.0, not a name.

    A host name in ``c=`` would cost a blocking DNS lookup per packet; such a
    party is reached where its packets come from (the stream's latch).
    """
    try:
        return not ipaddress.ip_address(address).is_unspecified
    except ValueError:
        return False


class _Side:
    """Our SDP towards one party: what we last said, its ``o=`` version, an open offer."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.version = 0
        self.sdp: SessionDescription | None = None
        self.body = b""
        self.offer: SessionDescription | None = None  # ours, sent in a 2xx, answered in the ACK
        self.dtmf: int | None = None  # the party's telephone-event payload type
        self.configured = False  # an answer (or the party's offer) settled the stream

    def say(self, sdp: SessionDescription) -> bytes:
        """Our SDP as sent: the version moves on only when the content changed."""
        if self.sdp is not None:
            same = replace(sdp, origin=self.sdp.origin) == self.sdp
            self.version += 0 if same else 1
        sdp = replace(sdp, origin=replace(sdp.origin, version=self.version))
        self.sdp, self.body = sdp, format_sdp(sdp)
        return self.body

    def configure(self, result: Negotiation) -> None:
        address = result.remote_address
        remote = (address, result.remote_port) if _sendable(address) else None
        self.stream.configure(remote, result.codec, result.payload_type, result.dtmf_payload_type,
                              result.direction)  # fmt: skip
        self.dtmf = result.dtmf_payload_type
        self.configured = True


class CallMedia:
    """The anchored media of one call: the caller's stream, the callee's, what plays, the digits."""

    def __init__(self, call: Call, services: MediaServices) -> None:
        self.call = call
        self.services = services
        self.caller = _Side(self._open())
        self.callee: _Side | None = None
        self.session_id = call.b2bua.rng.randrange(1, 2**31)
        self.codec = "PCMU"
        self.caller_has_sdp = False  # sent in a 183 or the 2xx: the caller hears our stream
        self.bridged = False
        self.digits = DigitCollector()
        self.listener: Callable[[], None] | None = None
        self.recorder: RecordingWriter | None = None
        self._playing = 0  # generation of the current prompt, so a stale on_done is ignored
        self._deferred: tuple[Sequence[bytes], Callable[[], None]] | None = None
        self.caller.stream.on_digit = self._digit
        self.caller.stream.on_dead = self._dead

    def _open(self) -> Stream:
        try:
            return self.services.plane.open_stream()
        except Exception as exc:  # the plane's MediaError: no port left
            raise MediaUnavailableError(str(exc)) from exc

    # -- SDP towards the caller ------------------------------------------------------------

    def answer_caller(self, offer: bytes) -> bytes:
        """Our SDP for the caller: the answer to its offer, or an offer if it sent none.

        Raises ``SdpError`` when the offer has no codec we speak (the call answers 488).
        """
        side = self.caller
        if offer:
            result = answer(parse_sdp(offer), side.stream.address, side.stream.port,
                            self.session_id, 0)  # fmt: skip
            side.configure(result)
            self.codec = result.codec
            return side.say(result.sdp)
        side.offer = self._offer_for(side.stream)
        return side.say(side.offer)

    @property
    def caller_sdp(self) -> bytes:
        return self.caller.body

    def offer_answered(self, from_caller: bool, sdp: bytes) -> None:
        """An ACK answered the offer in our 2xx (a late offer, an offerless re-INVITE)."""
        side = self.caller if from_caller else self.callee
        if side is None or side.offer is None or not sdp:
            return
        try:
            result = negotiated(side.offer, parse_sdp(sdp))
        except SdpError as exc:
            log.warning("call %s: an answer in an ACK is unusable: %s", self.call.call_id, exc)
            return
        side.offer = None
        side.configure(result)
        if from_caller:
            self.codec = result.codec
            deferred, self._deferred = self._deferred, None
            if deferred is not None:
                self._start(*deferred)

    def reoffer(self, from_caller: bool, sdp: bytes) -> bytes:
        """A re-INVITE or UPDATE from either party: answered here, never relayed."""
        side = self.caller if from_caller else self.callee
        assert side is not None
        if not sdp:  # an offerless re-INVITE: offer what we have; the ACK brings the answer
            side.offer = side.sdp
            return side.body
        result = answer(parse_sdp(sdp), side.stream.address, side.stream.port, self.session_id,
                        side.version)  # fmt: skip
        side.configure(result)
        if from_caller:
            self.codec = result.codec
        return side.say(result.sdp)

    # -- the callee's side -----------------------------------------------------------------

    def offer_callee(self) -> bytes:
        """Our offer for an outgoing leg: a stream of its own (one per leg dialled)."""
        self.drop_callee()
        side = self.callee = _Side(self._open())
        side.stream.on_dead = self._dead
        side.offer = self._offer_for(side.stream)
        return side.say(side.offer)

    def drop_callee(self) -> None:
        """The leg we dialled is over (failed, cancelled): nothing more crosses to it."""
        if self.callee is None:
            return
        if self.bridged:
            self.caller.stream.unbridge()
            self.bridged = False
        self.callee.stream.close()
        self.callee = None

    def _offer_for(self, stream: Stream) -> SessionDescription:
        return make_offer(stream.address, stream.port, self.session_id, 0)

    @property
    def callee_configured(self) -> bool:
        """The callee's stream was settled (by SDP in a 18x, or now)."""
        return self.callee is not None and self.callee.configured

    def callee_sdp(self, sdp: bytes) -> bool:
        """The callee's answer (in a 18x or the 2xx): configure its stream; False if unusable."""
        side = self.callee
        if side is None or side.offer is None or not sdp:
            return False
        try:
            result = negotiated(side.offer, parse_sdp(sdp))
        except SdpError as exc:
            log.warning("call %s: the callee's answer is unusable: %s", self.call.call_id, exc)
            return False
        side.configure(result)
        return True

    def bridge(self, answered: bool) -> None:
        """Connect caller and callee (early media, or ``answered``), recording what is said."""
        assert self.callee is not None
        self.stop_playing()
        self.caller.stream.bridge(self.callee.stream)
        self.bridged = True
        if answered:
            self.callee.stream.watch_media()
            if self.call.customer in self.services.recorded and self.recorder is None:
                self.recorder = self._recorder()
        if self.recorder is not None:
            self.caller.stream.record(self.recorder)

    def caller_confirmed(self) -> None:
        """The caller acknowledged our 2xx: from now on it should be sending."""
        self.caller.stream.watch_media()

    def _recorder(self) -> RecordingWriter | None:
        started = datetime.fromtimestamp(self.call.started, UTC)
        folder = self.services.recordings / _SAFE.sub("_", self.call.customer)
        folder = folder / started.strftime("%Y-%m-%d")
        name = f"{started.strftime('%H%M%S')}-{_SAFE.sub('_', self.call.call_id)}.wav"
        stereo = self.services.settings.recording_channels == "stereo"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return RecordingWriter(folder / name, 2 if stereo else 1)
        except OSError as exc:  # a full or read-only disk must not stop the call itself
            log.error("call %s: cannot record to %s: %s; the call goes on unrecorded",
                      self.call.call_id, folder, exc)  # fmt: skip
            return None

    # -- prompts, tones and digits -----------------------------------------------------------

    def play(self, path: str, on_done: Callable[[], None]) -> bool:
        """Play a prompt to the caller; ``on_done`` once heard to the end. False: no such prompt."""
        prompt = self.services.prompts.get(path)
        if prompt is None:
            log.error("call %s: prompt %s is not loaded", self.call.call_id, path)
            return False
        frames = prompt.frames(self.codec)
        if not self.caller.configured:
            self._deferred = (frames, on_done)  # a late offer: we play once the ACK answers
            return True
        self._start(frames, on_done)
        return True

    def ring(self) -> None:
        """The ringing tone, looped, while a callee rings (the caller has our stream already)."""
        self._playing += 1
        generation = self._playing

        def again() -> None:
            if generation == self._playing and not self.call.ended:
                self.caller.stream.play(ringback_frames(self.codec), again)

        self.caller.stream.play(ringback_frames(self.codec), again)

    def _start(self, frames: Sequence[bytes], on_done: Callable[[], None]) -> None:
        self._playing += 1
        generation = self._playing

        def done() -> None:
            if generation == self._playing and not self.call.ended:
                on_done()

        self.caller.stream.play(frames, done)

    def stop_playing(self) -> None:
        self._playing += 1
        self._deferred = None
        self.caller.stream.stop_playing()

    def listen(self, listener: Callable[[], None] | None) -> None:
        """Who hears about the next digit (a menu); in-band detection runs only meanwhile."""
        self.listener = listener
        self.caller.stream.detect_inband = listener is not None

    def info_digit(self, digit: str) -> None:
        self._digit(digit, "info")

    def _digit(self, digit: str, source: str) -> None:
        if self.listener is None and self.bridged and self.callee is not None:
            if self.callee.dtmf is None:  # a callee without telephone-event: tell it by INFO
                self.call.send_digit_info(digit)
            return
        if self.digits.push(digit, source, self.call.ctx.now()) and self.listener is not None:
            self.listener()

    def _dead(self) -> None:
        self.call.hang_up("no RTP from a party for the dead-media time")

    # -- the end --------------------------------------------------------------------------

    def detach(self) -> None:
        """Drop the streams' callbacks into this call (they point back at it: a cycle)."""
        for side in (self.caller, self.callee):
            if side is not None:
                side.stream.on_digit = side.stream.on_dead = None

    def close(self) -> None:
        """Close the streams and finish the recording (idempotent)."""
        self.listener = None
        self._playing += 1
        self._deferred = None
        self.caller.stream.close()
        self.drop_callee()
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            try:
                path = recorder.close()
            except OSError as exc:
                log.error("call %s: recording not finished (%s); its .part file stays "
                          "for recovery", self.call.call_id, exc)  # fmt: skip
            else:
                log.info("call %s: recorded to %s", self.call.call_id, path)
