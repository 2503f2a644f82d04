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
import resource
import signal
import socket
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from twisted.internet.error import CannotListenError
from twisted.internet.task import LoopingCall

from engine.acm.directory import AcmDirectory
from engine.acm.runtime import AcmRuntime, AcmStartError
from engine.api import build_site
from engine.calls.b2bua import B2bua
from engine.calls.context import CallContext
from engine.calls.media import MediaServices
from engine.calls.operator_phone import PHONE_PROMPT_DIR, PHONE_PROMPTS
from engine.calls.queue import QUEUE_PROMPT_DIR, QUEUE_PROMPTS, AcmServices
from engine.calls.registrar import Auditor, Registrar, accounts_of, live_accounts
from engine.cdr.store import CdrStore
from engine.config import Config
from engine.floods import FloodGuard
from engine.modes.store import ModeStoreError
from engine.redirect import RedirectService
from engine.router import Router
from engine.servable import unservable
from engine.services import Services, drs_prompt_paths
from engine.sip.overload import Overload
from engine.sip.peers import PeerFilter
from engine.sip.stack import SipStack
from engine.sip.transport import TcpTransport, UdpTransport, listen_tcp, loop_lag_monitor
from engine.sites.health import SiteTable
from engine.sites.prober import SiteProber
from engine.state.factory import open_state
from engine.state.interface import SharedState
from engine.state.leases import LeaseKeeper
from media.plane import MediaPlane
from media.prompts import Prompt, PromptCache, PromptError
from media.recording import recover_partials
from routing_trees.source import Problem, SourceError
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
        except Exception:  # a bug must not stop the watching: the next change is tried again
            log.exception("trees not reloaded (%s); the running trees stay in force", why)
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
    mode = config.sip.mode
    cache = PromptCache()
    prompts: dict[str, Prompt] = {}  # the running trees' prompts; replaced with the trees
    services = drs_prompt_paths(config) if config.drs_service_number else {}
    queue_paths: dict[str, str] = {}  # by key: the queues' music and words
    if any(c.acm is not None for c in config.customers.values()):
        queue_paths = _prompt_paths(QUEUE_PROMPT_DIR, QUEUE_PROMPTS)
        services.update({f"queue {key}": path for key, path in queue_paths.items()})
        services.update({f"operator {key}": path for key, path in PHONE_PATHS.items()})
    queue_prompts: dict[str, Prompt] = {}  # by key, for the queues' announcements

    def load() -> TreeSet:
        trees = load_directory(config.trees, config.profiles() or None)
        _check_servable(trees, mode, config.sip.redirect.unservable)
        if mode == "b2bua":
            loaded = _load_prompts(trees, cache, services)
            prompts.clear()
            prompts.update(loaded)
            queue_prompts.update({key: loaded[path] for key, path in queue_paths.items()})
        return trees

    try:
        trees = load()
    except SourceError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"vms: the trees in {config.trees} have {len(exc.problems)} problem(s) in "
              f"{mode} mode; fix them and start again", file=sys.stderr)  # fmt: skip
        return 1

    from twisted.internet import reactor  # noqa: PLC0415 - installs the reactor; only here

    _tune_gc()
    _raise_file_limit()
    return _run(reactor, config, trees, load, prompts, queue_prompts)


def _prompt_paths(directory: Path, keys: Iterable[str]) -> dict[str, str]:
    """Shipped prompts by key: ``directory/KEY.wav``."""
    return {key: str(directory / f"{key}.wav") for key in keys}


#: The operator phone service's prompts by key.
PHONE_PATHS = _prompt_paths(PHONE_PROMPT_DIR, PHONE_PROMPTS)


def _check_servable(trees: TreeSet, mode: str, status: int) -> None:
    """Log what the mode cannot serve; raise SourceError for what it refuses."""
    fatal: list[Problem] = []
    for tree in trees.trees:
        for notice in unservable(tree, mode, status):
            if notice.fatal:
                pos = notice.pos
                fatal.append(Problem(pos.file, pos.line, pos.column, notice.text))
            else:
                log.warning("%s", notice)
    if fatal:
        raise SourceError(fatal)


def _load_prompts(trees: TreeSet, cache: PromptCache,
                  services: Mapping[str, str]) -> dict[str, Prompt]:  # fmt: skip
    """Every prompt the trees and the DRS service use, decoded now and not on a live call.

    Calls play from the mapping this returns, which changes only with the
    trees: a prompt file edited or broken under a running engine changes
    nothing until a reload validates it. SourceError when one fails.
    """
    problems: list[Problem] = []
    loaded: dict[str, Prompt] = {}
    for tree in trees.trees:
        for prompt in tree.tree.prompts.values():
            try:
                loaded[str(prompt.path)] = cache.get(prompt.path)
            except PromptError as exc:
                pos = prompt.pos
                problems.append(Problem(pos.file, pos.line, pos.column, str(exc)))
    for role, path in services.items():
        try:
            loaded[path] = cache.get(path)
        except PromptError as exc:
            problems.append(Problem(path, 1, 1, f"the service prompt '{role}': {exc}"))
    if problems:
        raise SourceError(problems)
    return loaded


