"""SDP (RFC 4566) and the offer/answer model (RFC 3264) for G.711 audio calls.

The engine's media plane speaks PCMU and PCMA, 20 ms packets, and RFC 4733
telephone events. ``parse_sdp`` reads any peer's SDP into dataclasses
(keeping lines it does not use, so nothing a peer says is lost) and raises
``SdpError`` only for bodies that are not SDP; ``answer`` and
``negotiated`` decide what the call will send and receive, and raise
``SdpError`` when there is no audio stream we can carry, which the SIP
layer maps to 488 Not Acceptable Here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "DIRECTIONS",
    "Answer",
    "MediaDescription",
    "Negotiation",
    "Origin",
    "SdpError",
    "SessionDescription",
    "answer",
    "format_sdp",
    "make_offer",
    "negotiated",
    "parse_sdp",
]

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
STATIC_PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8}
_STATIC_CODECS = {0: "PCMU", 8: "PCMA"}
_PTIME = "20"
_DTMF_EVENTS = "0-15"
_RTP_PROFILE = "RTP/AVP"


class SdpError(Exception):
    """A body that is not SDP, or an offer or answer without an audio stream we can carry."""


@dataclass(slots=True)
class Origin:
    """The o= line: who made the description and which version of it this is."""

    username: str
    session_id: int
    version: int
    """Incremented by the author on every new description within a session (RFC 3264 §8)."""
    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"


@dataclass(slots=True)
class MediaDescription:
    """One m= section: a media stream, its formats and its own lines."""

    media: str
    port: int
    protocol: str
    formats: list[str]
    connection: str | None = None
    """Address of the c= line of this section, if it has one."""
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    """a= lines in order, as (name, value); value None for flags such as ``sendonly``."""
    extra: list[tuple[str, str]] = field(default_factory=list)
    """i=, b= and k= lines (and unknown types), kept to be written back."""
    port_count: int | None = None
    """The ``/2`` of ``m=audio 49170/2``, rarely seen."""

    def attribute(self, name: str) -> str | None:
        """The value of the first a= line with this name (``""`` for a flag), or None."""
        for key, value in self.attributes:
            if key == name:
                return "" if value is None else value
        return None

    def rtpmap(self) -> dict[str, str]:
        """Payload type -> ``encoding/clock[/channels]`` from the a=rtpmap lines."""
        maps = {}
        for key, value in self.attributes:
            if key == "rtpmap" and value is not None:
                pt, _, encoding = value.partition(" ")
                maps[pt] = encoding.strip()
        return maps

    def fmtp(self, payload_type: str) -> str | None:
        """The format parameters of one payload type, or None."""
        for key, value in self.attributes:
            if key == "fmtp" and value is not None:
                pt, _, params = value.partition(" ")
                if pt == payload_type:
                    return params.strip()
        return None


@dataclass(slots=True)
class SessionDescription:
    """A whole SDP body."""

    origin: Origin
    name: str
    media: list[MediaDescription]
    connection: str | None = None
    """Address of the session-level c= line, used by sections without their own."""
    times: list[str] = field(default_factory=lambda: ["0 0"])
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    extra: list[tuple[str, str]] = field(default_factory=list)
    """Session lines other than v, o, s, c, t and a (i=, u=, e=, p=, b=, r=, z=, k=, unknown)."""

    def attribute(self, name: str) -> str | None:
        """The value of the first session-level a= line with this name, or None."""
        for key, value in self.attributes:
            if key == name:
                return "" if value is None else value
        return None


@dataclass(frozen=True, slots=True)
class Negotiation:
    """What an offer and its answer settled for the audio stream."""

    codec: str
    """``PCMU`` or ``PCMA``."""
    payload_type: int
    dtmf_payload_type: int | None
    """The telephone-event/8000 payload type both sides agreed on, None if not both."""
    remote_address: str
    remote_port: int
    remote_direction: str
    """What the peer said it does: ``sendrecv``, ``sendonly``, ``recvonly`` or ``inactive``."""
    direction: str
    """What we do: the mirror of the peer's direction within what we offered."""

    @property
    def hold(self) -> bool:
        """The peer does not want our audio (``sendonly``, ``inactive`` or ``c=0.0.0.0``)."""
        return self.remote_direction in ("sendonly", "inactive")


@dataclass(frozen=True, slots=True)
class Answer(Negotiation):
    """Our answer to an offer, with what it settles."""

    sdp: SessionDescription


