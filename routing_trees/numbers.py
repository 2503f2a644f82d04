"""Phone numbers: normalise to E.164 and classify Belgian ones.

Trees, SIP request-URIs and CLI arguments carry numbers in three forms, all
normalised to E.164 (``+`` and the digits) before anything compares them:

- E.164: ``+3225551234``;
- international: ``003225551234`` (``00`` replaces the ``+``);
- national (Belgian): ``025551234`` (a leading ``0`` stands for ``+32``).

Hand-written files may add visual separators (spaces, dots, slashes, dashes,
parentheses) and the Belgian habit ``+32 (0)2 555 12 34``; they are dropped.
The SIP engine calls :func:`to_e164` on every request-URI user part, so the
usual case (``+`` and ASCII digits) returns early without any rewriting.

Validity: an E.164 number has 7 to 15 digits, the first not ``0``. A Belgian
number (``+32``) has a national significant number (NSN, the national form
without its ``0``) of 8 digits (fixed and special services) or 9 (mobile).

Classification of a Belgian NSN (BIPT national numbering plan):

- geographic: a zone and a subscriber number, 8 digits in all. One-digit
  zones 2 (Brussels), 3 (Antwerp), 4 (Liège), 9 (Ghent) with 7 subscriber
  digits; two-digit zones (10-16, 19, 50-61, 63-65, 67-69, 71, 80-87, 89)
  with 6. A subscriber number never starts with ``0``: that is what keeps
  0800 (freephone) apart from zone 80 and 090x (premium) apart from zone 9.
  The one-digit zones and zone 80 are narrower still (the first digits
  libphonenumber's Belgian metadata allows, after BIPT's allocations):
  Brussels and Antwerp 2-8, Liège 2-3, Ghent 2-4, zone 80 2-8; so a mobile
  number missing a digit (``0471 23 45 6``) is not taken for Liège;
- mobile: 9 digits starting with 4 (``04xx xx xx xx``), not to be confused
  with Liège (zone 4 and 7 digits, so 8 in all);
- freephone ``0800``, premium rate ``090x``, shared cost ``070``, national
  rate ``078``, and ``077`` (non-geographic, machine-to-machine) numbers;
- ``+800`` is the international freephone (UIFN) code, never served.

Serving (requirements.md, "Numbers and traffic"): VMS serves geographic
numbers only, and not those carrying Calling Name Identification
Presentation (CNIP), Enterprise Office Switch or One Company Number, which
the configuration marks with :data:`NUMBER_FLAGS`.
"""

from __future__ import annotations

import re
from enum import Enum

__all__ = [
    "NUMBER_FLAGS",
    "NumberKind",
    "flag_problem",
    "is_geographic",
    "number_kind",
    "prefix_to_e164",
    "serving_problem",
    "to_e164",
]

_SEPARATORS = str.maketrans("", "", " \t.-/()")
_E164 = re.compile(r"\+(?:32[1-9][0-9]{7,8}|(?!32)[1-9][0-9]{6,14})")
"""Valid E.164: 7 to 15 digits, the first not 0; a Belgian NSN has 8 or 9 digits."""
_ANY = "123456789"
#: Geographic zone -> the digits its subscriber numbers may start with.
_ZONES: dict[str, str] = {
    "2": "2345678", "3": "2345678", "4": "23", "9": "234",
    **{zone: _ANY for zone in ("10", "11", "12", "13", "14", "15", "16", "19")},
    **{str(zone): _ANY for zone in range(50, 62)},
    **{zone: _ANY for zone in ("63", "64", "65", "67", "68", "69", "71")},
    "80": "2345678",
    **{str(zone): _ANY for zone in range(81, 88)},
    "89": _ANY,
}  # fmt: skip

#: Services on a number that keep VMS off it: flag -> what it is called.
NUMBER_FLAGS: dict[str, str] = {
    "cnip": "Calling Name Identification Presentation (CNIP)",
    "enterprise_office_switch": "Enterprise Office Switch",
    "one_company_number": "One Company Number",
}


