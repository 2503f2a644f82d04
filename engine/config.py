"""The engine's configuration file: read, validated, every problem with its place.

One YAML file (contract.md, "Configuration"). Every key is checked at start
with the same ``FILE:LINE:COL: message`` errors as trees, and nothing starts
until the whole file is right. Relative paths are relative to the file.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from engine.acm.config import read_acm
from engine.acm.model import AcmSettings
from engine.calls.context import CallSettings
from engine.floods import RESPONSES, FloodSettings, RateLimit
from engine.formulas import FORMULAS, OPTIONS, offers
from engine.passwords import is_hash
from engine.sip.peers import LOOPBACK
from engine.sites.health import EVERYTHING, Site
from engine.state.url import parse_state_url
from media.formats import prompt_format_problem
from routing_trees.model import CustomerProfile
from routing_trees.numbers import (
    NUMBER_FLAGS,
    flag_problem,
    prefix_to_e164,
    serving_problem,
    to_e164,
)
from routing_trees.source import (
    Checker,
    MappingNode,
    Node,
    ScalarNode,
    SequenceNode,
    SourceError,
    describe,
    did_you_mean,
    load_yaml,
)

__all__ = [
    "DRS_PROMPT_DIR",
    "DRS_PROMPT_KEYS",
    "BillingSettings",
    "Config",
    "Customer",
    "FloodSettings",
    "MediaSettings",
    "OverloadSettings",
    "RedirectSettings",
    "SipSettings",
    "Site",
    "SmtpSettings",
    "load_config",
    "parse_hostport",
]

HostPort = tuple[str, int]
MODES = ("redirect", "b2bua")
_TOP = "the configuration"
#: What the DRS phone service says, one prompt per key (``drs.prompts``).
DRS_PROMPT_KEYS = ("customer_number", "password", "activated", "already_active", "deactivated",
                   "wrong_password", "locked", "goodbye")  # fmt: skip
#: The shipped DRS prompts, ``KEY.wav`` (English, made with espeak-ng; see DEVELOPERS.md):
#: what a key left out of ``drs.prompts`` plays.
DRS_PROMPT_DIR = Path(__file__).resolve().parents[1] / "media" / "prompts" / "drs"


@dataclass(frozen=True)
class OverloadSettings:
    """When new INVITEs get 503 instead of a routing decision (see engine/sip/overload.py)."""

    max_delay: float = 0.2
    retry_after: int = 5
    receive_buffer: int = 4 * 1024 * 1024


@dataclass(frozen=True)
class RedirectSettings:
    """How redirect mode turns a Decision into a 302."""

    failover_contacts: bool = True
    max_contacts: int = 5
    unservable: int = 480


@dataclass(frozen=True)
class SipSettings:
    listen: HostPort = ("127.0.0.1", 5060)
    trunk: HostPort = ("127.0.0.1", 5080)
    mode: str = "b2bua"
    transports: tuple[str, ...] = ("udp", "tcp")
    peers: tuple[str, ...] | None = LOOPBACK  # None: open to every source
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    tcp_idle_timeout: float = 180.0
    reuse_port: bool = False
    trunk_transport: str = "udp"
    #: The address put in Via and Contact when listening on a wildcard (0.0.0.0, ::).
    advertise: str | None = None
    overload: OverloadSettings = field(default_factory=OverloadSettings)
    redirect: RedirectSettings = field(default_factory=RedirectSettings)


@dataclass(frozen=True)
class Customer:
    id: str
    formula: str
    options: frozenset[str]
    numbers: tuple[str, ...]
    customer_number: str | None = None
    drs_password: str | None = None
    #: ``customers.ID.floods.per_number``: this customer's per-number call-rate limit.
    floods: RateLimit | None = None
    #: E-mail addresses told when DRS or Voice Continuity is switched on, off, or expires.
    contacts: tuple[str, ...] = ()
    #: Hash (``vms passwd``) of the customer's API token: the token itself is never stored.
    api_token: str | None = None
    #: The customer's own legal entity, the holder of its numbers unless one says otherwise.
    legal_entity: str | None = None
    #: Number -> the legal entity holding it: affiliated entities share one customer, and
    #: rerouting is billed to the holder (requirements.md, "Numbers and traffic").
    holders: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: Numbers ported away to another operator: still listed (trees keep validating), no
    #: longer served.
    ported: frozenset[str] = frozenset()
    #: ``customers.ID.acm``: its groups, operators and supervisors (needs the acm option).
    acm: AcmSettings | None = None

    def profile(self) -> CustomerProfile:
        # Known either way: a queue's group must be one of this file's (none without acm:).
        groups = frozenset(self.acm.groups) if self.acm is not None else frozenset()
        return CustomerProfile(self.id, self.formula, self.options, frozenset(self.numbers),
                               groups)  # fmt: skip


@dataclass(frozen=True)
class BillingSettings:
    """``billing:``: what the call records need to bill legs."""

    #: E.164 prefixes (``+3247``) of other operators' numbers: calls rerouted to
    #: them are billed separately (requirements.md, "Numbers and traffic").
    other_operator_prefixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class MediaSettings:
    """``media:``: where the engine's own RTP lives, for announcements, menus and bridging."""

    #: RTP ports, first and last (inclusive); each stream takes an even port and the next.
    rtp_ports: tuple[int, int] = (20000, 29999)
    #: The address in our SDP; None: ``sip.advertise``, else the SIP listen address.
    advertise: str | None = None
    #: A stream that receives nothing this long ends its call (network-level silence).
    dead_media: float = 30.0
    #: A digit typed during a menu's prompt stops the prompt (it is kept either way).
    barge_in: bool = True
    #: Recordings: ``mono`` (both parties mixed) or ``stereo`` (one party per channel).
    recording_channels: str = "stereo"


