"""A small SIP phone and a small SIP trunk for media tests: real UDP sockets, real RTP.

SIPp checks the signalling; these check what a person would hear. ``Phone``
calls the engine (INVITE with an SDP offer), acknowledges, hangs up, answers
the engine's BYE, sends INFO, and sends and records RTP. ``Trunk`` is the
engine's trunk: it answers every INVITE with 180 then 200 and an SDP answer
in the codec it is given, records the RTP it gets and can talk back. Both run
a receiving thread; the RTP they send is paced in real time (20 ms frames),
as a phone would.
"""

from __future__ import annotations

import itertools
import secrets
import socket
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.sip.message import Request, Response
from engine.sip.parser import parse_datagram
from media.dtmf.rfc4733 import EventSender
from media.g711 import alaw_decode, ulaw_decode, ulaw_encode
from media.sdp import parse_sdp

LOCAL = "127.0.0.1"
PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8}


def sdp(port: int, codecs: Sequence[str], dtmf: bool = True) -> bytes:
    pts = [str(PAYLOAD_TYPES[c]) for c in codecs] + (["101"] if dtmf else [])
    lines = ["v=0", f"o=test {port} 1 IN IP4 {LOCAL}", "s=-", f"c=IN IP4 {LOCAL}", "t=0 0",
             f"m=audio {port} RTP/AVP {' '.join(pts)}"]  # fmt: skip
    lines += [f"a=rtpmap:{PAYLOAD_TYPES[c]} {c}/8000" for c in codecs]
    if dtmf:
        lines += ["a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15"]
    return ("\r\n".join([*lines, "a=sendrecv"]) + "\r\n").encode()


@dataclass
class RtpLog:
    """RTP packets received: (arrival, payload type, sequence, timestamp, ssrc, marker, payload)."""

    packets: list[tuple[float, int, int, int, int, bool, bytes]] = field(default_factory=list)
    source: tuple[str, int] | None = None

    def audio(self, codec: str) -> np.ndarray:
        """The audio received in ``codec`` payloads, decoded, in arrival order."""
        pt = PAYLOAD_TYPES[codec]
        data = b"".join(p[6] for p in self.packets if p[1] == pt)
        return (ulaw_decode if codec == "PCMU" else alaw_decode)(data)


