"""Flood limits: call-rate limits per called number and per source address.

requirements.md: "A number whose traffic surges explosively (enough to
endanger the network) may be stopped: the engine protects itself and the
network from floods." Each called number and each source address has a
token bucket; a new INVITE takes one token from both, and an INVITE that
finds either bucket empty is refused at once (503 with Retry-After, or 486)
before any routing decision is made. Calls already admitted are never
touched: the guard only sees new INVITEs and keeps no call state.

How the transaction users call it (redirect service and B2BUA alike), for
each *initial* INVITE (no To tag; never for re-INVITEs, ACK, BYE, CANCEL,
and never for retransmissions, which the stack absorbs before the TU), before
the tree is evaluated and before an unknown number's 404::

    called = called_number(request)                  # engine.router, E.164 or None
    tree = router.trees.lookup(called) if called else None   # a dict lookup
    if tree is None:  # unknown number: the source's bucket only
        refusal = floods.admit(None, None, txn.addr[0])
    else:
        refusal = floods.admit(called, tree.customer, txn.addr[0])
    if refusal is not None:
        txn.respond(refusal.response(request, stack.to_tag(txn)))
        return

A number no tree serves takes no per-number bucket: a source spraying random
numbers would otherwise fill that table and push out the buckets of real
numbers; its own per-source bucket is what stops it.

``txn.addr[0]`` is the address the request came from (the stack stamps
``received``/``rport``, so for UDP and TCP alike it is the source IP). On a
configuration reload call :meth:`FloodGuard.configure` with the new
settings; the buckets carry on. ``floods.counters`` holds what was admitted,
refused (per kind) and evicted, for statistics (``GET /api/counters``).

The buckets are filled from the clock (``IReactorTime.seconds``), never by
timers. Each is kept as one float, the time at which it will be full again
(the "virtual scheduling" form of a token bucket, ITU-T I.371's GCRA): with
rate ``r`` and capacity ``b``, a bucket full again at ``F`` holds
``b - r * max(0, F - now)`` tokens, so it has a token when
``F - now <= (b - 1) / r``, and taking one moves ``F`` to ``max(F, now) + 1/r``.
That is the token bucket exactly, with no refill arithmetic per call and no
state to update for a bucket that is idle. A bucket is never more than
``b / r`` ahead of now; one that is (the wall clock was set back) starts
afresh, so a clock step never refuses calls for the length of the step.

Memory is bounded under an attack from many addresses or to many numbers:
each table holds at most ``max_numbers`` / ``max_sources`` buckets in
least-recently-used order (an ``OrderedDict``: lookup, move to the end and
eviction of the oldest are O(1)). The oldest bucket is nearly always full
again (idle), so evicting it loses nothing; when it is not (more active
sources than the cap, e.g. spoofed addresses), it starts full again when it
comes back, which is why the per-number limit is the one that stops a flood
at a number, whatever addresses it comes from. A bucket costs about 115
bytes plus its key (``bench/floods.py``): under 25 MB per table at the caps.

Refusals are logged through ``engine.ratelog.RateLimitedLog``: at most one
line per kind per interval, with the count of the lines suppressed.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

from engine.ratelog import RateLimitedLog
from engine.sip.message import Request, Response

__all__ = [
    "NUMBER",
    "SOURCE",
    "FloodCounters",
    "FloodGuard",
    "FloodRefusal",
    "FloodSettings",
    "RateLimit",
]

log = logging.getLogger(__name__)

NUMBER: Final = "number"
SOURCE: Final = "source"
RESPONSES: Final = (503, 486)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket: ``rate`` calls per second sustained, ``burst`` at once from full."""

    rate: float
    burst: int


@dataclass(frozen=True, slots=True)
class FloodSettings:
    """``floods:`` in the configuration; the defaults are meant for production.

    - ``per_number`` 20 calls/s, burst 40: one geographic number of a business.
      A 200-seat contact centre with 3-minute calls takes about 1 call/s, and
      a radio or TV campaign peaks at a few per second; 20/s sustained with 40
      at once is an order of magnitude above any of that, and still far below
      what a televote, a misconfigured auto-dialler or an attack throws at one
      number (hundreds per second), which would saturate the trunk and the
      destination's lines for everyone else.
    - ``per_source`` 500 calls/s, burst 1000: a source is a peer (softswitch,
      SBC, PBX) carrying many customers' calls. One engine process serves about
      2,000 to 3,000 calls/s (DEVELOPERS.md), so one runaway peer is held to a
      fraction of it while the others keep their share; the burst absorbs a
      peer's queue draining after a network hiccup.
    - ``response`` 503 with ``Retry-After`` (the issue's choice: the call can
      be tried again later). Some upstreams treat a 503 as "this server is
      down" and divert *all* traffic away for Retry-After seconds (RFC 3261
      §21.5.4, RFC 3263 failover); with those, choose 486 (Busy Here), which
      ends only the excess call.
    - ``retry_after`` 5 seconds, like the overload 503: long enough for a burst
      to pass, short enough for a human caller's redial to get through.
    """

    per_number: RateLimit = field(default_factory=lambda: RateLimit(20.0, 40))
    per_source: RateLimit = field(default_factory=lambda: RateLimit(500.0, 1000))
    response: int = 503
    retry_after: int = 5


@dataclass(frozen=True, slots=True)
class FloodRefusal:
    """Why an INVITE is refused, and the final response it gets."""

    kind: str  # NUMBER or SOURCE
    status: int
    reason: str
    retry_after: int

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        return (("retry-after", str(self.retry_after)),) if self.retry_after else ()

    def response(self, request: Request, to_tag: str | None) -> Response:
        """The final response to ``request`` (``Retry-After`` when configured)."""
        response = request.response(self.status, self.reason, to_tag)
        if self.retry_after:
            response.add("retry-after", str(self.retry_after))
        return response


