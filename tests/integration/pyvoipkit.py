"""pyVoIP (an independent SIP phone from PyPI) on loopback, for the media tests.

pyVoIP 1.6 is built to work with a PBX: ``VoIPPhone.start()`` REGISTERs with
its "server", and it sends every request and every response it makes
(INVITE, ACK, BYE, 180, 200) to that server, never to the dialog's remote
target. ``Registrar`` is that server, a small one: it answers REGISTER
(and the un-REGISTER of ``stop()``) with 200 OK itself and relays every
other datagram unchanged, the phone's to the engine and anything else to
the phone: a registrar with an outbound proxy, as a phone behind a PBX has.
Like a PBX's proxy it sends 100 Trying for each INVITE of the phone (pyVoIP
waits for a provisional response before it knows its own call; see the
test module). The engine's own requests and its responses go to the phone
directly (by Contact and Via), as they would through any stateless proxy.

``PyPhone`` wraps one ``VoIPPhone`` on a free SIP port and a free RTP port,
with that registrar; it answers incoming calls when asked to. pyVoIP gives
and takes audio as 8-bit unsigned linear samples (it decodes and encodes
G.711 with ``audioop``); ``to_pcm16`` and ``from_pcm16`` convert.
"""

from __future__ import annotations

import gc
import socket
import sys
import threading
import time

import numpy as np
from pyVoIP.VoIP import CallState, VoIPCall, VoIPPhone

from vmskit import LOCAL, free_port


class Registrar:
    """pyVoIP's server: 200 OK to REGISTER, 100 Trying to INVITE, the rest relayed."""

    def __init__(self, engine: tuple[str, int], phone: tuple[str, int]) -> None:
        self.engine = engine
        self.phone = phone
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOCAL, 0))
        self.sock.settimeout(0.1)
        self.port: int = self.sock.getsockname()[1]
        #: What crossed: ("register" | "to-engine" | "to-phone", first line).
        self.log: list[tuple[str, str]] = []
        self.running = True
        self.thread = threading.Thread(target=self._loop, daemon=True, name="pyvoip-registrar")
        self.thread.start()

    def _loop(self) -> None:
        while self.running:
            try:
                data, source = self.sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            first = data.split(b"\r\n", 1)[0].decode(errors="replace")
            try:
                if data.startswith(b"REGISTER "):
                    self.log.append(("register", first))
                    self.sock.sendto(_response(data, "200 OK"), source)
                elif source == self.phone:
                    self.log.append(("to-engine", first))
                    if data.startswith(b"INVITE "):
                        self.sock.sendto(_response(data, "100 Trying"), source)
                    self.sock.sendto(data, self.engine)
                else:
                    self.log.append(("to-phone", first))
                    self.sock.sendto(data, self.phone)
            except OSError:
                continue

    def close(self) -> None:
        self.running = False
        self.thread.join(2)
        self.sock.close()


def _response(request: bytes, status: str) -> bytes:
    """A response of the registrar to ``request``: 200 OK to REGISTER, 100 Trying to INVITE."""
    head = request.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    lines = head.split("\r\n")[1:]
    keep = ("via", "from", "to", "call-id", "cseq")
    if status.startswith("200"):
        keep += ("contact", "expires")
    out = [f"SIP/2.0 {status}"]
    for line in lines:
        name = line.partition(":")[0].strip().lower()
        if name not in keep:
            continue
        tag = name == "to" and ";tag=" not in line and status.startswith("200")
        out.append(line + ";tag=registrar" if tag else line)
    out.append("Content-Length: 0")
    return ("\r\n".join(out) + "\r\n\r\n").encode()