class _Endpoint:
    """A SIP socket and an RTP socket, each with a receiving thread."""

    def __init__(self) -> None:
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.bind((LOCAL, 0))
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind((LOCAL, 0))
        self.sip_port = self.sip.getsockname()[1]
        self.rtp_port = self.rtp.getsockname()[1]
        self.received: list[Request | Response] = []
        self.rtp_log = RtpLog()
        self.lock = threading.Condition()
        self.running = True
        self.remote_rtp: tuple[str, int] | None = None
        self.ssrc = secrets.randbits(32)
        self.seq = secrets.randbits(16)
        self.ts = secrets.randbits(32)
        for target in (self._sip_loop, self._rtp_loop):
            threading.Thread(target=target, daemon=True).start()

    def _sip_loop(self) -> None:
        self.sip.settimeout(0.2)
        while self.running:
            try:
                data, source = self.sip.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            message = parse_datagram(data)
            self.on_message(message, source)
            with self.lock:
                self.received.append(message)
                self.lock.notify_all()

    def _rtp_loop(self) -> None:
        self.rtp.settimeout(0.2)
        while self.running:
            try:
                data, source = self.rtp.recvfrom(2048)
            except (TimeoutError, OSError):
                continue
            if len(data) < 12:
                continue
            b0, b1, seq, ts, ssrc = struct.unpack("!BBHII", data[:12])
            start = 12 + 4 * (b0 & 0x0F)
            self.rtp_log.source = source
            self.rtp_log.packets.append((time.monotonic(), b1 & 0x7F, seq, ts, ssrc,
                                         bool(b1 & 0x80), data[start:]))  # fmt: skip

    def on_message(self, message: Request | Response, source: tuple[str, int]) -> None:
        """Answer what must be answered at once (BYE, re-INVITE)."""

    def wait_for(self, test: object, timeout: float = 5.0) -> Request | Response:
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                for message in self.received:
                    if test(message):  # type: ignore[operator]
                        self.received.remove(message)
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"nothing matching within {timeout} s; got "
                                         f"{self.received}")  # fmt: skip
                self.lock.wait(left)

    def send_audio(self, payloads: Sequence[bytes], payload_type: int) -> None:
        """Send 20 ms payloads to the remote RTP address, paced in real time."""
        assert self.remote_rtp is not None
        start = time.monotonic()
        for n, payload in enumerate(payloads):
            header = struct.pack("!BBHII", 0x80, payload_type | (0x80 if n == 0 else 0),
                                 self.seq, self.ts, self.ssrc)  # fmt: skip
            self.rtp.sendto(header + payload, self.remote_rtp)
            self.seq = (self.seq + 1) & 0xFFFF
            self.ts = (self.ts + 160) & 0xFFFFFFFF
            delay = start + (n + 1) * 0.02 - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # real-time pacing of a real phone, not waiting for a result

    def send_keys(self, keys: str, how: str) -> None:
        """Key ``keys`` as RFC 4733 events (``rfc4733``), in-band tones (``inband``) or INFO."""
        if how == "info":
            for key in keys:
                self.info(key)  # type: ignore[attr-defined]
            return
        assert self.remote_rtp is not None
        for key in keys:
            if how == "rfc4733":
                for packet in EventSender(101).packets(key, self.ts, duration_ms=100):
                    header = struct.pack("!BBHII", 0x80, 101 | (0x80 if packet.marker else 0),
                                         self.seq, packet.timestamp, self.ssrc)  # fmt: skip
                    self.rtp.sendto(header + packet.payload, self.remote_rtp)
                    self.seq = (self.seq + 1) & 0xFFFF
                    time.sleep(0.02)  # real-time pacing of a real phone
                self.ts = (self.ts + 160 * 8) & 0xFFFFFFFF
                time.sleep(0.06)
            else:
                self.send_audio(_tone_frames(key), 0)

    def close(self) -> None:
        self.running = False
        self.sip.close()
        self.rtp.close()


class Phone(_Endpoint):
    """The caller."""

    def __init__(self, engine: tuple[str, int], caller: str = "+3226001122") -> None:
        super().__init__()
        self.engine = engine
        self.caller = caller
        self.call_id = f"{secrets.token_hex(8)}@phone"
        self.tag = secrets.token_hex(4)
        self.cseq = itertools.count(1)
        self.to = ""
        self.called = ""

    def on_message(self, message: Request | Response, source: tuple[str, int]) -> None:
        if isinstance(message, Request) and message.method in ("BYE", "INVITE", "OPTIONS"):
            self.sip.sendto(message.response(200, None, None).to_bytes(), source)

    def _request(self, method: str, body: bytes = b"", ctype: str = "application/sdp",
                 cseq: int | None = None) -> Request:  # fmt: skip
        number = next(self.cseq) if cseq is None else cseq
        headers = {
            "via": [f"SIP/2.0/UDP {LOCAL}:{self.sip_port};branch=z9hG4bK{secrets.token_hex(6)}"],
            "max-forwards": ["70"],
            "from": [f"<sip:{self.caller}@{LOCAL}:{self.sip_port}>;tag={self.tag}"],
            "to": [self.to or f"<sip:{self.called}@{self.engine[0]}:{self.engine[1]}>"],
            "call-id": [self.call_id],
            "cseq": [f"{number} {method}"],
            "contact": [f"<sip:phone@{LOCAL}:{self.sip_port}>"],
        }
        if body:
            headers["content-type"] = [ctype]
        return Request(method, f"sip:{self.called}@{self.engine[0]}:{self.engine[1]}", headers,
                       body)  # fmt: skip

    def call(self, called: str, codecs: Sequence[str] = ("PCMU", "PCMA")) -> Response:
        """INVITE, wait for the answer, ACK it; the 200 is returned."""
        self.called = called
        invite = self._request("INVITE", sdp(self.rtp_port, codecs))
        self.invite_cseq = int(invite.headers["cseq"][0].split()[0])
        self.sip.sendto(invite.to_bytes(), self.engine)
        ok = self.wait_for(lambda m: isinstance(m, Response) and m.status >= 200, 10.0)
        assert isinstance(ok, Response)
        assert ok.status == 200, f"the call got {ok.status} {ok.reason}"
        self.to = ok.headers["to"][0]
        answer = parse_sdp(ok.body)
        self.remote_rtp = (answer.connection or LOCAL, answer.media[0].port)
        self.answer = answer
        self.sip.sendto(self._request("ACK", cseq=self.invite_cseq).to_bytes(), self.engine)
        return ok

    def info(self, digit: str) -> Response:
        body = f"Signal={digit}\r\nDuration=160\r\n".encode()
        self.sip.sendto(self._request("INFO", body, "application/dtmf-relay").to_bytes(),
                        self.engine)  # fmt: skip
        reply = self.wait_for(lambda m: isinstance(m, Response) and _method(m) == "INFO")
        assert isinstance(reply, Response)
        return reply

    def hang_up(self) -> None:
        self.sip.sendto(self._request("BYE").to_bytes(), self.engine)
        self.wait_for(lambda m: isinstance(m, Response) and _method(m) == "BYE")

    def wait_bye(self, timeout: float) -> Request:
        bye = self.wait_for(lambda m: isinstance(m, Request) and m.method == "BYE", timeout)
        assert isinstance(bye, Request)
        return bye