class NumberKind(Enum):
    """What a number is, as the sentence ``X is <description>`` says it."""

    GEOGRAPHIC = "a geographic number"
    MOBILE = "a mobile number"
    FREEPHONE = "a freephone (0800) number"
    PREMIUM = "a premium-rate (090x) number"
    SHARED_COST = "a shared-cost (070) number"
    NATIONAL_RATE = "a national-rate (078) number"
    NON_GEOGRAPHIC = "a non-geographic (077) number"
    BELGIAN_OTHER = "not a geographic number of the Belgian numbering plan"
    INTERNATIONAL_FREEPHONE = "an international freephone (+800) number"
    FOREIGN = "a foreign number"

    @property
    def description(self) -> str:
        return self.value


def to_e164(raw: str) -> str | None:
    """The E.164 form of a number written in any accepted form, or None."""
    if _E164.fullmatch(raw) is not None:
        return raw
    text = raw.strip()
    if "(0)" in text and (text[:1] == "+" or text[:2] == "00"):
        text = text.replace("(0)", "", 1)
    text = text.translate(_SEPARATORS)
    e164 = _expand(text)
    return e164 if e164 is not None and _E164.fullmatch(e164) is not None else None


def prefix_to_e164(raw: str) -> str | None:
    """The E.164 form of a prefix written ``NUMBER*`` in any accepted form.

    ``+3226*``, ``026*`` and ``003226*`` all give ``+3226``; ``0*`` gives
    ``+32`` (every Belgian number). None when it is not such a prefix.
    """
    text = raw.strip()
    if not text.endswith("*"):
        return None
    text = text[:-1].translate(_SEPARATORS)
    e164 = _expand(text)
    if e164 is None or not e164.isascii() or not e164[1:].isdigit():
        return None
    digits = len(e164) - 1
    if e164[1] == "0" or digits > 15:
        return None
    if e164.startswith("+32") and (digits > 11 or (digits > 2 and e164[3] == "0")):
        return None
    return e164


def _expand(text: str) -> str | None:
    """``+…`` as is, ``00…`` to ``+…``, Belgian national ``0…`` to ``+32…``."""
    if text[:1] == "+":
        return text
    if text[:2] == "00":
        return "+" + text[2:]
    if text[:1] == "0":
        return "+32" + text[1:]
    return None


def number_kind(e164: str) -> NumberKind:
    """Classify a valid E.164 number (see the module docstring for the rules)."""
    if e164.startswith("+800"):
        return NumberKind.INTERNATIONAL_FREEPHONE
    if not e164.startswith("+32"):
        return NumberKind.FOREIGN
    nsn = e164[3:]
    if len(nsn) == 9:
        return NumberKind.MOBILE if nsn[0] == "4" else NumberKind.BELGIAN_OTHER
    if len(nsn) != 8:
        return NumberKind.BELGIAN_OTHER
    if nsn.startswith("800"):
        return NumberKind.FREEPHONE
    if nsn.startswith("90"):
        return NumberKind.PREMIUM
    special = _SPECIAL.get(nsn[:2])
    if special is not None:
        return special
    zone = nsn[:1] if nsn[:1] in _ZONES else nsn[:2]
    first = _ZONES.get(zone)
    if first is None or nsn[len(zone)] not in first:
        return NumberKind.BELGIAN_OTHER
    return NumberKind.GEOGRAPHIC


_SPECIAL = {
    "70": NumberKind.SHARED_COST,
    "78": NumberKind.NATIONAL_RATE,
    "77": NumberKind.NON_GEOGRAPHIC,
}


def is_geographic(e164: str) -> bool:
    """True for a Belgian geographic (fixed-line zone) number in E.164."""
    return number_kind(e164) is NumberKind.GEOGRAPHIC


def serving_problem(e164: str) -> str | None:
    """Why VMS may not serve ``e164`` for what it is, or None for a geographic number."""
    kind = number_kind(e164)
    if kind is NumberKind.GEOGRAPHIC:
        return None
    return f"{e164} is {kind.description}; VMS serves geographic numbers only"


def flag_problem(e164: str, flag: str) -> str:
    """Why VMS may not serve ``e164``, which carries the service ``flag`` (of NUMBER_FLAGS)."""
    return (
        f"{e164} carries {NUMBER_FLAGS[flag]}; VMS serves geographic numbers without CNIP, "
        "Enterprise Office Switch or One Company Number only"
    )
