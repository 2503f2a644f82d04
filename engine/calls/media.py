"""The media a call anchors in the engine: RTP streams, SDP, prompts, digits, the bridge.

Until a call needs media, SDP passes through the B2BUA untouched and RTP
flows between the parties. A call anchors its media when the tree makes the
engine an endpoint (``announce``, ``menu``) or its customer's calls are
recorded. From then on the engine answers the caller's offer with a stream
of its own, offers the callee another stream, and relays between the two
(transcoding PCMU/PCMA and passing DTMF across); the caller never sees the
callee's SDP, nor the callee the caller's. Digits from the caller arrive by
RFC 4733 events, in-band tones (detected only while a menu listens) and SIP
INFO, and are kept in order (type-ahead) until a menu takes them.

This module holds no sockets: the streams come from the media plane
(``media.plane``) through the small ``Stream`` interface, so the call
controller is tested with fakes and a ``task.Clock``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from media.dtmf import DigitCollector
from media.recording import RecordingWriter
from media.sdp import (
    Negotiation,
    SdpError,
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

    def bridge(self, other: Any) -> None: ...

    def record(self, writer: Any) -> None: ...

    def close(self) -> None: ...


class Plane(Protocol):
    """The media plane (``media.plane.MediaPlane``): where streams come from."""

    def open_stream(self) -> Stream: ...

    def close(self) -> None: ...


class Prompts(Protocol):
    """Decoded prompts by path (``media.prompts.PromptCache``)."""

    def get(self, path: Path) -> Prompt: ...


class MediaUnavailableError(Exception):
    """No stream could be opened (port range exhausted): the call cannot anchor media."""


@dataclass
class MediaServices:
    """What calls need to anchor media, gathered once by ``vms serve``."""

    plane: Plane
    prompts: Prompts
    settings: MediaSettings
    #: Where recordings go (``data_dir/recordings``).
    recordings: Path
    #: Customers whose calls are recorded (the ``recording`` option).
    recorded: frozenset[str] = frozenset()


class CallMedia:
    """The anchored media of one call: the caller's stream, the callee's, what plays, the digits."""

    def __init__(self, call: Call, services: MediaServices) -> None:
        self.call = call
        self.services = services
        try:
            self.caller = services.plane.open_stream()
        except Exception as exc:  # the plane's MediaError: no port left
            raise MediaUnavailableError(str(exc)) from exc
        self.callee: Stream | None = None
        self.session_id = call.b2bua.rng.randrange(1, 2**31)
        self.version = 0
        self.codec = "PCMU"
        self.caller_sdp = b""  # what we told the caller (answer, or our offer)
        self._caller_offer: Any = None  # our offer when the caller's INVITE had none
        self._callee_offer: Any = None
        self.digits = DigitCollector()
        self.listener: Callable[[], None] | None = None
        self.recorder: RecordingWriter | None = None
        self._playing = 0  # generation of the current prompt, so a stale on_done is ignored
        self.caller.on_digit = self._digit
        self.caller.on_dead = self._dead

    # -- SDP towards the caller ------------------------------------------------------------

    def answer_caller(self, offer: bytes) -> bytes:
        """Our SDP for the caller: the answer to its offer, or an offer if it sent none.

        Raises ``SdpError`` when the offer has no codec we speak (the call answers 488).
        """
        stream = self.caller
        if offer:
            result = answer(parse_sdp(offer), stream.address, stream.port, self.session_id,
                            self.version)  # fmt: skip
            self._configure(stream, result)
            self.codec = result.codec
            self.caller_sdp = format_sdp(result.sdp)
        else:
            self._caller_offer = make_offer(stream.address, stream.port, self.session_id,
                                            self.version)  # fmt: skip
            self.caller_sdp = format_sdp(self._caller_offer)
        return self.caller_sdp

    def caller_answered(self, sdp: bytes) -> None:
        """The caller's ACK carried the answer to the offer of our 2xx (a late offer)."""
        if self._caller_offer is None or not sdp:
            return
        try:
            result = negotiated(self._caller_offer, parse_sdp(sdp))
        except SdpError as exc:
            log.warning("call %s: the caller's answer is unusable: %s", self.call.call_id, exc)
            return
        self._caller_offer = None
        self._configure(self.caller, result)
        self.codec = result.codec

    def reoffer(self, from_caller: bool, sdp: bytes) -> bytes:
        """A re-INVITE or UPDATE from either party: answered here, never relayed."""
        stream = self.caller if from_caller else self.callee
        assert stream is not None
        self.version += 1
        if not sdp:  # an offerless re-INVITE: offer again what we have
            return self.caller_sdp if from_caller else format_sdp(self._offer_for(stream))
        result = answer(parse_sdp(sdp), stream.address, stream.port, self.session_id,
                        self.version)  # fmt: skip
        self._configure(stream, result)
        body = format_sdp(result.sdp)
        if from_caller:
            self.codec = result.codec
            self.caller_sdp = body
        return body

    # -- the callee's side -----------------------------------------------------------------

    def offer_callee(self) -> bytes:
        """Our offer for an outgoing leg: a stream of its own (one per leg dialled)."""
        if self.callee is not None:
            self.callee.close()
        try:
            self.callee = self.services.plane.open_stream()
        except Exception as exc:
            raise MediaUnavailableError(str(exc)) from exc
        self.callee.on_dead = self._dead
        self._callee_offer = self._offer_for(self.callee)
        return format_sdp(self._callee_offer)

    def _offer_for(self, stream: Stream) -> Any:
        return make_offer(stream.address, stream.port, self.session_id, self.version)

    def callee_sdp(self, sdp: bytes) -> bool:
        """The callee's answer (in a 18x or the 2xx): configure its stream; False if unusable."""
        if self.callee is None or self._callee_offer is None or not sdp:
            return False
        try:
            result = negotiated(self._callee_offer, parse_sdp(sdp))
        except SdpError as exc:
            log.warning("call %s: the callee's answer is unusable: %s", self.call.call_id, exc)
            return False
        self._configure(self.callee, result)
        return True

    def bridge(self) -> None:
        """Connect caller and callee; start recording when the customer's calls are recorded."""
        assert self.callee is not None
        self.stop_playing()
        self.caller.bridge(self.callee)
        if self.call.customer in self.services.recorded and self.recorder is None:
            self.recorder = self._recorder()
            self.caller.record(self.recorder)

    def _recorder(self) -> RecordingWriter:
        started = datetime.fromtimestamp(self.call.started, UTC)
        folder = self.services.recordings / _SAFE.sub("_", self.call.customer)
        folder = folder / started.strftime("%Y-%m-%d")
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{started.strftime('%H%M%S')}-{_SAFE.sub('_', self.call.call_id)}.wav"
        stereo = self.services.settings.recording_channels == "stereo"
        return RecordingWriter(folder / name, 2 if stereo else 1)

    # -- prompts and digits ------------------------------------------------------------------

    def play(self, path: str, on_done: Callable[[], None]) -> None:
        """Play a prompt to the caller; ``on_done`` when it has been heard to the end."""
        prompt = self.services.prompts.get(Path(path))
        self._playing += 1
        generation = self._playing

        def done() -> None:
            if generation == self._playing and not self.call.ended:
                on_done()

        self.caller.play(prompt.frames(self.codec), done)

    def stop_playing(self) -> None:
        self._playing += 1
        self.caller.stop_playing()

    def listen(self, listener: Callable[[], None] | None) -> None:
        """Who hears about the next digit (a menu); in-band detection runs only meanwhile."""
        self.listener = listener
        self.caller.detect_inband = listener is not None

    def info_digit(self, digit: str) -> None:
        self._digit(digit, "info")

    def _digit(self, digit: str, source: str) -> None:
        if self.digits.push(digit, source, self.call.ctx.now()) and self.listener is not None:
            self.listener()

    def _dead(self) -> None:
        self.call.hang_up("no RTP from a party for the dead-media time")

    # -- the end --------------------------------------------------------------------------

    def close(self) -> None:
        self.listener = None
        self._playing += 1
        for stream in (self.caller, self.callee):
            if stream is not None:
                stream.close()
        if self.recorder is not None:
            try:
                path = self.recorder.close()
            except OSError as exc:
                log.error("call %s: recording not finished (%s); its .part file stays "
                          "for recovery", self.call.call_id, exc)  # fmt: skip
            else:
                log.info("call %s: recorded to %s", self.call.call_id, path)
            self.recorder = None

    @staticmethod
    def _configure(stream: Stream, result: Negotiation) -> None:
        address = result.remote_address
        remote = None if address in ("", "0.0.0.0", "::") else (address, result.remote_port)
        stream.configure(remote, result.codec, result.payload_type, result.dtmf_payload_type,
                         result.direction)  # fmt: skip
