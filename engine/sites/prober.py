"""The Twisted edge of site health: OPTIONS probes on a schedule, sites.json for `vms sites`.

Each configured site is probed every ``interval`` seconds (on the stack's
timer queue, so the reactor clock drives it, and ``task.Clock`` in tests) with an OPTIONS
sent through the engine's own transaction layer, from the SIP listen
address, so a peer sees the engine itself. One probe per site is in flight
at a time: a tick that finds the previous probe unanswered is skipped. The
prober honours the site's ``timeout`` itself: with no final response by
then the probe fails, and its client transaction is ended at once (it is
given the Timer F event, which it would get anyway at 64*T1), so no
retransmissions outlive the probe and a late answer is absorbed. Results go
to the sans-IO :class:`~engine.sites.health.SiteTable`; each up/down
transition is one log line::

    site pbx-acme (127.0.0.1:5090) is down: 3 probes failed (timeout)
    site pbx-acme (127.0.0.1:5090) is up again after 2 probes

and the table is written to ``DATA_DIR/sites.json`` (a temporary file
renamed over it, so a reader never sees half a file) on every transition
and at most once per interval otherwise, for ``vms sites``.

Wiring in ``engine/serve.py``, after the transports are listening::

    table = SiteTable(config.sites.values(), reactor)
    prober = SiteProber(stack, table, {"udp": udp, "tcp": tcp}, udp.local,
                        config.data_dir, config.sip.trunk)
    prober.start()                     # before reactor.run(); names resolve here
    reactor.addSystemEventTrigger("before", "shutdown", prober.stop)

and ``table.down_site_for(destination)`` in the call controller (see
``health.py``). Host names in site addresses are resolved once, at
``start()`` (like the trunk); a name that does not resolve makes that site's
probes fail until the next start.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from engine.ratelog import RateLimitedLog
from engine.sip.message import Request, Response
from engine.sip.stack import SipStack
from engine.sip.timers import Timer
from engine.sip.transaction import Transaction, Transport
from engine.sites.health import DOWN, UNKNOWN, UP, SiteTable, Transition, iso, probe_succeeded

__all__ = ["FILE_NAME", "SiteProber", "resolve_host"]

log = logging.getLogger("vms.sites")

Address = tuple[str, int]
FILE_NAME = "sites.json"


def resolve_host(host: str) -> str:
    """An address literal as it is, a name through the system resolver (OSError if not)."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    found = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    return str(found[0][4][0])


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


class _Probe:
    """One OPTIONS in flight: the client transaction's user, and its timeout."""

    __slots__ = ("done", "name", "prober", "timer", "txn")

    def __init__(self, prober: SiteProber, name: str) -> None:
        self.prober = prober
        self.name = name
        self.done = False
        self.timer: Timer | None = None
        self.txn: Transaction | None = None

    def response_received(self, txn: Transaction, response: Response) -> None:
        if response.status >= 200:
            self.prober._result(self, probe_succeeded(response.status),
                                f"{response.status} {response.reason}")  # fmt: skip

    def transaction_failed(self, txn: Transaction, reason: str) -> None:
        self.prober._result(self, False, reason)  # "timeout" (Timer F) or "transport"


