"""``vms serve``: wire the configuration, trees, SIP stack and HTTP onto the reactor.

Everything checked before anything listens: the trees load and validate,
and what the chosen mode cannot serve is reported rule by rule. Trees reload
on SIGHUP and when their files change; a reload that does not validate keeps
the running trees and logs each problem. SIGINT and SIGTERM stop cleanly.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.error import CannotListenError
from twisted.internet.task import LoopingCall

from engine.api import build_site
from engine.config import Config
from engine.redirect import RedirectService, unservable
from engine.router import Router
from engine.sip.overload import Overload
from engine.sip.peers import PeerFilter
from engine.sip.stack import SipStack
from engine.sip.transport import TcpTransport, UdpTransport, listen_tcp, loop_lag_monitor
from routing_trees.source import SourceError
from routing_trees.treeset import TreeSet, load_directory

__all__ = ["TreeWatcher", "serve"]

log = logging.getLogger("vms")


class TreeWatcher:
    """Reloads the trees when asked (SIGHUP) or when files under their directory change."""

    def __init__(self, directory: Path, load: Callable[[], TreeSet],
                 install: Callable[[TreeSet], None]) -> None:  # fmt: skip
        self.directory = directory
        self.load = load
        self.install = install
        self.signature = self._signature()

    def _signature(self) -> tuple[tuple[str, int, int], ...]:
        entries = []
        for root, _dirs, files in os.walk(self.directory):
            for name in files:
                path = os.path.join(root, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                entries.append((path, st.st_mtime_ns, st.st_size))
        return tuple(sorted(entries))

    def poll(self) -> None:
        signature = self._signature()
        if signature != self.signature:
            self.signature = signature
            self.reload("files changed")

    def reload(self, why: str) -> bool:
        try:
            trees = self.load()
        except SourceError as exc:
            log.error("trees not reloaded (%s): %d problem(s); the running trees stay in force",
                      why, len(exc.problems))  # fmt: skip
            for problem in exc.problems:
                log.error("%s", problem)
            return False
        self.install(trees)
        log.info("trees reloaded (%s): %d trees, %d numbers", why, len(trees.trees),
                 sum(len(t.numbers) for t in trees.trees))  # fmt: skip
        return True


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _resolve(host: str) -> str:
    try:
        return socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)[0][4][0]  # type: ignore[return-value]
    except OSError as exc:
        raise SystemExit(f"vms: cannot resolve the trunk host '{host}' (sip.trunk, --trunk): "
                         f"{exc.strerror}; give an address, or a name this machine "
                         "resolves") from None


def _listen_error(what: str, host: str, port: int, exc: Exception) -> str:
    """One sentence: what could not listen, where, why, and what to do."""
    error = getattr(exc, "socketError", None) or exc
    reason = getattr(error, "strerror", None) or str(error)
    option = "--portal (portal.listen)" if what.startswith("the portal") else "--sip (sip.listen)"
    return (f"vms: cannot listen for {what} on {host}:{port}: {reason[:1].lower()}{reason[1:]}; "
            f"stop what uses that port or choose another address with {option}")  # fmt: skip


def serve(config: Config) -> int:
    """Run the engine until stopped; 1 when the configuration cannot be served."""
    _setup_logging(config.log_level)
    sip = config.sip
    if sip.mode != "redirect":
        print(f"vms: {sip.mode} mode is not available in this version yet; "
              "run with --mode redirect (or set sip.mode: redirect)", file=sys.stderr)  # fmt: skip
        return 1

    def load() -> TreeSet:
        return load_directory(config.trees, config.profiles() or None)

    try:
        trees = load()
    except SourceError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"vms: the trees in {config.trees} have {len(exc.problems)} problem(s); "
              "fix them and start again", file=sys.stderr)  # fmt: skip
        return 1
    status = sip.redirect.unservable
    for tree in trees.trees:
        for notice in unservable(tree, status):
            log.warning("%s", notice)

    from twisted.internet import reactor  # noqa: PLC0415 - installs the reactor; only here

    _tune_gc()
    return _run(reactor, config, trees, load)


def _tune_gc() -> None:
    """Keep the cyclic collector off the hot path.

    Calls allocate many short-lived objects freed by reference counting, while
    tens of thousands of transactions live for seconds: with the default
    thresholds the collector would walk them all again and again. What exists
    after start-up (code, trees) is frozen out of collection, and the young
    generation is collected every 50,000 allocations instead of 700.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _run(reactor: Any, config: Config, trees: TreeSet, load: Callable[[], TreeSet]) -> int:
    sip = config.sip
    router = Router(trees, mode_of=lambda _customer: "normal")
    _resolve(sip.trunk[0])  # a trunk that does not resolve is refused at start
    trunk = sip.trunk  # the Contact names it as configured: the upstream resolves it (RFC 3263)
    service = RedirectService(None, router, trunk, sip.redirect)
    stack = SipStack(reactor, service, peers=PeerFilter(sip.peers), t1=sip.t1, t2=sip.t2,
                     t4=sip.t4, retry_after=sip.overload.retry_after)  # fmt: skip
    service.stack = stack
    overload = Overload(sip.overload.max_delay)
    host, port = sip.listen
    ready = False
    what = "SIP over UDP"
    try:
        if "udp" in sip.transports:
            udp = UdpTransport(reactor, stack, overload, host, port, reuse_port=sip.reuse_port,
                               receive_buffer=sip.overload.receive_buffer)  # fmt: skip
            udp.start()
        what = "SIP over TCP"
        if "tcp" in sip.transports:
            tcp = TcpTransport(stack, overload, reactor, sip.tcp_idle_timeout)
            listen_tcp(reactor, tcp, host, port, sip.reuse_port)
        what, host, port = "the portal (HTTP)", config.portal[0], config.portal[1]
        reactor.listenTCP(port, build_site(lambda: ready), interface=host)
    except (OSError, CannotListenError) as exc:
        print(_listen_error(what, host, port, exc), file=sys.stderr)
        return 1
    host, port = sip.listen
    loop_lag_monitor(reactor, overload)

    def install(new: TreeSet) -> None:
        router.trees = new
        for tree in new.trees:
            for notice in unservable(tree, sip.redirect.unservable):
                log.warning("%s", notice)

    watcher = TreeWatcher(config.trees, load, install)
    poller = LoopingCall(watcher.poll)
    poller.clock = reactor
    poller.start(1.0, now=False)
    signal.signal(signal.SIGHUP, lambda *_: reactor.callFromThread(watcher.reload, "SIGHUP"))
    ready = True
    log.info("VMS engine (redirect mode) on %s:%d %s, trunk %s:%d, portal http://%s:%d, "
             "peers %s; %d trees serve %d numbers", host, port, "+".join(sip.transports),
             trunk[0], trunk[1], config.portal[0], config.portal[1], stack.peers,
             len(trees.trees), sum(len(t.numbers) for t in trees.trees))  # fmt: skip
    reactor.run()
    log.info("stopped")
    return 0