def _raise_file_limit() -> None:
    """Each RTP stream holds two sockets: take the soft limit of open files to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _tune_gc() -> None:
    """Keep the cyclic collector's pauses short.

    Calls free their objects by reference counting (a finished call breaks
    its own cycles: ``Call.dismantle``), but tens of thousands of
    transactions live for 32 s, and every collection of a generation walks
    all of its objects. Measured at 500 calls/s (py-spy and gc callbacks,
    DEVELOPERS.md): with a young generation of 50,000 allocations and 20
    young collections per middle one, each middle collection walked a
    million live objects and stopped the engine for about half a second (the
    overload guard then answered 503). 10,000 and 10 keep the young pauses
    under 10 ms and the middle ones under 80 ms for about 4% of a core; full
    collections, which walk everything, come only every 1,000 middle ones.
    What exists after start-up (code, trees) is frozen out of collection.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 1_000)


def _run(reactor: Any, config: Config, trees: TreeSet, load: Callable[[], TreeSet],
         prompts: dict[str, Prompt], queue_prompts: Mapping[str, Prompt]) -> int:
    sip = config.sip
    try:
        services = Services(reactor, config)
    except (OSError, ModeStoreError) as exc:
        print(f"vms: cannot open the mode store in {config.data_dir}: {exc}", file=sys.stderr)
        return 1
    router = Router(trees, mode_of=services.watcher.mode_of, ported=services.ported)
    router.on_ported = services.refused_ported
    trunk_ip = _resolve(sip.trunk[0])  # a trunk that does not resolve is refused at start
    stack = SipStack(reactor, None, peers=PeerFilter(sip.peers), t1=sip.t1, t2=sip.t2,  # type: ignore[arg-type]
                     t4=sip.t4, retry_after=sip.overload.retry_after)  # fmt: skip
    floods = FloodGuard(reactor, config.floods, config.flood_overrides())
    overload = Overload(sip.overload.max_delay)
    state = (open_state(config.state, reactor, lease_ttl=config.calls.lease_ttl)
             if sip.mode == "b2bua" else None)  # fmt: skip
    acm = None
    if state is not None and queue_prompts:
        try:
            acm = AcmRuntime(reactor, config, state, services.store)
            acm.start()
        except AcmStartError as exc:
            print(f"vms: {exc}", file=sys.stderr)
            return 1
    host, port = sip.listen
    ready = False
    transports: dict[str, Any] = {}
    what = "SIP over UDP"
    try:
        if "udp" in sip.transports:
            udp = UdpTransport(reactor, stack, overload, host, port, reuse_port=sip.reuse_port,
                               receive_buffer=sip.overload.receive_buffer)  # fmt: skip
            transports["udp"] = udp
        what = "SIP over TCP"
        if "tcp" in sip.transports:
            tcp = TcpTransport(stack, overload, reactor, sip.tcp_idle_timeout)
            listen_tcp(reactor, tcp, host, port, sip.reuse_port)
            transports["tcp"] = tcp
        what, host, port = "the portal (HTTP)", config.portal[0], config.portal[1]
        site = build_site(lambda: ready, config, services.store, on_change=services.changed,
                          resources=acm.resources() if acm is not None else None,
                          counters={"sip": stack, "floods": floods})  # fmt: skip
        reactor.listenTCP(port, site, interface=host)
    except (OSError, CannotListenError) as exc:
        print(_listen_error(what, host, port, exc), file=sys.stderr)
        return 1
    host, port = sip.listen
    local = (sip.advertise or host, port)
    sites = SiteTable(config.sites.values(), reactor)
    if sites.sites:
        prober = SiteProber(stack, sites, transports, local, config.data_dir,
                            (trunk_ip, sip.trunk[1]))  # fmt: skip
        prober.start()
        reactor.addSystemEventTrigger("before", "shutdown", prober.stop)
    if sip.mode == "redirect":
        # The Contact names the trunk as configured: the upstream resolves it (RFC 3263).
        stack.tu = RedirectService(stack, router, sip.trunk, sip.redirect, floods=floods,
                                   sites=sites)  # fmt: skip
    else:
        try:
            media = _media(reactor, config, prompts)
        except OSError as exc:
            print(f"vms: cannot open the media plane: {exc}", file=sys.stderr)
            return 1
        assert state is not None
        queues = None
        if acm is not None:
            queues = AcmServices(acm.desk, queue_prompts, acm.phone(PHONE_PATHS, services.pool))
        b2bua = _b2bua(reactor, config, stack, router, floods, sites, transports, local,
                       (trunk_ip, sip.trunk[1]), media, state, queues,
                       directory=acm.directory if acm is not None else None,
                       audit=services.store.audit)  # fmt: skip
        b2bua.ctx.drs = services.phone_service(drs_prompt_paths(config))
        stack.tu = b2bua
    if "udp" in transports:
        transports["udp"].start()
    loop_lag_monitor(reactor, overload)
    services.start()
    reactor.addSystemEventTrigger("after", "shutdown", services.stop)
    if acm is not None:
        reactor.addSystemEventTrigger("after", "shutdown", acm.stop)

    def install(new: TreeSet) -> None:
        router.trees = new

    watcher = TreeWatcher(config.trees, load, install)
    poller = LoopingCall(watcher.poll)
    poller.clock = reactor
    poller.start(1.0, now=False)
    signal.signal(signal.SIGHUP, lambda *_: reactor.callFromThread(watcher.reload, "SIGHUP"))
    ready = True
    log.info("VMS engine (%s mode) on %s:%d %s, trunk %s:%d, portal http://%s:%d, "
             "peers %s; %d trees serve %d numbers", sip.mode, host, port,
             "+".join(sip.transports), sip.trunk[0], sip.trunk[1], config.portal[0],
             config.portal[1], stack.peers, len(trees.trees),
             sum(len(t.numbers) for t in trees.trees))  # fmt: skip
    reactor.run()
    log.info("stopped")
    return 0


