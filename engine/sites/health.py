"""Site health: which sites answer their probes, and which destinations are behind a down one.

Everything that changes a site's state lives in this file. A *site* is a peer
calls leave through or arrive at (the trunk, a customer's PBX, a destination
gateway), probed with OPTIONS by ``engine/sites/prober.py``. Each probe result
is fed here with the clock's time; the site's state follows the table
``TRANSITIONS`` (state, result, threshold reached) -> next state:

- a site starts ``unknown`` and counts as up until proven down;
- ``down_after`` consecutive failures mark it ``down`` (from unknown or up);
- from down, ``up_after`` consecutive successes mark it ``up`` again; from
  unknown the first success marks it up (nothing to confirm: it was already
  treated as up);
- a result of the other kind resets the consecutive count.

What counts as a success is :func:`probe_succeeded`.

Destinations behind a down site are ``unreachable`` at once (routing-trees.md:
"unreachable is 404/5xx, a transport failure, or a site that its health checks
mark down"), with no ring timeout. The call controller asks, for every
outgoing leg::

    site = sites.down_site_for(destination_e164)
    if site is not None:
        ...  # outcome unreachable now (CDR: route through `on_unreachable`),
             # no INVITE sent; say `site` in the log / CDR reason

A site's ``numbers`` say which destinations go through it: exact numbers,
prefixes ``+3225550*``, or ``*`` (everything). A destination is unreachable
when *any* down site matches it, since a call to a PBX number still leaves
through the trunk: a down trunk with ``*`` makes everything unreachable. When
several down sites match, the most specific one is named (an exact number,
then the longest prefix, then ``*``). The lookup indexes only the sites that
are down (rebuilt on each transition, which is rare), so while every site is
up it costs one attribute test; otherwise one dict lookup for exact numbers
and one per distinct prefix length, like ``routing_trees/compile.py`` does for
caller prefixes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

__all__ = [
    "DOWN",
    "EVERYTHING",
    "TRANSITIONS",
    "UNKNOWN",
    "UP",
    "Site",
    "SiteHealth",
    "SiteTable",
    "Transition",
    "iso",
    "probe_succeeded",
]

UNKNOWN: Final = "unknown"
UP: Final = "up"
DOWN: Final = "down"
EVERYTHING: Final = "*"
"""The pattern of a site every destination goes through (the trunk, typically)."""

#: (state, probe succeeded, the consecutive count reached its threshold) -> next state.
#: The threshold is ``up_after`` for successes and ``down_after`` for failures.
TRANSITIONS: Final[dict[tuple[str, bool, bool], str]] = {
    (UNKNOWN, True, False): UP,  # the first answer proves it up
    (UNKNOWN, True, True): UP,
    (UNKNOWN, False, False): UNKNOWN,
    (UNKNOWN, False, True): DOWN,
    (UP, True, False): UP,
    (UP, True, True): UP,
    (UP, False, False): UP,  # not yet down_after failures in a row
    (UP, False, True): DOWN,
    (DOWN, True, False): DOWN,  # not yet up_after successes in a row
    (DOWN, True, True): UP,
    (DOWN, False, False): DOWN,
    (DOWN, False, True): DOWN,
}

_FAILING_STATUSES = frozenset({408, 503, 504})


def probe_succeeded(status: int) -> bool:
    """Whether a final response to an OPTIONS probe proves the site alive.

    Any final response does, except 408, 503 and 504: a peer that answers is
    alive, whatever it thinks of OPTIONS (405, 404, 403 and 501 all come from
    a working SIP stack that would take an INVITE). 503 means the peer is
    overloaded or in maintenance and will refuse calls; 408 and 504 come from
    a proxy or SBC in front of the peer whose own attempt timed out, so the
    site behind it is not answering.
    """
    return status >= 200 and status not in _FAILING_STATUSES


@dataclass(frozen=True)
class Site:
    """A configured site (``sites:`` in the configuration)."""

    name: str
    #: None: the site probes ``sip.trunk`` (only the site named ``trunk`` may leave it out).
    address: tuple[str, int] | None = None
    transport: str = "udp"
    #: Normalised patterns: ``*``, ``+3225550*`` (prefix) or ``+3225550001`` (exact).
    #: The configuration gives the site named ``trunk`` ``*`` when it lists none.
    numbers: tuple[str, ...] = ()
    interval: float = 5.0
    timeout: float = 2.0
    down_after: int = 3
    up_after: int = 2


@dataclass(slots=True)
class SiteHealth:
    """What is known about one site; changed only by :meth:`record`."""

    since: float
    state: str = UNKNOWN
    failures: int = 0  # consecutive
    successes: int = 0  # consecutive
    probes: int = 0
    last_result: str | None = None
    last_ok: bool | None = None
    last_at: float | None = None

    def record(self, site: Site, ok: bool, result: str, now: float) -> Transition | None:
        """Apply one probe result; the transition it causes, if any."""
        self.probes += 1
        self.last_result, self.last_ok, self.last_at = result, ok, now
        if ok:
            self.successes += 1
            self.failures = 0
            reached = self.successes >= site.up_after
        else:
            self.failures += 1
            self.successes = 0
            reached = self.failures >= site.down_after
        old = self.state
        new = TRANSITIONS[(old, ok, reached)]
        if new == old:
            return None
        self.state, self.since = new, now
        count = self.successes if ok else self.failures
        return Transition(site.name, old, new, count, result, now)


@dataclass(frozen=True, slots=True)
class Transition:
    """A site changed state: ``count`` probes in a row gave ``result``'s kind."""

    site: str
    old: str
    new: str
    count: int
    result: str
    at: float


