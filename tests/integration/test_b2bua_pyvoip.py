"""pyVoIP, an independent SIP phone from PyPI, against a real ``vms serve`` in B2BUA mode.

Our own phone (``phonekit``) knows the engine's ways; pyVoIP (1.6.8, pinned in
the ``test`` extra) does not. It calls the engine and hears an announcement
(compared with the prompt by cross-correlation), chooses a menu option with
in-band DTMF tones and is bridged to the trunk, and, as the engine's trunk,
answers calls forwarded to it: with the media passing by (SDP relayed
untouched) and with the media anchored and transcoded by the engine.

What pyVoIP 1.6.8 needs, and what it cannot do (read in its source,
``pyVoIP/SIP.py``, ``RTP.py``, ``VoIP/VoIP.py``; 1.6.8 is its latest release,
2.0 exists on PyPI only as alphas, and 2.0.0a4 sends no DTMF either):

* It works only with a registrar: ``VoIPPhone.start()`` REGISTERs, and every
  request and response it makes goes to that server. ``pyvoipkit.Registrar``
  answers REGISTER with 200 OK and relays the rest to and from the engine.
* It reads its SIP socket only from one second after ``start()`` on;
  ``PyPhone`` waits for that reader before it places or takes a call.
* ``SIPClient.invite`` blocks until a 100, 180 or 401 for its INVITE arrives
  and drops a 200 that comes first (the call is not known yet). The engine
  answers an announcement or a menu at once, with no 100 (RFC 3261 §17.2.1
  asks for one only after 200 ms), so the registrar sends 100 Trying for the
  INVITEs it relays, as the proxy of a PBX does.
* It sends no DTMF but audio: no RFC 4733 telephone-events (its RTP
  transmitter only sends the negotiated audio codec and has no API for
  events) and no SIP INFO (INFO is not among its methods). Menus are
  therefore driven with in-band tones written as audio (``write_audio``);
  the RFC 4733 and INFO menu tests are SIPp's and phonekit's, in
  ``test_b2bua_media_calls.py``.
* It ACKs a 2xx with a new random To tag instead of the engine's, so the
  engine never matches the ACK and retransmits its 200 (pyVoIP ACKs each
  again); it would end the call after 64*T1 = 32 s. The calls here last
  well under that.
* It encodes PCMA with the µ-law encoder (``RTPClient.encode_packet``): a
  pyVoIP that negotiated PCMA sends µ-law labelled as A-law. The engine
  offers PCMU first, which pyVoIP takes; the transcoding test makes the
  caller's side A-law instead, between the engine and phonekit.
* It opens its RTP socket only once it has processed the 200, so the first
  packets of a prompt sent with the 200 can be lost: what it hears is
  compared with the prompt from 0.5 s on.
* Its audio API is 8-bit unsigned linear (G.711 decoded with ``audioop``,
  which Python 3.13 removed): enough for a correlation above 0.9.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pyVoIP", reason="pyVoIP is not importable: the test extra installs it, on "
                    "Python < 3.13 only (it needs audioop)")  # fmt: skip

from phonekit import Phone, Trunk, correlation
from pyVoIP.VoIP import CallState
from pyvoipkit import PyPhone, from_pcm16, heard, wait_state

from engine.sip.message import Request
from media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from media.prompts import load_prompt
from vmskit import b2bua, free_port, tree

pytestmark = [
    pytest.mark.integration,
    # pyVoIP's RTP transmitter thread warns once when its socket closes under it (at hang-up).
    pytest.mark.filterwarnings("ignore:RTP Packet failed to send:RuntimeWarning"),
]

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ROOT / "routing_trees" / "examples" / "prompts"
CLOSED = "+3225553001"
MENU = "+3225553002"
PASSING = "+3225553003"
DESK = "+3225553004"
NUMBERS = [CLOSED, MENU, PASSING, DESK]
ROUTES = f"""\
  - name: closed
    when: {{called: "{CLOSED}"}}
    do: {{announce: closed}}
  - name: menu
    when: {{called: "{MENU}"}}
    do:
      menu: busy
      timeout: 5
      options:
        "1": {{forward: "+3225550031"}}
        "2": {{forward: "+3225550032"}}
  - name: passing
    when: {{called: "{PASSING}"}}
    do: {{forward: "+3225550033"}}
  - name: desk
    when: {{called: "{DESK}"}}
    do:
      announce: busy
      then: {{forward: "+3225550034"}}