class SiteProber:
    """Probes every site of a :class:`SiteTable`; ``start()`` and ``stop()``."""

    def __init__(
        self,
        stack: SipStack,
        table: SiteTable,
        transports: Mapping[str, Transport],
        local: Address,
        data_dir: Path,
        trunk: Address,
        *,
        resolve: Callable[[str], str] = resolve_host,
    ) -> None:
        self.clock = stack.clock
        self.stack = stack
        self.table = table
        self.transports = dict(transports)  # by lower-case name: "udp", "tcp"
        self.local = local
        self.path = Path(data_dir) / FILE_NAME
        self.resolve = resolve
        self.configured: dict[str, Address] = {
            name: site.address if site.address is not None else trunk
            for name, site in table.sites.items()
        }
        self.targets: dict[str, Address | None] = {}
        self.inflight: dict[str, _Probe] = {}
        self.ticks: dict[str, Timer] = {}
        self.due: dict[str, float] = {}
        self.cseq: dict[str, int] = dict.fromkeys(table.sites, 0)
        self.sent = 0
        self.skipped = 0
        intervals = [site.interval for site in table.sites.values()]
        self.write_every = min(intervals) if intervals else 5.0
        self.written: float | None = None
        self.ratelog = RateLimitedLog(log, self.clock, 60.0)
        self.running = False

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> None:
        """Resolve the sites' hosts, write sites.json (all unknown) and start probing."""
        self.running = True
        for name, (host, port) in self.configured.items():
            try:
                self.targets[name] = (self.resolve(host), port)
            except (OSError, UnicodeError) as exc:
                self.targets[name] = None
                log.warning("site %s: cannot resolve '%s' (%s); its probes fail until the "
                            "engine restarts", name, host, exc)  # fmt: skip
        self.write()
        now = self.clock.seconds()
        for name in self.table.sites:
            self.due[name] = now
            self._tick(name)

    def stop(self) -> None:
        """Stop probing; probes in flight are ended and their results ignored."""
        self.running = False
        for tick in self.ticks.values():
            tick.cancel()
        self.ticks.clear()
        for probe in list(self.inflight.values()):
            probe.done = True
            self._end(probe)
        self.inflight.clear()

    # -- probing -------------------------------------------------------------------------

    def _tick(self, name: str) -> None:
        """Probe now, and come back one interval after this tick was due (no drift)."""
        if not self.running:
            return
        interval = self.table.sites[name].interval
        now = self.clock.seconds()
        # After a stall, start again from now rather than catching up in a burst.
        due = self.due[name] + interval
        self.due[name] = due if due > now else now + interval
        delay = self.due[name] - now
        self.ticks[name] = self.stack.timers.call_later(delay, self._tick, name)
        self.probe(name)

    def probe(self, name: str) -> None:
        """Send one OPTIONS to site ``name`` unless one is still in flight."""
        if not self.running:
            return
        if name in self.inflight:
            self.skipped += 1
            return
        site = self.table.sites[name]
        probe = _Probe(self, name)
        target = self.targets.get(name)
        transport = self.transports.get(site.transport)
        if target is None:
            self._result(probe, False, f"cannot resolve {self.configured[name][0]}")
            return
        if transport is None:
            self._result(probe, False, f"no {site.transport} transport")
            return
        self.inflight[name] = probe
        probe.timer = self.stack.timers.call_later(site.timeout, self._timeout, probe)
        self.sent += 1
        try:
            probe.txn = self.stack.send_request(self._options(name), transport, target, probe,
                                                self.local)  # fmt: skip
        except Exception as exc:  # a transport that cannot send at all
            self.ratelog.warning(f"send-{name}", "site %s: cannot send the probe: %s", name, exc)
            self._result(probe, False, "transport")

    def _options(self, name: str) -> Request:
        self.cseq[name] += 1
        target = _hostport(*self.configured[name])
        host = self.local[0]
        local = f"[{host}]" if ":" in host else host
        new_tag = self.stack.new_tag
        headers = {
            "via": [],  # send_request adds ours, first
            "max-forwards": ["70"],
            "from": [f"<sip:vms@{local}>;tag={new_tag()}"],
            "to": [f"<sip:{target}>"],
            "call-id": [f"{new_tag()}@{local}"],
            "cseq": [f"{self.cseq[name]} OPTIONS"],
            "accept": ["application/sdp"],
        }
        return Request("OPTIONS", f"sip:{target}", headers)

    def _timeout(self, probe: _Probe) -> None:
        if probe.done:
            return
        self._result(probe, False, "timeout")
        self._end(probe)

    def _end(self, probe: _Probe) -> None:
        """End a probe's client transaction now: Timer F, early (see the module docstring)."""
        if probe.timer is not None:
            probe.timer.cancel()
        txn = probe.txn
        if txn is not None:
            txn.handle("timer_f")

    def _result(self, probe: _Probe, ok: bool, result: str) -> None:
        if probe.done or not self.running:
            return
        probe.done = True
        if probe.timer is not None:
            probe.timer.cancel()
        if self.inflight.get(probe.name) is probe:
            del self.inflight[probe.name]
        transition = self.table.record(probe.name, ok, result)
        if transition is not None:
            self.write()  # first: once the line is logged, `vms sites` says the same
            self._log(transition)
        elif self.written is None or self.clock.seconds() - self.written >= self.write_every:
            self.write()

    def _log(self, t: Transition) -> None:
        name = t.site
        where = self.describe(name)
        if t.new == DOWN:
            log.warning("site %s (%s) is down: %s failed (%s)", name, where,
                        _plural(t.count, "probe"), t.result)  # fmt: skip
        elif t.new == UP and t.old == DOWN:
            log.info("site %s (%s) is up again after %s", name, where, _plural(t.count, "probe"))
        elif t.new == UP and t.old == UNKNOWN:
            log.info("site %s (%s) is up (%s)", name, where, t.result)

    def describe(self, name: str) -> str:
        """How logs name a site's address: ``host:port``, with `` over TCP`` for TCP."""
        text = _hostport(*self.configured[name])
        transport = self.table.sites[name].transport
        return text if transport == "udp" else f"{text} over {transport.upper()}"

    # -- sites.json ----------------------------------------------------------------------

    def document(self) -> dict[str, Any]:
        """What sites.json holds: when, who, and every site's health."""
        now = self.clock.seconds()
        snapshot = self.table.snapshot()
        sites = {}
        for name, health in snapshot.items():
            host, port = self.configured[name]
            sites[name] = {"address": _hostport(host, port),
                           "transport": self.table.sites[name].transport, **health}  # fmt: skip
        return {"version": 1, "written": iso(now), "written_at": now, "pid": os.getpid(),
                "sites": sites}  # fmt: skip

    def write(self) -> None:
        """Write sites.json atomically (a temporary file renamed over it)."""
        self.written = self.clock.seconds()
        text = json.dumps(self.document(), indent=2) + "\n"
        temporary = self.path.with_name(f".{FILE_NAME}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(text, encoding="utf-8")
            os.replace(temporary, self.path)
        except OSError as exc:
            self.ratelog.warning("write", "cannot write %s: %s", self.path, exc)