def _number(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts '²', which ``int`` refuses."""
    return text.isascii() and text.isdigit()


def _connection(value: str, number: int) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"line {number}: c= must be 'IN IP4|IP6 ADDRESS', not {value!r}")
    return parts[2]


def _attribute(value: str) -> tuple[str, str | None]:
    name, colon, rest = value.partition(":")
    return (name, rest) if colon else (name, None)


def _origin(value: str, number: int) -> Origin:
    parts = value.split()
    if len(parts) != 6 or not _number(parts[1]) or not _number(parts[2]):
        raise SdpError(
            f"line {number}: o= must be 'USER SESSION-ID VERSION IN IP4 ADDRESS', not {value!r}"
        )
    return Origin(parts[0], int(parts[1]), int(parts[2]), parts[5], parts[3], parts[4])


def _media(value: str, number: int) -> MediaDescription:
    parts = value.split()
    if len(parts) < 4:
        raise SdpError(f"line {number}: m= must be 'MEDIA PORT PROTO FORMAT...', not {value!r}")
    port_text, _, count_text = parts[1].partition("/")
    if not _number(port_text) or int(port_text) > 65535 or (count_text and not _number(count_text)):
        raise SdpError(f"line {number}: bad port {parts[1]!r} in m=")
    port_count = int(count_text) if count_text else None
    return MediaDescription(parts[0], int(port_text), parts[2], parts[3:], port_count=port_count)


def parse_sdp(body: bytes) -> SessionDescription:
    """The session a body describes, or SdpError saying which line is wrong.

    Lines may end in CRLF or in LF alone (RFC 4566 §5 asks parsers to accept
    both); unknown attributes and line types are kept, not refused.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SdpError("SDP is not UTF-8 text") from None
    lines = [(n, line.rstrip("\r")) for n, line in enumerate(text.split("\n"), 1)]
    lines = [(n, line) for n, line in lines if line.strip()]
    if not lines or lines[0][1] != "v=0":
        raise SdpError("SDP must start with v=0")
    origin: Origin | None = None
    name: str | None = None
    session = SessionDescription(Origin("", 0, 0, ""), "", [], times=[])
    current: MediaDescription | None = None
    for number, line in lines[1:]:
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise SdpError(f"line {number}: not an SDP 'x=value' line: {line[:40]!r}")
        kind, value = line[0], line[2:]
        if kind == "m":
            current = _media(value, number)
            session.media.append(current)
        elif kind == "a":
            (session.attributes if current is None else current.attributes).append(
                _attribute(value)
            )
        elif kind == "c":
            if current is None:
                session.connection = _connection(value, number)
            else:
                current.connection = _connection(value, number)
        elif current is not None:
            current.extra.append((kind, value))
        elif kind == "o":
            origin = _origin(value, number)
        elif kind == "s":
            name = value
        elif kind == "t":
            session.times.append(value)
        elif kind == "v":
            raise SdpError(f"line {number}: a second v= line")
        else:
            session.extra.append((kind, value))
    if origin is None:
        raise SdpError("SDP has no o= line")
    if name is None:
        raise SdpError("SDP has no s= line")
    if not session.media:
        raise SdpError("SDP has no m= line")
    for media in session.media:
        if media.connection is None and session.connection is None and media.port != 0:
            raise SdpError(f"m={media.media} has no c= line, nor has the session")
    session.origin = origin
    session.name = name
    if not session.times:
        session.times = ["0 0"]
    return session


def _addrtype(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def _extra(extra: list[tuple[str, str]], kinds: str, keep: bool = True) -> list[str]:
    """The extra lines whose kind is (or, ``keep`` False, is not) in ``kinds``, in order."""
    return [f"{kind}={value}" for kind, value in extra if (kind in kinds) == keep]


def _attributes(attributes: list[tuple[str, str | None]]) -> list[str]:
    return [f"a={name}" if value is None else f"a={name}:{value}" for name, value in attributes]


def format_sdp(sd: SessionDescription) -> bytes:
    """The body of a description, CRLF line ends, lines in RFC 4566 order."""
    o = sd.origin
    lines = [
        "v=0",
        f"o={o.username} {o.session_id} {o.version} {o.nettype} {o.addrtype} {o.address}",
        f"s={sd.name or '-'}",
    ]
    lines += _extra(sd.extra, "iuep")
    if sd.connection is not None:
        lines.append(f"c=IN {_addrtype(sd.connection)} {sd.connection}")
    lines += _extra(sd.extra, "b")
    lines += [f"t={time}" for time in sd.times]
    lines += _extra(sd.extra, "iuepb", keep=False)  # r=, z=, k= and unknown kinds
    lines += _attributes(sd.attributes)
    for media in sd.media:
        port = f"{media.port}/{media.port_count}" if media.port_count else str(media.port)
        lines.append(f"m={media.media} {port} {media.protocol} {' '.join(media.formats)}")
        lines += _extra(media.extra, "i")
        if media.connection is not None:
            lines.append(f"c=IN {_addrtype(media.connection)} {media.connection}")
        lines += _extra(media.extra, "i", keep=False)  # b=, k= and unknown kinds
        lines += _attributes(media.attributes)
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _direction(media: MediaDescription, session: SessionDescription) -> str:
    """The stream's direction, with RFC 2543 hold (c=0.0.0.0) meaning 'do not send to me'."""
    direction = next(
        (name for name, _ in media.attributes if name in DIRECTIONS),
        next((name for name, _ in session.attributes if name in DIRECTIONS), "sendrecv"),
    )
    if (media.connection or session.connection) == "0.0.0.0":
        direction = {"sendrecv": "sendonly", "recvonly": "inactive"}.get(direction, direction)
    return direction


def _mirror(remote: str, ours: str = "sendrecv") -> str:
    """Our direction: we send if the peer receives, we receive if it sends, within ``ours``."""
    send = remote in ("sendrecv", "recvonly") and ours in ("sendrecv", "sendonly")
    receive = remote in ("sendrecv", "sendonly") and ours in ("sendrecv", "recvonly")
    return {
        (True, True): "sendrecv",
        (True, False): "sendonly",
        (False, True): "recvonly",
        (False, False): "inactive",
    }[send, receive]


def _encoding(pt: str, rtpmap: dict[str, str]) -> str | None:
    """``NAME/CLOCK`` (upper case, mono implied) of a payload type, None if unknown."""
    if pt in rtpmap:
        parts = rtpmap[pt].upper().split("/")
        if len(parts) == 3 and parts[2] == "1":
            parts.pop()
        return "/".join(parts)
    if _number(pt) and int(pt) in _STATIC_CODECS:
        return f"{_STATIC_CODECS[int(pt)]}/8000"
    return None


def _choose(
    formats: Iterable[str], supported: Iterable[str], rtpmap: dict[str, str]
) -> tuple[str, str, str | None] | None:
    """(codec, payload type, telephone-event payload type) of a stream, None if no codec fits."""
    wanted = {f"{name.upper()}/8000": name.upper() for name in supported}
    codec: tuple[str, str] | None = None
    dtmf = None
    for pt in formats:
        encoding = _encoding(pt, rtpmap)
        if codec is None and encoding in wanted:
            codec = (wanted[encoding], pt)
        elif dtmf is None and encoding == "TELEPHONE-EVENT/8000":
            dtmf = pt
    return None if codec is None else (*codec, dtmf)


def _payload_type(pt: str) -> int:
    if not _number(pt) or int(pt) > 127:
        raise SdpError(f"payload type {pt!r} is not a number from 0 to 127")
    return int(pt)


def _our_session(
    address: str, session_id: int, version: int, media: list[MediaDescription]
) -> SessionDescription:
    origin = Origin("vms", session_id, version, address, addrtype=_addrtype(address))
    return SessionDescription(origin, "vms", media, connection=address)


def make_offer(
    address: str,
    port: int,
    session_id: int,
    version: int,
    codecs: Iterable[str] = ("PCMU", "PCMA"),
    dtmf_payload_type: int | None = 101,
    direction: str = "sendrecv",
) -> SessionDescription:
    """Our offer of one audio stream; ``version`` must grow with each new offer in a session."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    formats: list[str] = []
    attributes: list[tuple[str, str | None]] = []
    for codec in codecs:
        if codec.upper() not in STATIC_PAYLOAD_TYPES:
            raise ValueError(f"codec {codec!r} is not one of {', '.join(STATIC_PAYLOAD_TYPES)}")
        pt = str(STATIC_PAYLOAD_TYPES[codec.upper()])
        formats.append(pt)
        attributes.append(("rtpmap", f"{pt} {codec.upper()}/8000"))
    if dtmf_payload_type is not None:
        formats.append(str(dtmf_payload_type))
        attributes.append(("rtpmap", f"{dtmf_payload_type} telephone-event/8000"))
        attributes.append(("fmtp", f"{dtmf_payload_type} {_DTMF_EVENTS}"))
    attributes += [("ptime", _PTIME), (direction, None)]
    media = MediaDescription("audio", port, _RTP_PROFILE, formats, attributes=attributes)
    return _our_session(address, session_id, version, [media])


def answer(
    offer: SessionDescription,
    address: str,
    port: int,
    session_id: int,
    version: int,
    supported: Iterable[str] = ("PCMU", "PCMA"),
) -> Answer:
    """Our answer to an offer: its first audio stream we can carry, every other one refused.

    The codec is the offerer's first choice among ours (RFC 3264 §6.1: the
    offerer lists formats by preference), under the offerer's payload type
    number. Refused streams (video, extra audio, SRTP) get port 0 with their
    formats, as §6 requires. SdpError when no audio stream fits.
    """
    supported = tuple(supported)
    media_lines: list[MediaDescription] = []
    chosen: Negotiation | None = None
    for offered in offer.media:
        choice = None
        if (
            chosen is None
            and offered.media == "audio"
            and offered.port != 0
            and offered.protocol.upper() == _RTP_PROFILE
        ):
            choice = _choose(offered.formats, supported, offered.rtpmap())
        if choice is None:
            media_lines.append(
                MediaDescription(offered.media, 0, offered.protocol, list(offered.formats))
            )
            continue
        codec, pt, dtmf = choice
        remote = _direction(offered, offer)
        ours = _mirror(remote)
        attributes: list[tuple[str, str | None]] = [("rtpmap", f"{pt} {codec}/8000")]
        formats = [pt]
        if dtmf is not None:
            formats.append(dtmf)
            attributes.append(("rtpmap", f"{dtmf} telephone-event/8000"))
            attributes.append(("fmtp", f"{dtmf} {offered.fmtp(dtmf) or _DTMF_EVENTS}"))
        attributes += [("ptime", _PTIME), (ours, None)]
        media_lines.append(
            MediaDescription("audio", port, offered.protocol, formats, attributes=attributes)
        )
        chosen = Negotiation(
            codec=codec,
            payload_type=_payload_type(pt),
            dtmf_payload_type=None if dtmf is None else _payload_type(dtmf),
            remote_address=offered.connection or offer.connection or "",
            remote_port=offered.port,
            remote_direction=remote,
            direction=ours,
        )
    if chosen is None:
        offered_audio = [" ".join(m.formats) for m in offer.media if m.media == "audio"]
        raise SdpError(
            f"no audio stream with {' or '.join(supported)} in the offer "
            f"(audio formats offered: {'; '.join(offered_audio) or 'none'})"
        )
    sdp = _our_session(address, session_id, version, media_lines)
    return Answer(
        chosen.codec,
        chosen.payload_type,
        chosen.dtmf_payload_type,
        chosen.remote_address,
        chosen.remote_port,
        chosen.remote_direction,
        chosen.direction,
        sdp,
    )


def negotiated(
    offer: SessionDescription,
    answer: SessionDescription,
    supported: Iterable[str] = ("PCMU", "PCMA"),
) -> Negotiation:
    """What a callee's answer to our offer settles, or SdpError if it settles nothing usable.

    The answer must mirror the offer's m= lines (RFC 3264 §6); the first
    audio stream it accepts (non-zero port) is the call's, with the first of
    its formats that we offered and support.
    """
    if len(answer.media) != len(offer.media):
        raise SdpError(
            f"the answer has {len(answer.media)} m= lines for the {len(offer.media)} offered"
        )
    for ours, theirs in zip(offer.media, answer.media, strict=True):
        if theirs.media != "audio" or theirs.port == 0 or ours.port == 0:
            continue
        rtpmap = {**ours.rtpmap(), **theirs.rtpmap()}
        offered = [pt for pt in theirs.formats if pt in ours.formats]
        choice = _choose(offered, supported, rtpmap)
        if choice is None:
            continue
        codec, pt, dtmf = choice
        remote = _direction(theirs, answer)
        return Negotiation(
            codec=codec,
            payload_type=_payload_type(pt),
            dtmf_payload_type=None if dtmf is None else _payload_type(dtmf),
            remote_address=theirs.connection or answer.connection or "",
            remote_port=theirs.port,
            remote_direction=remote,
            direction=_mirror(remote, _direction(ours, offer)),
        )
    raise SdpError("the answer accepts no audio stream with a codec we offered")
