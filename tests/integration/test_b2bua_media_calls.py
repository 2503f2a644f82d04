"""Media through a real ``vms serve`` in B2BUA mode: what callers hear, menus, bridging, recording.

A small phone and a small trunk of our own (``phonekit``) send and receive
real RTP on loopback; SIPp plays Debian's RFC 4733 captures into a menu. What
a caller hears is compared with the prompt by cross-correlation, what crosses
a bridge with what was sent, and a recording with both parties' audio.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from phonekit import Phone, Trunk, correlation

from engine.sip.message import Request
from media.g711 import alaw_encode, ulaw_encode
from media.prompts import load_prompt
from vmskit import b2bua, run_sipp, scenario, tree

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ROOT / "routing_trees" / "examples" / "prompts"
PCAPS = Path("/usr/share/sip-tester")
CLOSED = "+3225552001"
DESK = "+3225552002"
MENU = "+3225552003"
RECORDED = "+3225552004"
NUMBERS = [CLOSED, DESK, MENU, RECORDED]
ROUTES = f"""\
  - name: closed
    when: {{called: "{CLOSED}"}}
    do: {{announce: closed}}
  - name: desk
    when: {{called: "{DESK}"}}
    do:
      announce: busy
      then: {{forward: "+3225550001"}}
  - name: menu
    when: {{called: "{MENU}"}}
    do:
      menu: busy
      timeout: 5
      options:
        "1": {{forward: "+3225550011"}}
        "2": {{forward: "+3225550012"}}
        "3": {{forward: "+3225550013"}}
  - name: recorded
    when: {{called: "{RECORDED}"}}
    do: {{forward: "+3225550004"}}
