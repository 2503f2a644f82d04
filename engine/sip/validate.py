"""Is a new request acceptable? RFC 3261 §8.2 in the order it gives.

Syntax first (400: the headers a UAS is judged on must be readable), then
method inspection (501 unknown, 405 not allowed here), then header
inspection (416 URI scheme, 483 Max-Forwards, 420 Require), then content
processing (415 body type, 406 Accept). RFC 4475's torture messages are the
test cases; its guidance for each is recorded in tests/data/rfc4475/.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.utils import parsedate_tz

from engine.sip.headers import parse_address
from engine.sip.message import Request

__all__ = ["KNOWN_METHODS", "Policy", "Refusal", "check_request", "reason_phrase"]

KNOWN_METHODS = frozenset(
    {
        "INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE",
        "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
    }
)  # fmt: skip
MAGIC_COOKIE = "z9hG4bK"
_SCHEMES = frozenset({"sip", "sips", "tel"})
_DIGITS = frozenset("0123456789")
_SDP_TYPES = frozenset({"application/sdp", "multipart/mixed", "multipart/alternative"})
_PHRASE_MAX = 64


@dataclass(frozen=True, slots=True)
class Refusal:
    """The final response a request gets instead of reaching the TU."""

    status: int
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Policy:
    """What the transaction user accepts: methods and option tags."""

    allowed: frozenset[str]
    supported: frozenset[str] = frozenset()
    allow_header: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "allow_header", ", ".join(sorted(self.allowed)))


def check_request(request: Request, policy: Policy) -> Refusal | None:
    """None if the request may go to the TU, else the response to send.

    The caller has already read the top Via and the CSeq (it needs them to
    match transactions), so both are known to be well formed here. Any other
    header read on the way that turns out malformed is a 400, never an
    exception out of here.
    """
    try:
        return _check(request, policy)
    except ValueError as exc:
        return Refusal(400, reason_phrase(exc))


def _check(request: Request, policy: Policy) -> Refusal | None:
    refusal = _syntax(request)
    if refusal is not None:
        return refusal
    method = request.method
    if method not in KNOWN_METHODS:
        return Refusal(501, None, (("allow", policy.allow_header),))
    if request.cseq()[1] != method:
        return Refusal(400, "CSeq Method Mismatch")
    if method not in policy.allowed:
        return Refusal(405, None, (("allow", policy.allow_header),))
    headers = request.headers
    if request.request_uri().scheme not in _SCHEMES:
        return Refusal(416)
    max_forwards = headers.get("max-forwards")
    if max_forwards is not None and not max_forwards[0].strip("0") and not _to_us(request):
        return Refusal(483)
    if "require" in headers and method != "CANCEL":
        unknown = [tag for tag in request.values("require") if tag not in policy.supported]
        if unknown:
            return Refusal(420, None, (("unsupported", ", ".join(unknown)),))
    if method == "INVITE" and (request.body or "accept" in headers):
        return _content(request)
    return None


def _syntax(request: Request) -> Refusal | None:
    try:
        request.from_address()
        request.to_address()
        uri = request.request_uri()
    except ValueError as exc:
        return Refusal(400, reason_phrase(exc))
    if uri.headers is not None:
        return Refusal(400, "Headers In Request-URI")
    if request.top_via().branch == MAGIC_COOKIE:
        return Refusal(400, "Bad Via Branch")
    if not request.headers["call-id"][0]:
        return Refusal(400, "Empty Call-ID")
    max_forwards = request.get("max-forwards")
    if max_forwards is not None and (
        not max_forwards or len(max_forwards) > 9 or not _DIGITS.issuperset(max_forwards)
        or int(max_forwards) > 255
    ):
        return Refusal(400, "Bad Max-Forwards")
    contacts = request.headers.get("contact")
    if contacts is not None:
        refusal = _contacts(request)
        if refusal is not None:
            return refusal
    date = request.get("date")
    if date is not None and (not date.endswith(" GMT") or parsedate_tz(date) is None):
        return Refusal(400, "Bad Date")
    return None


def _contacts(request: Request) -> Refusal | None:
    values = request.values("contact")
    if values == ["*"] and request.method == "REGISTER":
        return None
    try:
        for value in values:
            parse_address(value)
    except ValueError:
        return Refusal(400, "Bad Contact")
    return None


def reason_phrase(exc: Exception, fallback: str = "Bad Request") -> str:
    """A short ASCII reason phrase from a parse error, which may quote the peer's bytes."""
    text = str(exc)
    if not text or not text.isascii() or not text.isprintable():
        return fallback
    text = text[:1].upper() + text[1:]
    return text if len(text) <= _PHRASE_MAX else text[: _PHRASE_MAX - 3] + "..."


def _to_us(request: Request) -> bool:
    """An OPTIONS addressed to the server itself (no user part) is ours to answer."""
    return request.method == "OPTIONS" and request.request_uri().user is None


def _content(request: Request) -> Refusal | None:
    if request.body:
        ctype = (request.get("content-type") or "").partition(";")[0].strip().lower()
        if ctype not in _SDP_TYPES:
            return Refusal(415, None, (("accept", "application/sdp"),))
    accept = request.headers.get("accept")
    if accept is not None:
        types = {v.partition(";")[0].strip().lower() for v in request.values("accept")}
        if types and not types & {"application/sdp", "application/*", "*/*"}:
            return Refusal(406)
    return None