class Trunk(_Endpoint):
    """The engine's trunk: answers every INVITE in ``codec`` after ``ring`` seconds."""

    def __init__(self, codec: str = "PCMU", ring: float = 0.1) -> None:
        self.codec = codec
        self.ring = ring
        self.invites: list[Request] = []
        super().__init__()

    @property
    def hostport(self) -> str:
        return f"{LOCAL}:{self.sip_port}"

    def on_message(self, message: Request | Response, source: tuple[str, int]) -> None:
        if not isinstance(message, Request):
            return
        if message.method == "INVITE":
            self.invites.append(message)
            offer = parse_sdp(message.body)
            self.remote_rtp = (offer.connection or LOCAL, offer.media[0].port)
            threading.Thread(target=self._answer, args=(message, source), daemon=True).start()
        elif message.method in ("BYE", "OPTIONS", "INFO"):
            self.sip.sendto(message.response(200, None, "trunk").to_bytes(), source)

    def _answer(self, invite: Request, source: tuple[str, int]) -> None:
        ringing = invite.response(180, None, "trunk")
        self.sip.sendto(ringing.to_bytes(), source)
        time.sleep(self.ring)  # the callee picks up after ringing a while
        ok = invite.response(200, None, "trunk")
        ok.headers["contact"] = [f"<sip:callee@{LOCAL}:{self.sip_port}>"]
        ok.headers["content-type"] = ["application/sdp"]
        ok.body = sdp(self.rtp_port, [self.codec])
        self.sip.sendto(ok.to_bytes(), source)


_KEYS = {"1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "4": (770, 1209),
         "5": (770, 1336), "6": (770, 1477), "7": (852, 1209), "8": (852, 1336),
         "9": (852, 1477), "*": (941, 1209), "0": (941, 1336), "#": (941, 1477)}  # fmt: skip


def _tone_frames(key: str) -> list[bytes]:
    """80 ms of a DTMF key at about -10 dBm0 per tone, then 80 ms of silence, in µ-law."""
    low, high = _KEYS[key]
    t = np.arange(640) / 8000
    tone = 3000 * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t))
    audio = np.concatenate([tone, np.zeros(640)]).astype(np.int16)
    return [ulaw_encode(audio[i : i + 160]) for i in range(0, len(audio), 160)]


def _method(response: Response) -> str:
    return response.headers["cseq"][0].split()[-1]


def correlation(heard: np.ndarray, sent: np.ndarray) -> float:
    """Peak normalised cross-correlation of ``sent`` within ``heard`` (1.0: identical)."""
    a = heard.astype(np.float64)
    b = sent.astype(np.float64)
    n = len(a) + len(b)
    size = 1 << (n - 1).bit_length()
    spectrum = np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size))
    peak = int(np.argmax(np.fft.irfft(spectrum, size)[: len(a)]))
    window = a[peak : peak + len(b)]
    reference = b[: len(window)]
    denominator = np.sqrt(np.sum(window**2) * np.sum(reference**2))
    return float(np.sum(window * reference) / denominator) if denominator else 0.0