@dataclass(slots=True)
class FloodCounters:
    """What the guard did, for statistics and tests."""

    admitted: int = 0
    refused_number: int = 0
    refused_source: int = 0
    evicted_numbers: int = 0
    evicted_sources: int = 0


class _Now(Protocol):
    def seconds(self) -> float: ...


def _shape(limit: RateLimit) -> tuple[float, float]:
    """(seconds per token, how far ahead of now a bucket's full time may be)."""
    step = 1.0 / limit.rate
    # A hundredth of a token absorbs the rounding of adding ``step`` to times
    # counted from the guard's start, so the last call of a burst is never
    # refused for a rounding error (exact for years of uptime at the defaults).
    return step, (limit.burst - 1) * step + step / 100


class FloodGuard:
    """Admits or refuses new INVITEs; ``admit`` costs about a microsecond."""

    def __init__(
        self,
        clock: _Now,
        defaults: FloodSettings | None = None,
        per_customer: Mapping[str, RateLimit] | None = None,
        *,
        max_numbers: int = 100_000,
        max_sources: int = 100_000,
        log_interval: float = 10.0,
    ) -> None:
        self.clock = clock
        #: Bucket times count from here: small floats keep ``+ step`` exact enough
        #: (an epoch time's own rounding step is 0.24 µs).
        self.epoch = clock.seconds()
        self.max_numbers = max_numbers
        self.max_sources = max_sources
        self.counters = FloodCounters()
        self.ratelog = RateLimitedLog(log, clock, log_interval)
        #: Time each bucket is full again (from ``epoch``), least recently used first.
        self.numbers: OrderedDict[str, float] = OrderedDict()
        self.sources: OrderedDict[str, float] = OrderedDict()
        self.configure(defaults or FloodSettings(), per_customer or {})

    def configure(self, defaults: FloodSettings, per_customer: Mapping[str, RateLimit]) -> None:
        """New settings (a reload); the buckets keep their state."""
        self.settings = defaults
        self.per_customer = dict(per_customer)
        self._number = _shape(defaults.per_number)
        self._source = _shape(defaults.per_source)
        self._customer = {cid: _shape(limit) for cid, limit in per_customer.items()}
        reason = "Call Rate Limited"
        self._refuse_number = FloodRefusal(NUMBER, defaults.response, reason, defaults.retry_after)
        self._refuse_source = FloodRefusal(SOURCE, defaults.response, reason, defaults.retry_after)

    def admit(
        self, called: str | None, customer: str | None, source_ip: str
    ) -> FloodRefusal | None:
        """Take a token for a new INVITE, or say why it is refused (nothing taken then).

        ``called`` is the E.164 number dialled (None: no per-number limit),
        ``customer`` the id of the customer that owns it (None: the default
        limit), ``source_ip`` the address the INVITE came from.
        """
        now = self.clock.seconds() - self.epoch
        sources = self.sources
        step, slack = self._source
        full = sources.get(source_ip)
        if full is None:
            source_full = now + step
        else:
            sources.move_to_end(source_ip)
            if full < now:
                full = now
            elif full - now > slack:
                if full - now <= slack + step:
                    return self._refused_source(source_ip)
                full = now  # further ahead than a bucket can be: the clock went back
            source_full = full + step
        if called is not None:
            numbers = self.numbers
            step, slack = self._customer.get(customer or "", self._number)
            full = numbers.get(called)
            if full is None:
                number_full = now + step
            else:
                numbers.move_to_end(called)
                if full < now:
                    full = now
                elif full - now > slack:
                    if full - now <= slack + step:
                        return self._refused_number(called, customer)
                    full = now  # the clock went back (see above)
                number_full = full + step
            numbers[called] = number_full
            if len(numbers) > self.max_numbers:
                numbers.popitem(last=False)
                self.counters.evicted_numbers += 1
        sources[source_ip] = source_full
        if len(sources) > self.max_sources:
            sources.popitem(last=False)
            self.counters.evicted_sources += 1
        self.counters.admitted += 1
        return None

    def _refused_source(self, source_ip: str) -> FloodRefusal:
        self.counters.refused_source += 1
        refusal = self._refuse_source
        limit = self.settings.per_source
        self.ratelog.warning(
            "flood-source",
            "flood: INVITEs from %s exceed %g calls/s (burst %d); refused with %d",
            source_ip, limit.rate, limit.burst, refusal.status,
        )  # fmt: skip
        return refusal

    def _refused_number(self, called: str, customer: str | None) -> FloodRefusal:
        self.counters.refused_number += 1
        refusal = self._refuse_number
        limit = self.per_customer.get(customer or "", self.settings.per_number)
        self.ratelog.warning(
            "flood-number",
            "flood: calls to %s exceed %g calls/s (burst %d); refused with %d",
            called, limit.rate, limit.burst, refusal.status,
        )  # fmt: skip
        return refusal

    def tokens(self, kind: str, key: str, customer: str | None = None) -> float:
        """Tokens left in a bucket now (a full bucket when it is not tracked); for tests."""
        now = self.clock.seconds() - self.epoch
        if kind == SOURCE:
            limit, full = self.settings.per_source, self.sources.get(key)
        else:
            limit = self.per_customer.get(customer or "", self.settings.per_number)
            full = self.numbers.get(key)
        if full is None or full <= now:
            return float(limit.burst)
        return limit.burst - (full - now) * limit.rate