@dataclass(frozen=True, kw_only=True)
class SmtpSettings:
    """``smtp:``: the server that e-mails customers' contacts about their mode changes."""

    host: str
    port: int = 25
    #: The From address (``from`` in the file).
    sender: str
    username: str | None = None
    #: Kept out of repr, so a logged configuration does not show it.
    password: str | None = field(default=None, repr=False)
    starttls: bool = False


def _default_drs_prompts() -> Mapping[str, Path]:
    return MappingProxyType({key: DRS_PROMPT_DIR / f"{key}.wav" for key in DRS_PROMPT_KEYS})


@dataclass(frozen=True)
class Config:
    file: Path
    sip: SipSettings
    state: str
    data_dir: Path
    trees: Path
    portal: HostPort
    drs_service_number: str | None
    drs_max_days: int
    customers: dict[str, Customer]
    log_level: str = "info"
    sites: dict[str, Site] = field(default_factory=dict)
    floods: FloodSettings = field(default_factory=FloodSettings)
    billing: BillingSettings = field(default_factory=BillingSettings)
    calls: CallSettings = field(default_factory=CallSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    smtp: SmtpSettings | None = None
    #: Every DRS_PROMPT_KEYS key -> its file: ``drs.prompts``, else the shipped one.
    drs_prompts: Mapping[str, Path] = field(default_factory=_default_drs_prompts)
    #: ``drs.lockout``: wrong passwords before the phone path locks, and for how many minutes.
    drs_lockout: tuple[int, float] = (3, 15.0)

    def profiles(self) -> dict[str, CustomerProfile]:
        return {cid: c.profile() for cid, c in self.customers.items()}

    def site_address(self, site: Site) -> HostPort:
        """Where a site is probed: its address, or ``sip.trunk`` (the site named trunk)."""
        return site.address if site.address is not None else self.sip.trunk

    def flood_overrides(self) -> dict[str, RateLimit]:
        """Per-customer per-number limits, for ``FloodGuard(clock, floods, overrides)``."""
        return {cid: c.floods for cid, c in self.customers.items() if c.floods is not None}

    def with_overrides(self, **changes: Any) -> Config:
        sip = {k: changes.pop(k) for k in ("listen", "trunk", "mode") if k in changes}
        return replace(self, sip=replace(self.sip, **sip), **changes)


def parse_hostport(text: str, default_port: int = 5060) -> HostPort:
    """``host:port``, ``[v6]:port`` or ``host``; ValueError says what is wrong."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else None
        if rest and port_text is None:
            raise ValueError(f"'{text}' is not host:port")
        ipaddress.IPv6Address(host)
    else:
        host, colon, port_text_ = text.rpartition(":")
        if not colon:
            host, port_text_ = text, ""
        port_text = port_text_ if colon else None
        if not host or any(c in " /@" for c in host):
            raise ValueError(f"'{text}' is not host:port")
    if port_text is None:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"'{port_text}' is not a port number (1-65535)")
    return host, int(port_text)


class _Reader:
    """Reads the configuration tree with a Checker, section by section."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.base = path.parent
        self.check = Checker(str(path))
        #: Nodes kept for checks across sections (e.g. a site's transport against sip).
        self.marks: dict[str, Node] = {}
        #: ``customers.ID.floods.per_number`` as written, merged with ``floods`` at the end.
        self.customer_floods: dict[str, dict[str, Any]] = {}

    def hostport(self, node: Node, what: str, default_port: int) -> HostPort | None:
        text = self.check.string(node, what)
        if text is None:
            return None
        try:
            return parse_hostport(text, default_port)
        except ValueError as exc:
            self.check.problem(node, f"{what}: {exc}")
            return None

    def path_value(self, node: Node, what: str) -> Path | None:
        text = self.check.string(node, what)
        return None if text is None else (self.base / text).resolve()

    def choice(self, node: Node, what: str, choices: tuple[str, ...]) -> str | None:
        text = self.check.string(node, what)
        if text is not None and text not in choices:
            listed = ", ".join(choices)
            self.check.problem(node, f"{what} must be one of {listed}, not '{text}'")
            return None
        return text

    def section(
        self, node: Node, what: str, readers: dict[str, Callable[[Node, str], Any]]
    ) -> dict[str, Any]:
        """Read a mapping whose keys each have a reader; unknown keys are problems."""
        found = self.check.mapping(node, what, allowed=readers)
        out: dict[str, Any] = {}
        for key, (_, value) in (found or {}).items():
            # "sip.listen", not "the configuration.sip.listen"
            name = key if what == _TOP else f"{what}.{key}"
            result = readers[key](value, name)
            if result is not None:
                out[key] = result
        return out


def load_config(path: Path | str) -> Config:
    """Read and validate a configuration; SourceError lists every problem."""
    path = Path(path)
    root = load_yaml(path)
    r = _Reader(path)
    c = r.check
    top = r.section(root, _TOP, {
        "sip": lambda n, w: _sip(r, n, w),
        "state": lambda n, w: _state(r, n, w),
        "data_dir": r.path_value,
        "trees": r.path_value,
        "portal": lambda n, w: r.section(n, w, {
            "listen": lambda n2, w2: r.hostport(n2, w2, 8080)}),
        "drs": lambda n, w: r.section(n, w, {
            "service_number": lambda n2, w2: _number(r, n2, w2),
            "max_days": lambda n2, w2: c.integer(n2, w2, 1, 366),
            "prompts": lambda n2, w2: _drs_prompts(r, n2, w2),
            "lockout": lambda n2, w2: _lockout(r, n2, w2)}),
        "customers": lambda n, w: _customers(r, n, w),
        "log": lambda n, w: r.section(n, w, {
            "level": lambda n2, w2: r.choice(n2, w2, ("debug", "info", "warning", "error"))}),
        "sites": lambda n, w: _sites(r, n, w),
        "floods": lambda n, w: _floods(r, n, w),
        "billing": lambda n, w: r.section(n, w, {
            "other_operator_prefixes": lambda n2, w2: _prefixes(r, n2, w2)}),
        "calls": lambda n, w: _calls(r, n, w),
        "media": lambda n, w: _media(r, n, w),
        "smtp": lambda n, w: _smtp(r, n, w),
    })  # fmt: skip
    if (isinstance(root, ScalarNode) or "trees" not in top) and not c.problems:
        c.problem(root, "the configuration lacks the required key 'trees'")
    sip = top.get("sip", SipSettings())
    if sip.trunk_transport not in sip.transports:
        c.problem(r.marks.get("sip", root), f"sip.trunk_transport {sip.trunk_transport} is not "
                  f"one of sip.transports ({', '.join(sip.transports)})")  # fmt: skip
    if sip.listen[0] in ("0.0.0.0", "::") and sip.advertise is None and sip.mode == "b2bua":
        c.problem(r.marks.get("sip", root), "sip.listen is a wildcard address: set "
                  "sip.advertise to the address peers reach (for Via, Contact)")  # fmt: skip
    for name, site in top.get("sites", {}).items():
        if site.transport not in sip.transports:
            c.problem(r.marks.get(f"sites.{name}", root),
                      f"site '{name}' transport {site.transport} is not one of sip.transports "
                      f"({', '.join(sip.transports)})")  # fmt: skip
    c.raise_if_problems()
    floods = top.get("floods", FloodSettings())
    customers = top.get("customers", {})
    for cid, given in r.customer_floods.items():
        if cid in customers:
            customers[cid] = replace(customers[cid], floods=replace(floods.per_number, **given))
    drs = top.get("drs", {})
    return Config(
        file=path.resolve(),
        sip=sip,
        state=top.get("state", "memory"),
        data_dir=top.get("data_dir", (r.base / "var").resolve()),
        trees=top["trees"],
        portal=top.get("portal", {}).get("listen", ("127.0.0.1", 8080)),
        drs_service_number=drs.get("service_number"),
        drs_max_days=drs.get("max_days", 31),
        customers=customers,
        log_level=top.get("log", {}).get("level", "info"),
        sites=top.get("sites", {}),
        floods=floods,
        billing=BillingSettings(**top.get("billing", {})),
        calls=top.get("calls", CallSettings()),
        media=top.get("media", MediaSettings()),
        smtp=top.get("smtp"),
        drs_prompts=MappingProxyType({**_default_drs_prompts(), **drs.get("prompts", {})}),
        drs_lockout=drs.get("lockout", (3, 15.0)),
    )


def _state(r: _Reader, node: Node, what: str) -> str | None:
    text = r.check.string(node, what)
    if text is None:
        return None
    try:
        parse_state_url(text)
    except ValueError as exc:
        r.check.problem(node, str(exc))
        return None
    return text


def _number(r: _Reader, node: Node, what: str) -> str | None:
    text = r.check.string(node, what)
    if text is None:
        return None
    e164 = to_e164(text)
    if e164 is None:
        r.check.problem(node, f"{what}: '{text}' is not a phone number (E.164, 00.. or 0..)")
    return e164


def _drs_prompts(r: _Reader, node: Node, what: str) -> dict[str, Path]:
    """Prompt files by key, each checked now: a caller must never meet a missing prompt."""

    def prompt(n: Node, w: str) -> Path | None:
        text = r.check.string(n, w)
        if text is None:
            return None
        path = (r.base / text).resolve()
        # The engine's own announcements: telephony-ready files play as they are too.
        problem = prompt_format_problem(path, text, telephony=True)
        if problem is not None:
            r.check.problem(n, f"{w}: {problem}")
            return None
        return path

    return r.section(node, what, dict.fromkeys(DRS_PROMPT_KEYS, prompt))


def _lockout(r: _Reader, node: Node, what: str) -> tuple[int, float]:
    c = r.check
    values = r.section(node, what, {
        "attempts": lambda n, w: c.integer(n, w, 1, 100),
        "minutes": lambda n, w: c.number(n, w, 0.1),
    })  # fmt: skip
    return values.get("attempts", 3), values.get("minutes", 15.0)


def _smtp(r: _Reader, node: Node, what: str) -> SmtpSettings | None:
    c = r.check
    readers: dict[str, Callable[[Node, str], Any]] = {
        "host": lambda n, w: _host(r, n, w),
        "port": lambda n, w: c.integer(n, w, 1, 65535),
        "from": lambda n, w: _email(r, n, w),
        "username": c.string,
        "password": c.string,
        "starttls": c.boolean,
    }
    fields = c.mapping(node, what, allowed=readers, required=("host", "from"))
    if fields is None:
        return None
    values = {key: readers[key](value, f"{what}.{key}") for key, (_, value) in fields.items()}
    for given, missing in (("username", "password"), ("password", "username")):
        if given in fields and missing not in fields:
            c.problem(fields[given][0], f"{what}.{given} needs {what}.{missing}: give both "
                                        "to log in, or neither")  # fmt: skip
            return None
    if None in values.values() or not {"host", "from"} <= values.keys():
        return None
    values["sender"] = values.pop("from")
    return SmtpSettings(**values)


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
#: An address as SMTP takes it without extensions (RFC 5321 dot-atom local part, ASCII
#: domain of two labels or more): what the mailer can deliver, not every RFC 5322 form.
_EMAIL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+")


def _host(r: _Reader, node: Node, what: str) -> str | None:
    text = r.check.string(node, what)
    if text is None:
        return None
    try:
        ipaddress.ip_address(text)
    except ValueError:
        if _HOST.fullmatch(text) is None or len(text) > 253:
            r.check.problem(node, f"{what}: '{text}' is not a host name or IP address "
                                  "(the port goes in its own key)")  # fmt: skip
            return None
    return text


def _email(r: _Reader, node: Node, what: str) -> str | None:
    text = r.check.string(node, what)
    if text is None:
        return None
    if _EMAIL.fullmatch(text) is None or len(text) > 254:
        r.check.problem(node, f"{what}: '{text}' is not an e-mail address "
                              "(expected name@domain, e.g. noc@example.com)")  # fmt: skip
        return None
    return text


def _sip(r: _Reader, node: Node, what: str) -> SipSettings | None:
    c = r.check
    r.marks["sip"] = node
    values = r.section(node, what, {
        "listen": lambda n, w: r.hostport(n, w, 5060),
        "trunk": lambda n, w: r.hostport(n, w, 5060),
        "mode": lambda n, w: r.choice(n, w, MODES),
        "transports": lambda n, w: _transports(r, n, w),
        "peers": lambda n, w: _peers(r, n, w),
        "timers": lambda n, w: r.section(n, w, {
            "t1": lambda n2, w2: c.number(n2, w2, 0.05),
            "t2": lambda n2, w2: c.number(n2, w2, 0.5),
            "t4": lambda n2, w2: c.number(n2, w2, 0.5)}),
        "tcp_idle_timeout": lambda n, w: c.number(n, w, 1),
        "reuse_port": c.boolean,
        "trunk_transport": lambda n, w: r.choice(n, w, ("udp", "tcp")),
        "advertise": lambda n, w: _advertise(r, n, w),
        "overload": lambda n, w: r.section(n, w, {
            "max_delay_ms": lambda n2, w2: c.integer(n2, w2, 1, 60000),
            "retry_after": lambda n2, w2: c.integer(n2, w2, 0, 3600),
            "receive_buffer_kb": lambda n2, w2: c.integer(n2, w2, 64, 1024 * 1024)}),
        "redirect": lambda n, w: r.section(n, w, {
            "failover_contacts": c.boolean,
            "max_contacts": lambda n2, w2: c.integer(n2, w2, 1, 16),
            "unservable": lambda n2, w2: c.integer(n2, w2, 400, 699)}),
    })  # fmt: skip
    timers = values.pop("timers", {})
    overload = values.pop("overload", {})
    if "max_delay_ms" in overload:
        overload["max_delay"] = overload.pop("max_delay_ms") / 1000
    if "receive_buffer_kb" in overload:
        overload["receive_buffer"] = overload.pop("receive_buffer_kb") * 1024
    redirect = values.pop("redirect", {})
    if "peers" in values and values["peers"] == ("open",):
        values["peers"] = None
    return SipSettings(
        **values,
        **timers,
        overload=OverloadSettings(**overload),
        redirect=RedirectSettings(**redirect),
    )


def _advertise(r: _Reader, node: Node, what: str) -> str | None:
    text = r.check.string(node, what)
    if text is None:
        return None
    try:
        ipaddress.ip_address(text)
    except ValueError:
        r.check.problem(node, f"{what}: '{text}' is not an IP address (peers must reach it)")
        return None
    return text


def _calls(r: _Reader, node: Node, what: str) -> CallSettings:
    c = r.check
    values = r.section(node, what, {
        "max_ring_time": lambda n, w: c.number(n, w, 1),
        "min_se": lambda n, w: c.integer(n, w, 90, 86400),
        "lease_ttl": lambda n, w: c.number(n, w, 10),
    })  # fmt: skip
    return CallSettings(**values)


def _media(r: _Reader, node: Node, what: str) -> MediaSettings | None:
    c = r.check
    values = r.section(node, what, {
        "rtp_ports": lambda n, w: _port_range(r, n, w),
        "advertise": lambda n, w: _advertise(r, n, w),
        "dead_media": lambda n, w: c.number(n, w, 1),
        "barge_in": c.boolean,
        "recording": lambda n, w: r.section(n, w, {
            "channels": lambda n2, w2: r.choice(n2, w2, ("mono", "stereo"))}),
    })  # fmt: skip
    recording = values.pop("recording", {})
    if "channels" in recording:
        values["recording_channels"] = recording["channels"]
    return MediaSettings(**values)


def _port_range(r: _Reader, node: Node, what: str) -> tuple[int, int] | None:
    c = r.check
    items = c.sequence(node, what)
    if items is None:
        return None
    ports = [c.integer(item, f"each port of {what}", 1024, 65535) for item in items]
    if len(ports) != 2:
        c.problem(node, f"{what} must be two ports, [FIRST, LAST], not {len(ports)}")
        return None
    first, last = ports
    if first is None or last is None:
        return None
    if last - first < 3:
        c.problem(node, f"{what} must hold at least two streams (four ports): "
                  f"[{first}, {last}] holds {(last - first + 1) // 2}")  # fmt: skip
        return None
    return first, last


def _transports(r: _Reader, node: Node, what: str) -> tuple[str, ...] | None:
    items = r.check.strings(node, what)
    if items is None:
        return None
    out = []
    for item, text in items:
        if text.lower() not in ("udp", "tcp"):
            r.check.problem(item, f"{what}: '{text}' is not a transport (udp, tcp)")
        else:
            out.append(text.lower())
    return tuple(out) or None


def _peers(r: _Reader, node: Node, what: str) -> tuple[str, ...] | None:
    if isinstance(node, ScalarNode) and node.value == "open":
        return ("open",)
    items = r.check.strings(node, what)
    if items is None:
        return None
    out = []
    for item, text in items:
        try:
            out.append(str(ipaddress.ip_network(text, strict=False)))
        except ValueError:
            r.check.problem(item, f"{what}: '{text}' is not an address or network (or 'open')")
    return tuple(out)


def _customers(r: _Reader, node: Node, what: str) -> dict[str, Customer]:
    found = r.check.mapping(node, what)
    out: dict[str, Customer] = {}
    owner: dict[str, str] = {}
    owner_of_key: dict[str, str] = {}
    owner_of_user: dict[str, str] = {}  # softphone user -> customer
    for cid, (key, value) in (found or {}).items():
        customer = _customer(r, cid, value, f"customer '{cid}'")
        if customer is None:
            continue
        for number in customer.numbers:
            if number in owner:
                r.check.problem(key, f"number {number} belongs to both customer "
                                     f"'{owner[number]}' and customer '{cid}'")  # fmt: skip
            owner[number] = cid
        keyed = customer.customer_number
        if keyed is not None:
            if keyed in owner_of_key:  # the DRS phone service finds a customer by this number
                r.check.problem(key, f"customer_number {keyed} belongs to both customer "
                                     f"'{owner_of_key[keyed]}' and customer '{cid}'")  # fmt: skip
            owner_of_key[keyed] = cid
        # A REGISTER names its user before it proves anything: the user finds the account.
        for operator in customer.acm.operators.values() if customer.acm is not None else ():
            user = operator.softphone.user if operator.softphone is not None else None
            if user is not None and user in owner_of_user:
                r.check.problem(key, f"customer '{cid}': softphone user '{user}' is taken by "
                                     f"another softphone of customer '{owner_of_user[user]}' "
                                     "(users are unique across customers)")  # fmt: skip
            elif user is not None:
                owner_of_user[user] = cid
        out[cid] = customer
    # The engine answers a feature number itself, before any tree: it must be nobody's number.
    features: dict[str, str] = {}
    for cid, customer in out.items():
        feature = customer.acm.feature_number if customer.acm is not None else None
        if feature is None:
            continue
        where: Node = found[cid][0] if found else node
        if feature in owner:
            r.check.problem(where, f"customer '{cid}': acm.feature_number {feature} is a number "
                                 f"of customer '{owner[feature]}', whose tree would never get "
                                 "its calls")  # fmt: skip
        elif feature in features:
            r.check.problem(where, f"customer '{cid}': acm.feature_number {feature} is also "
                                 f"customer '{features[feature]}''s")  # fmt: skip
        features[feature] = cid
    return out


_CUSTOMER_KEYS = ("formula", "options", "numbers", "customer_number", "drs_password", "floods",
                  "contacts", "api_token", "legal_entity", "acm")  # fmt: skip
_NUMBER_KEYS = ("number", "holder", "ported", "flags")


class _Number(NamedTuple):
    """One entry of ``customers.ID.numbers`` as read: a plain number or a mapping."""

    node: Node
    e164: str
    holder: str | None
    ported: bool


def _customer(r: _Reader, cid: str, node: Node, what: str) -> Customer | None:
    c = r.check
    fields = c.mapping(node, what, allowed=_CUSTOMER_KEYS, required=("formula", "numbers"))
    if fields is None:
        return None
    if "floods" in fields:
        given = r.section(fields["floods"][1], f"customers.{cid}.floods", {
            "per_number": lambda n, w: _rate_limit(r, n, w)})  # fmt: skip
        if "per_number" in given:
            r.customer_floods[cid] = given["per_number"]
    formula = r.choice(fields["formula"][1], f"{what} formula", FORMULAS) \
        if "formula" in fields else None  # fmt: skip
    options: set[str] = set()
    if "options" in fields:
        for item, text in c.strings(fields["options"][1], f"{what} options") or []:
            if text not in OPTIONS:
                c.problem(item, f"{what}: unknown option '{text}' (options: {', '.join(OPTIONS)})")
            elif formula is not None and offers(formula, text) is None:
                c.problem(item, f"{what}: the {formula} formula does not offer the '{text}' option")
            else:
                options.add(text)
    numbers = _customer_numbers(r, fields["numbers"][1], what) if "numbers" in fields else []
    customer_number = None
    if "customer_number" in fields:
        customer_number = c.string(fields["customer_number"][1], f"{what} customer_number")
        if customer_number is not None and not customer_number.isdigit():
            c.problem(fields["customer_number"][1],
                      f"{what}: customer_number must be digits (it is keyed on a phone)")
    drs_password = _hash(r, fields, "drs_password", what, "a password")
    api_token = _hash(r, fields, "api_token", what, "a token")
    legal_entity = c.string(fields["legal_entity"][1], f"{what} legal_entity") \
        if "legal_entity" in fields else None  # fmt: skip
    contacts = _contacts(r, fields["contacts"][1], what) if "contacts" in fields else ()
    acm = read_acm(c, fields["acm"][1], cid, formula, options) if "acm" in fields else None
    if formula is None:
        return None  # the other fields were still checked; load_config raises anyway
    holder = legal_entity or cid
    return Customer(
        cid, formula, frozenset(options), tuple(n.e164 for n in numbers), customer_number,
        drs_password, contacts=contacts, api_token=api_token, legal_entity=legal_entity,
        holders=MappingProxyType({n.e164: n.holder or holder for n in numbers}),
        ported=frozenset(n.e164 for n in numbers if n.ported), acm=acm,
    )  # fmt: skip


def _hash(
    r: _Reader, fields: dict[str, tuple[ScalarNode, Node]], key: str, what: str, plain: str
) -> str | None:
    """A secret as ``vms passwd`` hashes it; the plain secret must never sit in the file."""
    if key not in fields:
        return None
    node = fields[key][1]
    text = r.check.string(node, f"{what} {key}")
    if text is not None and not is_hash(text):
        r.check.problem(node, f"{what}: {key} must be a hash made by `vms passwd`, not {plain}")
        return None
    return text


def _contacts(r: _Reader, node: Node, what: str) -> tuple[str, ...]:
    out: list[str] = []
    for item, _ in r.check.strings(node, f"{what} contacts") or []:
        address = _email(r, item, f"{what} contacts")
        if address in out:
            r.check.problem(item, f"{what} contacts: {address} is listed twice")
        elif address is not None:
            out.append(address)
    return tuple(out)


def _customer_numbers(r: _Reader, node: Node, what: str) -> list[_Number]:
    """The numbers in any accepted form, each once, each one VMS may serve."""
    in_list = isinstance(node, SequenceNode)
    label = f"each entry of {what} numbers" if in_list else f"{what} numbers"
    out: list[_Number] = []
    first: dict[str, Node] = {}
    for item in node.value if in_list else [node]:
        number = _customer_number(r, item, what, label)
        if number is None:
            continue
        if number.e164 in first:
            line = first[number.e164].start_mark.line + 1
            r.check.problem(number.node, f"{what}: number {number.e164} is listed twice "
                                         f"(first on line {line})")  # fmt: skip
            continue
        first[number.e164] = number.node
        out.append(number)
    return out


def _customer_number(r: _Reader, item: Node, what: str, label: str) -> _Number | None:
    """``"+32..."`` or ``{number, holder, ported, flags}``."""
    c = r.check
    fields: dict[str, tuple[ScalarNode, Node]] = {}
    if isinstance(item, MappingNode):
        found = c.mapping(item, f"a number of {what}", allowed=_NUMBER_KEYS, required=("number",))
        if found is None or "number" not in found:
            return None
        fields = found
        item = fields["number"][1]
    elif not isinstance(item, ScalarNode):
        c.problem(item, f"{label} must be a number or a mapping {{number, holder, ported, "
                        f"flags}}, not {describe(item)}")  # fmt: skip
        return None
    text = c.string(item, label)
    if text is None:
        return None
    e164 = to_e164(text)
    if e164 is None:
        c.problem(item, f"{what}: '{text}' is not a phone number")
        return None
    problem = serving_problem(e164)
    if problem is not None:
        c.problem(item, f"{what}: {problem}")
        return None
    about = f"{what} number {e164}"
    holder = c.string(fields["holder"][1], f"{about} holder") if "holder" in fields else None
    ported = c.boolean(fields["ported"][1], f"{about} ported") if "ported" in fields else False
    flags = (c.strings(fields["flags"][1], f"{about} flags") or []) if "flags" in fields else []
    for flag_node, flag in flags:
        if flag in NUMBER_FLAGS:
            c.problem(flag_node, f"{what}: {flag_problem(e164, flag)}")
        else:
            c.problem(flag_node, f"{about}: unknown flag '{flag}'{did_you_mean(flag, NUMBER_FLAGS)}"
                                 f" (flags: {', '.join(NUMBER_FLAGS)})")  # fmt: skip
    if flags or ("holder" in fields and holder is None) or ported is None:
        return None
    return _Number(item, e164, holder, ported)


_SITE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SITE_KEYS = ("address", "transport", "numbers", "interval", "timeout", "down_after", "up_after")


def _sites(r: _Reader, node: Node, what: str) -> dict[str, Site]:
    found = r.check.mapping(node, what)
    out: dict[str, Site] = {}
    for name, (key, value) in (found or {}).items():
        if not _SITE_NAME.fullmatch(name):
            r.check.problem(key, f"site name '{name}' must be letters, digits, '.', '-' or '_'")
            continue
        site = _site(r, name, key, value)
        if site is not None:
            out[name] = site
    return out


def _site(r: _Reader, name: str, key_node: Node, node: Node) -> Site | None:
    """One site; ``timeout`` defaults to 2 s or the interval when that is shorter.

    The site named ``trunk`` covers every destination (``*``) unless it lists
    ``numbers``: a down trunk makes everything unreachable.
    """
    c = r.check
    what = f"site '{name}'"
    fields = c.mapping(node, what, allowed=_SITE_KEYS)
    if fields is None:
        return None
    r.marks.setdefault(f"sites.{name}", node)
    values: dict[str, Any] = {}
    ok = True
    for key, (_, value) in fields.items():
        label = f"{what} {key}"
        result: Any
        if key == "address":
            result = r.hostport(value, label, 5060)
        elif key == "transport":
            r.marks[f"sites.{name}"] = value
            text = c.string(value, label)
            result = None if text is None else text.lower()
            if result is not None and result not in ("udp", "tcp"):
                c.problem(value, f"{label} must be udp or tcp, not '{text}'")
                result = None
        elif key == "numbers":
            result = _site_numbers(r, value, what)
        elif key == "interval":
            result = c.number(value, label, 0.1)
        elif key == "timeout":
            result = c.number(value, label, 0.05)
        else:
            result = c.integer(value, label, 1, 100)
        if result is None:
            ok = False
        else:
            values[key] = result
    if "address" not in fields and name != "trunk":
        c.problem(key_node, f"{what} lacks the required key 'address' (only the site named "
                            "'trunk' may leave it out: it probes sip.trunk)")  # fmt: skip
        ok = False
    interval = values.get("interval", Site.interval)
    if "timeout" in values and values["timeout"] > interval:
        c.problem(fields["timeout"][1], f"{what} timeout ({values['timeout']:g} s) must not "
                  f"exceed its interval ({interval:g} s): one probe at a time")  # fmt: skip
        ok = False
    values.setdefault("timeout", min(Site.timeout, interval))
    if name == "trunk" and "numbers" not in fields:  # every call leaves through the trunk
        values["numbers"] = (EVERYTHING,)
    return Site(name, **values) if ok else None


def _site_numbers(r: _Reader, node: Node, what: str) -> tuple[str, ...] | None:
    """``*``, prefixes ``NUMBER*`` and exact numbers in any form, normalised to E.164."""
    items = r.check.strings(node, f"{what} numbers")
    if items is None:
        return None
    out: list[str] = []
    for item, text in items:
        if text.strip() == EVERYTHING:
            pattern: str | None = EVERYTHING
        elif text.rstrip().endswith("*"):
            prefix = prefix_to_e164(text)
            pattern = None if prefix is None else prefix + "*"
        else:
            pattern = to_e164(text)
        if pattern is None:
            r.check.problem(item, f"{what}: '{text}' is not a phone number, a prefix ending "
                                  "in * or *")  # fmt: skip
        elif pattern not in out:
            out.append(pattern)
    return tuple(out)


def _floods(r: _Reader, node: Node, what: str) -> FloodSettings | None:
    c = r.check
    values = r.section(node, what, {
        "per_number": lambda n, w: _rate_limit(r, n, w),
        "per_source": lambda n, w: _rate_limit(r, n, w),
        "response": lambda n, w: _flood_response(r, n, w),
        "retry_after": lambda n, w: c.integer(n, w, 0, 3600),
    })  # fmt: skip
    defaults = FloodSettings()
    for key in ("per_number", "per_source"):
        if key in values:
            values[key] = replace(getattr(defaults, key), **values[key])
    return FloodSettings(**values)


def _rate_limit(r: _Reader, node: Node, what: str) -> dict[str, Any] | None:
    """``{rate: CALLS_PER_S, burst: N}``; a key left out keeps its default."""
    c = r.check

    def rate(n: Node, w: str) -> float | None:
        value = c.number(n, w, 0.01)
        if value is not None and value > 100_000:
            c.problem(n, f"{w} must be at most 100000 calls/s, not {value:g}")
            return None
        return value

    values = r.section(node, what, {
        "rate": rate,
        "burst": lambda n, w: c.integer(n, w, 1, 1_000_000),
    })  # fmt: skip
    return values or None


def _flood_response(r: _Reader, node: Node, what: str) -> int | None:
    status = r.check.integer(node, what)
    if status is not None and status not in RESPONSES:
        listed = " or ".join(str(s) for s in RESPONSES)
        r.check.problem(node, f"{what} must be {listed}, not {status}")
        return None
    return status


def _prefixes(r: _Reader, node: Node, what: str) -> tuple[str, ...] | None:
    """E.164 prefixes in any form (``+3247``, ``0032 47``, ``047``, with or without ``*``)."""
    items = r.check.strings(node, what)
    if items is None:
        return None
    out: list[str] = []
    for item, text in items:
        prefix = prefix_to_e164(text if text.rstrip().endswith("*") else text + "*")
        if prefix is None or len(prefix) < 2:
            r.check.problem(item, f"{what}: '{text}' is not a number prefix "
                                  "(E.164 like +3247, or 0032.., 0..)")  # fmt: skip
        elif prefix not in out:
            out.append(prefix)
    return tuple(out)


def check_file(path: Path | str) -> list[str]:
    """Problems of a configuration file as printable lines (empty when valid)."""
    try:
        load_config(path)
    except SourceError as exc:
        return [str(p) for p in exc.problems]
    return []