class PyPhone:
    """A pyVoIP phone on loopback: ``call(number)``, or answering what rings when ``answer``."""

    def __init__(self, engine: tuple[str, int], username: str = "+3226001122", *,
                 answer: bool = False, sip_port: int | None = None) -> None:  # fmt: skip
        self.sip_port = sip_port or free_port()
        self.rtp_port = free_port()
        self.registrar = Registrar(engine, (LOCAL, self.sip_port))
        self.incoming: list[VoIPCall] = []
        # Every call is kept until stop(): pyVoIP's VoIPCall.__del__ joins threads, and run
        # from a collection inside a thread that is just starting it deadlocks the phone.
        self.kept: list[VoIPCall] = []
        self.rang = threading.Event()
        self.phone = VoIPPhone(
            LOCAL, self.registrar.port, username, "", myIP=LOCAL,
            callCallback=self._ringing if answer else None, sipPort=self.sip_port,
            rtpPortLow=self.rtp_port, rtpPortHigh=self.rtp_port,
        )  # fmt: skip
        self.phone.sip.register_timeout = 3  # a loopback registrar answers at once
        before = set(threading.enumerate())
        try:
            self.phone.start()
        except Exception:
            self.registrar.close()
            raise
        self.started = True
        self._wait_reading(set(threading.enumerate()) - before)

    def _wait_reading(self, started: set[threading.Thread], timeout: float = 5.0) -> None:
        """Wait until pyVoIP reads its SIP socket.

        It starts reading one second after ``start()`` (a ``threading.Timer(1,
        recv_loop)``); until then a 200 OK waits in the socket, the call is
        not answered on pyVoIP's side and the RTP sent with the 200 goes to a
        port nobody opened. Known when the timer's thread runs ``recv_loop``.
        """
        (reader,) = (t for t in started if t.name == "SIP Recieve")  # pyVoIP's spelling
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frame = sys._current_frames().get(reader.ident or -1)
            while frame is not None:
                if frame.f_code.co_name == "recv_loop":
                    return
                frame = frame.f_back
            time.sleep(0.01)
        raise AssertionError(f"pyVoIP does not read its SIP socket {timeout} s after start()")

    def _ringing(self, call: VoIPCall) -> None:
        """pyVoIP's call callback (its own thread, one second after the INVITE): pick up."""
        self.kept.append(call)
        call.answer()
        self.incoming.append(call)
        self.rang.set()

    def call(self, number: str, timeout: float = 5.0) -> VoIPCall:
        """Dial ``number`` through the engine and wait until the call is answered."""
        call = self.phone.call(number)
        self.kept.append(call)
        wait_state(call, CallState.ANSWERED, timeout)
        return call

    def wait_incoming(self, timeout: float = 8.0) -> VoIPCall:
        if not self.rang.wait(timeout):
            raise AssertionError(f"pyVoIP was not called within {timeout} s: {self.registrar.log}")
        return self.incoming[0]

    def stop(self) -> None:
        """Hang up what is up, un-REGISTER, close every socket; waits for pyVoIP's threads."""
        if self.started:
            self.started = False
            self.phone.stop()
        self.registrar.close()
        deadline = time.monotonic() + 2
        names = ("SIP Recieve", "RTP Receiver", "RTP Transmitter")  # pyVoIP's thread names
        while time.monotonic() < deadline and any(
            t.name in names and t.is_alive() for t in threading.enumerate()
        ):
            time.sleep(0.02)
        self.incoming.clear()
        self.kept.clear()
        gc.collect()  # the calls' __del__ now, on this thread, with pyVoIP's threads gone


def wait_state(call: VoIPCall, state: CallState, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while call.state != state:
        if time.monotonic() > deadline:
            raise AssertionError(f"pyVoIP's call is {call.state}, not {state}, after {timeout} s")
        time.sleep(0.02)


def heard(call: VoIPCall, seconds: float = 30.0) -> np.ndarray:
    """Everything pyVoIP received on ``call`` so far, from its first packet, as 16-bit pcm.

    pyVoIP keeps received audio in a buffer indexed by RTP timestamp; a
    non-blocking read of more than arrived returns all of it followed by
    silence padding, which does not change a correlation. A read moves
    pyVoIP's read position: call this once per call, after the audio came.
    """
    return to_pcm16(call.read_audio(int(8000 * seconds), blocking=False))


def to_pcm16(data: bytes) -> np.ndarray:
    """pyVoIP's 8-bit unsigned linear audio as 16-bit signed pcm."""
    return ((np.frombuffer(data, np.uint8).astype(np.int16) - 128) * 256).astype(np.int16)


def from_pcm16(pcm: np.ndarray) -> bytes:
    """16-bit signed pcm as pyVoIP's 8-bit unsigned linear audio (what ``write_audio`` takes)."""
    return ((pcm.astype(np.int32) >> 8) + 128).astype(np.uint8).tobytes()