"""
HEAD = "prompts:\n  closed: prompts/closed-nl.wav\n  busy: prompts/busy-fr.wav\n"
SKIP = 4000  # samples (0.5 s) of a prompt pyVoIP may miss before its RTP socket is open


def _files() -> dict[str, bytes]:
    return {f"prompts/{p.name}": p.read_bytes() for p in PROMPTS.glob("*.wav")}


def _serve(serve_module: Any, name: str, trunk: str, ports: list[int]) -> Any:
    return serve_module({"pyvoip.yaml": tree(NUMBERS, ROUTES, head=HEAD)}, NUMBERS, name=name,
                        sip=b2bua(trunk), files=_files(),
                        extra={"media": {"rtp_ports": ports}})  # fmt: skip


def _speech(start: float, seconds: float = 2.0) -> np.ndarray:
    """A stretch of a real voice (the Dutch prompt), 8 kHz pcm."""
    pcm = load_prompt(PROMPTS / "closed-nl.wav").pcm
    return pcm[int(8000 * start) : int(8000 * (start + seconds))]


def _frames(pcm: np.ndarray) -> list[bytes]:
    return [ulaw_encode(pcm[i : i + 160]) for i in range(0, len(pcm), 160)]


def _invite_to(trunk: Trunk, number: str, timeout: float) -> Request:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for invite in trunk.invites:
            if invite.uri.startswith(f"sip:{number}@"):
                return invite
        time.sleep(0.05)
    raise AssertionError(f"the trunk got no INVITE for {number}: {trunk.invites}")


# -- pyVoIP calls the engine ---------------------------------------------------------------


@pytest.fixture(scope="module")
def trunk() -> Any:
    peer = Trunk(codec="PCMU")
    yield peer
    peer.close()


@pytest.fixture(scope="module")
def engine(serve_module: Any, trunk: Trunk) -> Any:
    return _serve(serve_module, "calling", trunk.hostport, [31400, 31499])


@pytest.fixture
def pyphone(engine: Any) -> Any:
    phone = PyPhone(engine.sip)
    yield phone
    phone.stop()


def test_pyvoip_hears_the_announcement_then_the_engine_hangs_up(pyphone: PyPhone) -> None:
    prompt = load_prompt(PROMPTS / "closed-nl.wav")
    call = pyphone.call(CLOSED)
    wait_state(call, CallState.ENDED, prompt.duration + 3)  # the engine's BYE, once played
    audio = heard(call)
    assert len(np.trim_zeros(audio, "b")) >= len(prompt.pcm) - SKIP
    assert correlation(audio, prompt.pcm[SKIP:]) > 0.95
    assert ("register", "REGISTER sip:127.0.0.1 SIP/2.0") in pyphone.registrar.log


def test_pyvoip_chooses_a_menu_option_by_inband_tones_and_is_bridged(
    pyphone: PyPhone, trunk: Trunk
) -> None:
    call = pyphone.call(MENU)
    time.sleep(0.3)
    t = np.arange(int(8000 * 0.08)) / 8000  # "1": 697 Hz + 1209 Hz, 80 ms, about -15 dBm0 each
    tone = 4000 * (np.sin(2 * np.pi * 697 * t) + np.sin(2 * np.pi * 1209 * t))
    call.write_audio(from_pcm16(np.concatenate([tone, np.zeros(1600)]).astype(np.int16)))
    invite = _invite_to(trunk, "+3225550031", 5.0)
    assert b"o=vms " in invite.body  # the engine's offer: the media stays anchored
    time.sleep(0.5)  # the trunk answers, the bridge settles
    says, hears = _speech(0.0), _speech(2.5)
    before = len(trunk.rtp_log.packets)
    call.write_audio(from_pcm16(says))  # pyVoIP plays it out in real time
    trunk.send_audio(_frames(hears), 0)
    time.sleep(0.5)
    trunk_heard = b"".join(p[6] for p in trunk.rtp_log.packets[before:] if p[1] == 0)
    assert correlation(ulaw_decode(trunk_heard), says) > 0.9
    assert correlation(heard(call), hears) > 0.9
    call.hangup()


# -- the engine calls pyVoIP ---------------------------------------------------------------


@pytest.fixture(scope="module")
def callee_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def engine_to_pyvoip(serve_module: Any, callee_port: int) -> Any:
    return _serve(serve_module, "called", f"127.0.0.1:{callee_port}", [31500, 31599])


@pytest.fixture
def callee(engine_to_pyvoip: Any, callee_port: int) -> Any:
    phone = PyPhone(engine_to_pyvoip.sip, "callee", answer=True, sip_port=callee_port)
    yield phone
    phone.stop()


@pytest.fixture
def caller(engine_to_pyvoip: Any) -> Any:
    phone = Phone(engine_to_pyvoip.sip)
    yield phone
    phone.close()


def test_pyvoip_answers_a_forwarded_call_media_passing_by(caller: Phone, callee: PyPhone) -> None:
    ok = caller.call(PASSING, codecs=("PCMU",))
    assert b"o=pyVoIP " in ok.body  # pyVoIP's own answer, relayed untouched
    call = callee.wait_incoming()
    assert call.state == CallState.ANSWERED
    time.sleep(0.3)
    says, hears = _speech(0.0), _speech(2.5)
    call.write_audio(from_pcm16(hears))
    caller.send_audio(_frames(says), 0)
    time.sleep(0.5)
    assert caller.rtp_log.source == ("127.0.0.1", callee.rtp_port)  # straight from pyVoIP
    assert correlation(heard(call), says) > 0.9
    assert correlation(caller.rtp_log.audio("PCMU"), hears) > 0.9
    caller.hang_up()
    wait_state(call, CallState.ENDED, 3.0)


def test_pyvoip_answers_after_an_announcement_bridged_and_transcoded(
    caller: Phone, callee: PyPhone
) -> None:
    prompt = load_prompt(PROMPTS / "busy-fr.wav")
    ok = caller.call(DESK, codecs=("PCMA",))  # early media, then pyVoIP answers
    assert b"o=vms " in ok.body  # the engine's answer: the media is anchored
    assert correlation(caller.rtp_log.audio("PCMA"), prompt.pcm) > 0.95
    call = callee.wait_incoming()
    time.sleep(0.3)
    says, hears = _speech(0.0), _speech(2.5)
    before = len(caller.rtp_log.packets)
    call.write_audio(from_pcm16(hears))
    caller.send_audio([alaw_encode(says[i : i + 160]) for i in range(0, len(says), 160)], 8)
    time.sleep(0.5)
    assert correlation(heard(call), says) > 0.9  # A-law in, µ-law to pyVoIP
    answer = b"".join(p[6] for p in caller.rtp_log.packets[before:] if p[1] == 8)
    assert correlation(alaw_decode(answer), hears) > 0.9  # and back
    caller.hang_up()
    wait_state(call, CallState.ENDED, 3.0)
