"""The engine's configuration file: read, validated, every problem with its place.

One YAML file (contract.md, "Configuration"). Every key is checked at start
with the same ``FILE:LINE:COL: message`` errors as trees, and nothing starts
until the whole file is right. Relative paths are relative to the file.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.formulas import FORMULAS, OPTIONS, offers
from engine.passwords import is_hash
from engine.sip.peers import LOOPBACK
from routing_trees.model import CustomerProfile
from routing_trees.numbers import number_kind, to_e164
from routing_trees.source import Checker, Node, ScalarNode, SourceError, load_yaml

__all__ = [
    "Config",
    "Customer",
    "OverloadSettings",
    "RedirectSettings",
    "SipSettings",
    "load_config",
    "parse_hostport",
]

HostPort = tuple[str, int]
MODES = ("redirect", "b2bua")
_TOP = "the configuration"


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

    def profile(self) -> CustomerProfile:
        return CustomerProfile(self.id, self.formula, self.options, frozenset(self.numbers))


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

    def profiles(self) -> dict[str, CustomerProfile]:
        return {cid: c.profile() for cid, c in self.customers.items()}

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
            "max_days": lambda n2, w2: c.integer(n2, w2, 1, 366)}),
        "customers": lambda n, w: _customers(r, n, w),
        "log": lambda n, w: r.section(n, w, {
            "level": lambda n2, w2: r.choice(n2, w2, ("debug", "info", "warning", "error"))}),
    })  # fmt: skip
    if (isinstance(root, ScalarNode) or "trees" not in top) and not c.problems:
        c.problem(root, "the configuration lacks the required key 'trees'")
    c.raise_if_problems()
    drs = top.get("drs", {})
    return Config(
        file=path.resolve(),
        sip=top.get("sip", SipSettings()),
        state=top.get("state", "memory"),
        data_dir=top.get("data_dir", (r.base / "var").resolve()),
        trees=top["trees"],
        portal=top.get("portal", {}).get("listen", ("127.0.0.1", 8080)),
        drs_service_number=drs.get("service_number"),
        drs_max_days=drs.get("max_days", 31),
        customers=top.get("customers", {}),
        log_level=top.get("log", {}).get("level", "info"),
    )


def _state(r: _Reader, node: Node, what: str) -> str | None:
    text = r.check.string(node, what)
    if text is None:
        return None
    if text != "memory" and not text.startswith("redis://"):
        r.check.problem(node, f"{what} must be 'memory' or redis://HOST:PORT/DB, not '{text}'")
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


def _sip(r: _Reader, node: Node, what: str) -> SipSettings | None:
    c = r.check
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
    for cid, (key, value) in (found or {}).items():
        customer = _customer(r, cid, value, f"customer '{cid}'")
        if customer is None:
            continue
        for number in customer.numbers:
            if number in owner:
                r.check.problem(key, f"number {number} belongs to both customer "
                                     f"'{owner[number]}' and customer '{cid}'")  # fmt: skip
            owner[number] = cid
        out[cid] = customer
    return out


def _customer(r: _Reader, cid: str, node: Node, what: str) -> Customer | None:
    c = r.check
    fields = c.mapping(node, what, allowed=(
        "formula", "options", "numbers", "customer_number", "drs_password"),
        required=("formula", "numbers"))  # fmt: skip
    if fields is None:
        return None
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
    numbers: list[str] = []
    if "numbers" in fields:
        for item, text in c.strings(fields["numbers"][1], f"{what} numbers") or []:
            e164 = to_e164(text)
            if e164 is None:
                c.problem(item, f"{what}: '{text}' is not a phone number")
            elif (kind := number_kind(e164)).name != "GEOGRAPHIC":
                c.problem(item, f"{what}: {e164} is {kind.description}; "
                                "VMS serves geographic numbers only")  # fmt: skip
            else:
                numbers.append(e164)
    customer_number = None
    if "customer_number" in fields:
        customer_number = c.string(fields["customer_number"][1], f"{what} customer_number")
        if customer_number is not None and not customer_number.isdigit():
            c.problem(fields["customer_number"][1],
                      f"{what}: customer_number must be digits (it is keyed on a phone)")
    drs_password = None
    if "drs_password" in fields:
        drs_password = c.string(fields["drs_password"][1], f"{what} drs_password")
        if drs_password is not None and not is_hash(drs_password):
            c.problem(fields["drs_password"][1],
                      f"{what}: drs_password must be a hash made by `vms passwd`, not a password")
    if formula is None:
        return None  # the other fields were still checked; load_config raises anyway
    return Customer(cid, formula, frozenset(options), tuple(numbers), customer_number,
                    drs_password)  # fmt: skip


def check_file(path: Path | str) -> list[str]:
    """Problems of a configuration file as printable lines (empty when valid)."""
    try:
        load_config(path)
    except SourceError as exc:
        return [str(p) for p in exc.problems]
    return []