class _Now(Protocol):
    def seconds(self) -> float: ...


class SiteTable:
    """Every configured site's health, and the down-site index for calls."""

    __slots__ = ("_any_down", "_everything", "_exact", "_prefixes", "clock", "health", "sites")

    def __init__(self, sites: Iterable[Site], clock: _Now) -> None:
        self.clock = clock
        self.sites: dict[str, Site] = {site.name: site for site in sites}
        now = clock.seconds()
        self.health: dict[str, SiteHealth] = {name: SiteHealth(now) for name in self.sites}
        self._any_down = False
        self._exact: dict[str, str] = {}
        self._prefixes: tuple[tuple[int, dict[str, str]], ...] = ()
        self._everything: str | None = None

    # -- the hot path ---------------------------------------------------------------

    def down_site_for(self, number: str) -> str | None:
        """The down site an E.164 destination is behind (the most specific), or None."""
        if not self._any_down:
            return None
        name = self._exact.get(number)
        if name is not None:
            return name
        for length, table in self._prefixes:
            name = table.get(number[:length])
            if name is not None:
                return name
        return self._everything

    # -- probe results ----------------------------------------------------------------

    def record(self, name: str, ok: bool, result: str) -> Transition | None:
        """One probe of site ``name`` gave ``result`` (``200 OK``, ``timeout`` ...)."""
        transition = self.health[name].record(self.sites[name], ok, result, self.clock.seconds())
        if transition is not None and DOWN in (transition.old, transition.new):
            self._index()
        return transition

    def state(self, name: str) -> str:
        return self.health[name].state

    def any_down(self) -> bool:
        """Whether some site is down (one attribute read: asked for every call)."""
        return self._any_down

    def down(self) -> list[str]:
        return [name for name, health in self.health.items() if health.state == DOWN]

    def _index(self) -> None:
        exact: dict[str, str] = {}
        prefixes: dict[int, dict[str, str]] = {}
        everything = None
        for name in self.down():
            for pattern in self.sites[name].numbers:
                if pattern == EVERYTHING:
                    everything = everything or name
                elif pattern.endswith("*"):
                    prefix = pattern[:-1]
                    prefixes.setdefault(len(prefix), {}).setdefault(prefix, name)
                else:
                    exact.setdefault(pattern, name)
        self._exact = exact
        self._prefixes = tuple(sorted(prefixes.items(), reverse=True))
        self._everything = everything
        self._any_down = bool(exact or prefixes or everything)

    # -- what `vms sites` reads -------------------------------------------------------------

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every site as JSON-ready values (what ``sites.json`` holds per site)."""
        out: dict[str, dict[str, Any]] = {}
        for name, site in self.sites.items():
            h = self.health[name]
            out[name] = {
                "state": h.state,
                "since": iso(h.since),
                "failures": h.failures,
                "successes": h.successes,
                "probes": h.probes,
                "last_result": h.last_result,
                "last_ok": h.last_ok,
                "last_probe": None if h.last_at is None else iso(h.last_at),
                "numbers": list(site.numbers),
            }
        return out


def iso(seconds: float) -> str:
    """A clock time (seconds since the epoch) as ISO 8601 UTC, to the second."""
    moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")