def _b2bua(
    reactor: Any, config: Config, stack: SipStack, router: Router, floods: FloodGuard,
    sites: SiteTable, transports: dict[str, Any], local: tuple[str, int],
    trunk: tuple[str, int], media: MediaServices, state: SharedState,
    acm: AcmServices | None, *, directory: AcmDirectory | None = None,
    audit: Auditor | None = None,
) -> B2bua:  # fmt: skip
    """The call controller with its shared state, call records, site health and ACM queues."""
    leases = LeaseKeeper(state, reactor)
    leases.start()
    records = CdrStore.in_data_dir(config.data_dir, reactor)
    closed = records.open()
    if closed:
        log.warning("%d call legs left open by an engine that stopped during calls were "
                    "closed as failed", closed)  # fmt: skip
    host, port = config.sip.trunk
    trunk_name = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    ctx = CallContext(
        stack=stack, transport=transports[config.sip.trunk_transport], local=local,
        trunk=trunk, trunk_name=trunk_name, settings=config.calls, state=leases,
        records=records, sites=sites, billing_prefixes=config.billing.other_operator_prefixes,
        media=media, acm=acm,
    )  # fmt: skip
    b2bua = B2bua(ctx, router, floods, registrar=_registrar(reactor, config, stack, state,
                                                            directory, audit))  # fmt: skip

    def shutdown() -> None:
        ended = b2bua.hang_up_all("the engine is stopping")
        if ended:
            log.info("hung up %d calls", ended)
        if acm is not None:
            acm.desk.stop()  # its directory and statistics close after the calls' last events
        records.close_open()
        records.close()
        leases.stop()
        state.close()
        media.plane.close()

    reactor.addSystemEventTrigger("before", "shutdown", shutdown)
    return b2bua


def _registrar(reactor: Any, config: Config, stack: SipStack, state: Any,
               directory: AcmDirectory | None = None,
               audit: Auditor | None = None) -> Registrar | None:  # fmt: skip
    """Operators' softphones register from any address (digest) when some customer has ACM.

    With the ACM runtime's ``directory`` the accounts are the live ones (the
    API's changes take effect at the next REGISTER); without it, the file's.
    """
    if directory is not None:
        accounts = live_accounts(lambda: directory.config.customers, directory.settings)
    else:
        fixed = accounts_of({cid: c.acm for cid, c in config.customers.items()
                             if c.acm is not None})  # fmt: skip
        if not fixed:
            return None
        accounts = lambda: fixed  # noqa: E731
    stack.open_methods = frozenset({"REGISTER"})
    log.info("%d softphones may register now (changes through the API apply at once); "
             "REGISTER is accepted from any address", len(accounts()))  # fmt: skip
    return Registrar(reactor, state, accounts, audit=audit)


def _media(reactor: Any, config: Config, prompts: dict[str, Prompt]) -> MediaServices:
    """The RTP plane, the prompts, and the recordings a crash left unfinished, recovered."""
    settings = config.media
    host = config.sip.listen[0]
    advertise = settings.advertise or config.sip.advertise or host
    plane = MediaPlane(reactor, host, advertise, settings.rtp_ports, settings.dead_media)
    recordings = config.data_dir / "recordings"
    recovered: list[Path] = []
    if recordings.is_dir():
        for folder in sorted({part.parent for part in recordings.rglob("*.wav.part")}):
            recovered += recover_partials(folder)
    for path in recovered:
        log.warning("recording %s was left unfinished by a stop; recovered", path)
    recorded = frozenset(cid for cid, c in config.customers.items() if "recording" in c.options)
    return MediaServices(plane, prompts, settings, recordings, recorded)