"""
HEAD = "prompts:\n  closed: prompts/closed-nl.wav\n  busy: prompts/busy-fr.wav\n"


def _files() -> dict[str, bytes]:
    return {f"prompts/{p.name}": p.read_bytes() for p in PROMPTS.glob("*.wav")}


@pytest.fixture(scope="module")
def trunk() -> Any:
    peer = Trunk(codec="PCMA")  # the callee speaks A-law, the phones µ-law: transcoding
    yield peer
    peer.close()


@pytest.fixture(scope="module")
def engine(serve_module: Any, trunk: Trunk) -> Any:
    customers = {"itest": {"formula": "classic", "options": ["recording"],
                           "numbers": NUMBERS}}  # fmt: skip
    return serve_module({"media.yaml": tree(NUMBERS, ROUTES, head=HEAD)}, NUMBERS, name="media",
                        sip=b2bua(trunk.hostport), files=_files(),
                        extra={"customers": customers,
                               "media": {"rtp_ports": [31000, 31199]}})  # fmt: skip


@pytest.fixture
def phone(engine: Any) -> Any:
    p = Phone(engine.sip)
    yield p
    p.close()


def _invite_to(trunk: Trunk, number: str, timeout: float = 8.0) -> Request:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for invite in trunk.invites:
            if invite.uri.startswith(f"sip:{number}@"):
                return invite
        time.sleep(0.05)
    raise AssertionError(f"the trunk got no INVITE for {number}: {trunk.invites}")


def test_the_caller_hears_the_announcement_then_the_engine_hangs_up(phone: Phone) -> None:
    prompt = load_prompt(PROMPTS / "closed-nl.wav")
    phone.call(CLOSED, codecs=("PCMU",))
    phone.wait_bye(prompt.duration + 5)
    packets = phone.rtp_log.packets
    assert abs(len(packets) - prompt.duration / 0.02) <= 2
    assert len({p[4] for p in packets}) == 1  # one SSRC
    seqs = [p[2] for p in packets]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    stamps = [p[3] for p in packets]
    assert all((b - a) & 0xFFFFFFFF == 160 for a, b in itertools.pairwise(stamps))
    assert packets[0][5]  # the marker bit on the first packet of a talkspurt
    assert correlation(phone.rtp_log.audio("PCMU"), prompt.pcm) > 0.95
    arrivals = np.array([p[0] for p in packets])
    drift = arrivals - arrivals[0] - 0.02 * np.arange(len(arrivals))
    assert np.percentile(np.abs(drift), 99) < 0.05  # paced in real time, not in bursts


def test_announcement_as_early_media_then_forward_bridged_with_transcoding(
    phone: Phone, trunk: Trunk, engine: Any
) -> None:
    prompt = load_prompt(PROMPTS / "busy-fr.wav")
    phone.call(DESK, codecs=("PCMU",))  # answered only when the callee answers
    invite = _invite_to(trunk, "+3225550001", prompt.duration + 5)
    assert b"o=vms " in invite.body  # the engine's offer, not the phone's
    assert correlation(phone.rtp_log.audio("PCMU"), prompt.pcm) > 0.95
    time.sleep(0.3)  # let the bridge settle: RTP from both sides latches
    speech = load_prompt(PROMPTS / "closed-nl.wav").pcm[: 8000 * 2]
    phone.send_audio([ulaw_encode(speech[i:i + 160]) for i in range(0, len(speech), 160)], 0)
    trunk.send_audio([alaw_encode(speech[i:i + 160]) for i in range(0, len(speech), 160)], 8)
    time.sleep(0.3)
    heard_by_callee = trunk.rtp_log.audio("PCMA")
    assert correlation(heard_by_callee, speech) > 0.9  # transcoded µ-law -> A-law
    heard_by_caller = phone.rtp_log.audio("PCMU")
    assert correlation(heard_by_caller, speech) > 0.9  # and back
    phone.hang_up()


@pytest.mark.skipif(not (PCAPS / "dtmf_2833_1.pcap").exists(), reason="sip-tester pcaps missing")
@pytest.mark.parametrize(("pcap", "number"), [("dtmf_2833_1.pcap", "+3225550011"),
                                              ("dtmf_2833_3.pcap", "+3225550013")])  # fmt: skip
def test_menu_choice_by_rfc4733_from_sipp(sipp: str, engine: Any, trunk: Trunk, tmp_path: Path,
                                          pcap: str, number: str) -> None:  # fmt: skip
    xml = scenario(tmp_path, "media_dtmf_uac.xml", PCAP_FILE=str(PCAPS / pcap))
    result = run_sipp(sipp, tmp_path, xml, engine.sip, service=MENU,
                      keys={"caller": "+3226001122"}, extra=("-d", "3000", "-mp", "32000"),
                      trace=True)  # fmt: skip
    assert result.returncode == 0, result.explain()
    _invite_to(trunk, number)


def test_menu_choice_by_inband_tones(phone: Phone, trunk: Trunk) -> None:
    phone.call(MENU, codecs=("PCMU",))
    time.sleep(0.3)
    t = np.arange(int(8000 * 0.08)) / 8000  # "2": 697 Hz + 1336 Hz, 80 ms, about -10 dBm0 each
    tone = (3000 * (np.sin(2 * np.pi * 697 * t) + np.sin(2 * np.pi * 1336 * t))).astype(np.int16)
    audio = np.concatenate([np.zeros(800, np.int16), tone, np.zeros(1600, np.int16)])
    phone.send_audio([ulaw_encode(audio[i:i + 160]) for i in range(0, len(audio), 160)], 0)
    _invite_to(trunk, "+3225550012")
    phone.hang_up()


def test_menu_choice_by_sip_info(phone: Phone, trunk: Trunk) -> None:
    phone.call(MENU, codecs=("PCMU", "PCMA"))
    assert phone.info("3").status == 200
    _invite_to(trunk, "+3225550013")
    phone.hang_up()


def test_a_recorded_call_holds_both_parties(phone: Phone, trunk: Trunk, engine: Any) -> None:
    folder = engine.config.parent / "var" / "recordings" / "itest"
    before = set(folder.rglob("*.wav"))  # every forwarded call of this customer is recorded
    phone.call(RECORDED, codecs=("PCMU",))
    time.sleep(0.3)
    caller_says = load_prompt(PROMPTS / "closed-nl.wav").pcm[: 8000 * 2]
    phone.send_audio([ulaw_encode(caller_says[i:i + 160])
                      for i in range(0, len(caller_says), 160)], 0)  # fmt: skip
    callee_says = load_prompt(PROMPTS / "busy-fr.wav").pcm[: 8000 * 2]
    trunk.send_audio([alaw_encode(callee_says[i:i + 160])
                      for i in range(0, len(callee_says), 160)], 8)  # fmt: skip
    time.sleep(0.2)
    phone.hang_up()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not set(folder.rglob("*.wav")) - before:
        time.sleep(0.05)
    (path,) = set(folder.rglob("*.wav")) - before
    info = soundfile.info(str(path))
    assert (info.samplerate, info.channels, info.subtype) == (8000, 2, "ALAW")
    data, _ = soundfile.read(str(path), dtype="int16")
    assert correlation(data[:, 0], caller_says) > 0.9
    assert correlation(data[:, 1], callee_says) > 0.9


def test_a_crash_during_a_recorded_call_leaves_a_part_the_next_start_recovers(
    serve: Any, trunk: Trunk
) -> None:
    customers = {"itest": {"formula": "classic", "options": ["recording"], "numbers": NUMBERS}}
    server = serve({"media.yaml": tree(NUMBERS, ROUTES, head=HEAD)}, NUMBERS, name="crash",
                   sip=b2bua(trunk.hostport), files=_files(),
                   extra={"customers": customers,
                          "media": {"rtp_ports": [33000, 33099]}})  # fmt: skip
    phone = Phone(server.sip)
    try:
        phone.call(RECORDED, codecs=("PCMU",))
        time.sleep(0.3)
        speech = load_prompt(PROMPTS / "closed-nl.wav").pcm[: 8000 * 2]
        phone.send_audio([ulaw_encode(speech[i:i + 160]) for i in range(0, len(speech), 160)], 0)
        time.sleep(0.2)  # at least a second of audio has reached the file
        server.kill()
    finally:
        phone.close()
    folder = server.config.parent / "var" / "recordings" / "itest"
    assert list(folder.rglob("*.wav.part")) and not list(folder.rglob("*.wav"))
    restarted = serve.restart(server)
    restarted.wait_stderr(r"recording .* was left unfinished by a stop; recovered")
    (path,) = list(folder.rglob("*.wav"))
    assert not list(folder.rglob("*.part"))
    data, rate = soundfile.read(str(path), dtype="int16")
    assert rate == 8000 and len(data) >= 8000  # at least the second that was flushed
    assert correlation(data[:, 0], speech[: len(data)]) > 0.9
