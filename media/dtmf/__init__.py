"""DTMF from its three carriers: RFC 4733 events, in-band tones and SIP INFO, merged per leg."""

from media.dtmf.collector import DigitCollector
from media.dtmf.relay import DtmfInfo, format_dtmf_relay, parse_dtmf_relay
from media.dtmf.rfc4733 import (
    DIGITS,
    EventPacket,
    EventReceiver,
    EventSender,
    TelephoneEvent,
    decode_event,
    encode_event,
)
from media.dtmf.tones import ToneDetector

__all__ = [
    "DIGITS",
    "DigitCollector",
    "DtmfInfo",
    "EventPacket",
    "EventReceiver",
    "EventSender",
    "TelephoneEvent",
    "ToneDetector",
    "decode_event",
    "encode_event",
    "format_dtmf_relay",
    "parse_dtmf_relay",
]
