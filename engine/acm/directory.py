"""A customer's live ACM: the configuration's ``acm`` with the changes made at run time on top.

Groups, operators and supervisors are written in the configuration and
changed through the HTTP API while engines run (issue 6). A change must
survive restarts and configuration reloads and be in force in every engine
on the ``data_dir`` within a second, so the changes live in
``DATA_DIR/acm.sqlite`` (WAL) as an *overlay*: per customer, each group or
operator written through the API (its whole body, as the YAML would say it)
or deleted (a tombstone: the API's last word on a name wins over the file),
and the supervisors' list. The live settings are the file's ``acm`` node
with the overlay's entries put in its place, read by the same
:func:`~engine.acm.config.read_acm` as the file, so the API can only make
what the file could say (with one exception: a group may be empty at run
time, since it is made before operators join it and emptied before it is
deleted). Keys this module does not know (softphones, e-mail) pass through.

Each engine keeps the result in memory (:meth:`AcmDirectory.settings` is a
dict lookup) and reloads it when the database's change counter moves,
polled every ``interval`` like the mode watcher; ``on_change(customer)``
hears of each customer whose settings moved. Every write re-reads the
overlay inside its write transaction, so engines changing one customer at
once queue up and each change is validated against the one before it.

An overlay that no longer fits the file (the file dropped a group an
API-written operator names) is logged problem by problem, and the file's
settings serve that customer until either is fixed: every engine decides
the same way. PINs written through the API are stored as scrypt hashes; a
body without ``pin`` keeps the operator's current one.
"""

from __future__ import annotations

import hmac
import json
import logging
import sqlite3
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from engine.acm.config import read_acm
from engine.acm.model import AcmSettings
from engine.cdr.migrations import Migration, migrate
from engine.formulas import may
from engine.modes.watcher import Clock
from engine.passwords import DECOY_HASH, hash_password, is_hash, verify_password
from engine.ratelog import RateLimitedLog
from engine.sqlite import immediate, open_database
from routing_trees.source import Checker, SourceError, load_yaml

if TYPE_CHECKING:
    from engine.config import Config, Customer

__all__ = ["FILENAME", "MIGRATIONS", "AcmChangeError", "AcmDirectory", "Auditor",
           "ConflictError", "DirectoryError", "InvalidChangeError", "UnknownNameError"]  # fmt: skip

log = logging.getLogger("vms.acm")

FILENAME = "acm.sqlite"

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "groups, operators and supervisors written at run time", (
        # body: the JSON written (a hashed pin), NULL for a deletion; supervisors: name ''.
        """CREATE TABLE overlay (
            customer TEXT NOT NULL,
            kind     TEXT NOT NULL CHECK (kind IN ('group', 'operator', 'supervisors')),
            name     TEXT NOT NULL,
            body     TEXT,
            at       REAL NOT NULL,
            by       TEXT NOT NULL,
            PRIMARY KEY (customer, kind, name)
        ) WITHOUT ROWID""",
        # Moves on every change: engines poll it.
        "CREATE TABLE version (one INTEGER PRIMARY KEY CHECK (one = 1), n INTEGER NOT NULL)",
        "INSERT INTO version VALUES (1, 0)",
    )),
)  # fmt: skip

#: (kind, name) -> the body written, or None for a deletion.
_Overlay = dict[tuple[str, str], Any]
_SECTIONS = {"group": "groups", "operator": "operators"}
_MARK = Mark("api", 0, 0, 0, "", 0)


class DirectoryError(Exception):
    """The ACM database cannot be used; the message says why and what to do."""


class AcmChangeError(Exception):
    """A change refused; the message is one sentence for the user."""


class InvalidChangeError(AcmChangeError):
    """The change does not read as the configuration would (HTTP 400)."""


class ConflictError(AcmChangeError):
    """The change would leave the rest inconsistent, or the customer has no ACM (HTTP 409)."""


class UnknownNameError(AcmChangeError):
    """No such group or operator (HTTP 404)."""


class Auditor(Protocol):
    """Where changes are audited: :meth:`engine.modes.store.ModeStore.audit`."""

    def audit(self, customer: str | None, caller: str | None, action: str, outcome: str,
              via: str, detail: str = "") -> None: ...  # fmt: skip


class AcmDirectory:
    """The live ACM of every customer; see the module doc. ``open()`` first, ``close()`` last."""

    def __init__(
        self,
        path: Path,
        config: Config,
        clock: Clock,
        *,
        interval: float = 0.5,
        auditor: Auditor | None = None,
        on_change: Callable[[str], None] | None = None,
        busy_timeout: float = 5.0,
    ) -> None:
        self.path = Path(path)
        self.config = config
        self.clock = clock
        self.interval = interval
        self.auditor = auditor
        self.on_change = on_change
        self.busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._nodes: dict[str, Node | None] = {}
        self._overlay: dict[str, _Overlay] = {}
        self._live: dict[str, AcmSettings] = {}
        self._version: int | None = None
        self._call: Any = None
        self._warn = RateLimitedLog(log, clock)

    @classmethod
    def in_data_dir(cls, config: Config, clock: Clock, **options: Any) -> AcmDirectory:
        return cls(Path(config.data_dir) / FILENAME, config, clock, **options)

    # -- life cycle ---------------------------------------------------------------------

    def open(self) -> None:
        """Create or upgrade the database and load the live settings; DirectoryError if not."""
        self._conn = open_database(
            self.path, lambda conn: migrate(conn, self.clock.seconds(), MIGRATIONS, _newer),
            error=DirectoryError, what="the ACM database", synchronous="FULL",
            timeout=self.busy_timeout,
        )  # fmt: skip
        self._nodes = _file_nodes(self.config)
        self.refresh(notify=False)

    def close(self) -> None:
        self.stop()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> AcmDirectory:
        self.open()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.close()

    def start(self) -> None:
        """Poll the change counter every ``interval``."""
        if self._call is None:
            self._call = self.clock.callLater(self.interval, self._tick)

    def stop(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _tick(self) -> None:
        try:
            self.refresh()
        finally:
            self._call = self.clock.callLater(self.interval, self._tick)

    def reconfigure(self, config: Config) -> None:
        """A reloaded configuration: the overlay goes on top of it."""
        self.config = config
        self._nodes = _file_nodes(config)
        self._rebuild(notify=True)

    def refresh(self, notify: bool = True) -> None:
        """Reload the overlay when another process (or this one) changed it."""
        try:
            version = self.version()
            if version == self._version:
                return
            self._overlay = _load(self._db())
        except sqlite3.Error as exc:
            self._warn.warning("poll", "%s: cannot read the ACM changes (%s); the last ones "
                               "read stay in effect", self.path, exc)  # fmt: skip
            return
        self._version = version
        self._rebuild(notify)

    def version(self) -> int:
        return int(self._db().execute("SELECT n FROM version").fetchone()[0])

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the ACM directory is not open; call open() first")
        return self._conn

    def _rebuild(self, notify: bool) -> None:
        live: dict[str, AcmSettings] = {}
        for cid, customer in self.config.customers.items():
            settings = self._settings_of(customer, self._overlay.get(cid, {}))
            if settings is not None:
                live[cid] = settings
        old, self._live = self._live, live
        if notify and self.on_change is not None:
            for cid in sorted(set(old) | set(live)):
                if old.get(cid) != live.get(cid):
                    self.on_change(cid)

    def _settings_of(self, customer: Customer, overlay: _Overlay) -> AcmSettings | None:
        if not overlay or may(customer, "acm") is not None:
            return customer.acm
        settings, problems = self._read(customer, overlay)
        if settings is None:
            log.warning("customer %s: the ACM changes made at run time no longer fit %s (%s); "
                        "its ACM is the file's until one of them is fixed", customer.id,
                        self.config.file, "; ".join(problems))  # fmt: skip
            return customer.acm
        return settings

    def _read(self, customer: Customer, overlay: _Overlay) -> tuple[AcmSettings | None, list[str]]:
        """The settings of the file's node with ``overlay`` on top, or the problems."""
        check = Checker(str(self.config.file))
        node = _merge(self._nodes.get(customer.id), overlay)
        settings = read_acm(check, node, customer.id, None, (), empty_groups=True)
        prefix = f"customers.{customer.id}.acm."
        return settings, [p.message.replace(prefix, "") for p in check.problems]

    # -- reading ------------------------------------------------------------------------

    def settings(self, customer: str) -> AcmSettings | None:
        """The customer's live ACM (None: it has none); a dict lookup, for every queued call."""
        return self._live.get(customer)

    def refusal(self, customer: str) -> str | None:
        """Why ``customer`` may not have ACM (its formula, its options), or None."""
        found = self.config.customers.get(customer)
        if found is None:
            return f"unknown customer '{customer}'"
        return may(found, "acm")

    def verify_pin(self, customer: str, operator: str, digits: str) -> bool:
        """Whether ``digits`` are the operator's PIN: one scrypt, so call it off the reactor."""
        acm = self._live.get(customer)
        found = acm.operators.get(operator) if acm is not None else None
        if found is None:
            verify_password(digits, DECOY_HASH)  # an unknown name costs the same
            return False
        if is_hash(found.pin):
            return verify_password(digits, found.pin)
        verify_password(digits, DECOY_HASH)  # digits as written cost the same: ids stay hidden
        return hmac.compare_digest(found.pin.encode(), digits.encode())

    # -- changing -----------------------------------------------------------------------

    def put_operator(self, customer: str, name: str, body: Mapping[str, Any], by: str,
                     *, dry_run: bool = False) -> AcmSettings:  # fmt: skip
        """Write the operator (``numbers``, ``pin``, ``groups`` ...); a plain PIN is hashed.

        ``dry_run`` validates without writing or hashing: the API checks a body
        that way before it hashes the PIN off the reactor.
        """
        written = dict(body)
        pin = written.get("pin")
        if not dry_run and isinstance(pin, str | int) and not is_hash(str(pin)):
            self.put_operator(customer, name, body, by, dry_run=True)  # no hash for a bad body
            written["pin"] = hash_password(str(pin))

        def edit(overlay: _Overlay) -> list[tuple[str, str, Any]]:
            previous = overlay.get(("operator", name))
            if "pin" not in written and previous is not None and "pin" in previous:
                written["pin"] = previous["pin"]  # else the file's, read at each merge
            return [("operator", name, written)]

        detail = f"{name}: {_without_secrets(written)}" + ("; new PIN" if "pin" in body else "")
        return self._change(customer, edit, InvalidChangeError, by, "acm-operator-put", detail,
                            dry_run)  # fmt: skip

    def delete_operator(self, customer: str, name: str, by: str,
                        *, dry_run: bool = False) -> AcmSettings:  # fmt: skip
        self._known(customer, "operator", name)
        return self._change(customer, lambda _: [("operator", name, None)], ConflictError,
                            by, "acm-operator-delete", name, dry_run)  # fmt: skip

    def put_group(self, customer: str, name: str, body: Mapping[str, Any], by: str,
                  *, dry_run: bool = False) -> AcmSettings:  # fmt: skip
        """Write the group (strategy, timers, tiers ...); its members are the operators'."""
        return self._change(customer, lambda _: [("group", name, dict(body))],
                            InvalidChangeError, by, "acm-group-put", f"{name}: {_json(body)}",
                            dry_run)  # fmt: skip

    def delete_group(self, customer: str, name: str, by: str,
                     *, dry_run: bool = False) -> AcmSettings:  # fmt: skip
        """Delete the group; refused while operators are in it."""
        acm = self._known(customer, "group", name)
        members = sorted(op.name for op in acm.operators.values() if name in op.groups)
        if members:
            raise ConflictError(f"group '{name}' still has operators ({', '.join(members)}); "
                                    "take it out of their groups first")  # fmt: skip
        return self._change(customer, lambda _: [("group", name, None)], ConflictError, by,
                            "acm-group-delete", name, dry_run)  # fmt: skip

    def put_supervisors(self, customer: str, names: Any, by: str,
                        *, dry_run: bool = False) -> AcmSettings:  # fmt: skip
        return self._change(customer, lambda _: [("supervisors", "", names)],
                            InvalidChangeError, by, "acm-supervisors-put", _json(names),
                            dry_run)  # fmt: skip

    def audit(self, customer: str, by: str, action: str, detail: str, via: str = "api") -> None:
        """Audit what was done to ``customer``'s ACM (a change, an operator logged in ...)."""
        if self.auditor is None:
            return
        try:
            self.auditor.audit(customer, by, action, "ok", via, detail)
        except sqlite3.Error as exc:
            log.error("customer %s: %s by %s was done but not audited: %s", customer, action,
                      by, exc)  # fmt: skip

    def _known(self, customer: str, kind: str, name: str) -> AcmSettings:
        acm = self._entitled(customer)
        names = acm.groups if kind == "group" else acm.operators
        if name not in names:
            raise UnknownNameError(f"customer '{customer}' has no {kind} '{name}'")
        return acm

    def _entitled(self, customer: str) -> AcmSettings:
        refused = self.refusal(customer)
        if refused is not None:
            raise ConflictError(refused)
        return self._live.get(customer) or AcmSettings({}, {})

    def _change(self, customer: str, edit: Callable[[_Overlay], list[tuple[str, str, Any]]],
                refused: type[AcmChangeError], by: str, action: str, detail: str,
                dry_run: bool) -> AcmSettings:  # fmt: skip
        """Validate ``edit`` against the overlay as stored now and, unless a dry run, write it."""
        self._entitled(customer)
        found = self.config.customers[customer]
        with self._write() as conn:
            overlay = _load(conn, customer).get(customer, {})
            edits = edit(overlay)
            settings, problems = self._read(found, {**overlay, **{(k, n): b for k, n, b in edits}})
            if settings is None:
                raise refused(problems[0] if problems else "the change was refused")
            self.refresh()  # the other customers as stored now: they are written under this lock
            taken = self._softphone_taken(customer, settings)
            if taken is not None:
                raise ConflictError(taken)
            if dry_run:
                return settings
            now = self.clock.seconds()
            for kind, name, body in edits:
                conn.execute(
                    "INSERT INTO overlay VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (customer, kind, "
                    "name) DO UPDATE SET body = excluded.body, at = excluded.at, by = excluded.by",
                    (customer, kind, name, None if body is None else _json(body), now, by),
                )  # fmt: skip
            conn.execute("UPDATE version SET n = n + 1")
        self.audit(customer, by, action, detail)
        self.refresh()
        return settings

    def _softphone_taken(self, customer: str, settings: AcmSettings) -> str | None:
        """Why ``settings`` may not have its softphones, or None: like the file's check, users
        are unique across customers (a REGISTER names its user before it proves anything).

        Only the users the change brings are checked, so a clash that a reloaded file made
        does not block unrelated changes; the other customer is not named to the caller.
        """
        before = self._live.get(customer)
        old = {(op.name, op.softphone.user) for op in (before.operators.values() if before
               else ()) if op.softphone is not None}  # fmt: skip
        users: dict[str, list[str]] = {}  # softphone user -> the operators who have it
        for op in settings.operators.values():
            if op.softphone is not None:
                users.setdefault(op.softphone.user, []).append(op.name)
        new = {user for user, names in users.items() if any((n, user) not in old for n in names)}
        for user in sorted(new):
            if len(users[user]) > 1:
                return (f"softphone user '{user}' would belong to operators "
                        f"{', '.join(sorted(users[user]))}; softphone users are unique: give "
                        "each its own")  # fmt: skip
        for cid, other in self._live.items():
            if cid == customer:
                continue
            for op in other.operators.values():
                if op.softphone is not None and op.softphone.user in new:
                    return (f"softphone user '{op.softphone.user}' is taken by another "
                            "customer's softphone (softphone users are unique across "
                            "customers); choose another")  # fmt: skip
        return None

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        return immediate(self._db())


def _newer(found: int, latest: int) -> Exception:
    return DirectoryError(f"the ACM database is at schema version {found}, newer than this "
                          f"engine knows ({latest}); run the newer engine, or restore a copy")


def _load(conn: sqlite3.Connection, customer: str | None = None) -> dict[str, _Overlay]:
    sql = "SELECT customer, kind, name, body FROM overlay"
    rows = conn.execute(sql + " WHERE customer = ?", (customer,)) if customer is not None \
        else conn.execute(sql)  # fmt: skip
    out: dict[str, _Overlay] = {}
    for cid, kind, name, body in rows:
        out.setdefault(cid, {})[(kind, name)] = None if body is None else json.loads(body)
    return out


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _without_secrets(body: Mapping[str, Any]) -> str:
    """An operator for the audit log: no PIN, and of a softphone only its user (an HA1 is
    password-equivalent)."""
    shown = {k: v for k, v in body.items() if k not in ("pin", "softphone")}
    phone = body.get("softphone")
    if isinstance(phone, Mapping):
        shown["softphone"] = {"user": phone.get("user"), "ha1": "(not shown)"}
    return _json(shown)


def _file_nodes(config: Config) -> dict[str, Node | None]:
    """Each customer's ``acm`` node as the configuration file has it (None: no ``acm:``)."""
    try:
        top = load_yaml(config.file)
    except SourceError as exc:
        log.error("%s: cannot read it again for the ACM (%s); the ACM changes made at run time "
                  "apply to no customer's file settings", config.file, exc)  # fmt: skip
        return {}
    out: dict[str, Node | None] = {}
    for cid, node in _pairs(_pairs(top).get("customers")).items():
        out[cid] = _pairs(node).get("acm")
    return out


def _pairs(node: Node | None) -> dict[str, Node]:
    if not isinstance(node, MappingNode):
        return {}
    return {k.value: v for k, v in node.value if isinstance(k, ScalarNode)}


def _merge(base: Node | None, overlay: _Overlay) -> Node:
    """The ``acm`` node with the overlay's groups, operators and supervisors in place."""
    top = _pairs(base) if base is not None else {}
    sections = {s: _pairs(top.get(s)) for s in ("groups", "operators")}
    for (kind, name), body in sorted(overlay.items(), key=lambda item: item[0]):
        if kind == "supervisors":
            top["supervisors"] = _node(body)
            continue
        section = sections[_SECTIONS[kind]]
        old = section.pop(name, None)
        if body is None:
            continue
        node = _node(body)
        pin = _pairs(old).get("pin")
        if kind == "operator" and "pin" not in body and pin is not None:
            node.value.append((_key("pin"), pin))
        section[name] = node
    for s, entries in sections.items():
        top[s] = MappingNode("tag:yaml.org,2002:map",
                             [(_key(k), v) for k, v in entries.items()], _MARK, _MARK)  # fmt: skip
    return MappingNode("tag:yaml.org,2002:map", [(_key(k), v) for k, v in top.items()],
                       _MARK, _MARK)  # fmt: skip


def _key(name: str) -> ScalarNode:
    return ScalarNode("tag:yaml.org,2002:str", name, _MARK, _MARK)


def _node(value: Any) -> Node:
    """A JSON value as the YAML node that says it: strings quoted, so '15' is not a number."""
    if isinstance(value, dict):
        return MappingNode("tag:yaml.org,2002:map",
                           [(_key(str(k)), _node(v)) for k, v in value.items()],
                           _MARK, _MARK)  # fmt: skip
    if isinstance(value, list):
        return SequenceNode("tag:yaml.org,2002:seq", [_node(v) for v in value], _MARK, _MARK)
    if isinstance(value, str):
        return ScalarNode("tag:yaml.org,2002:str", value, _MARK, _MARK, style='"')
    if isinstance(value, bool):
        return ScalarNode("tag:yaml.org,2002:bool", str(value).lower(), _MARK, _MARK)
    if isinstance(value, int | float):
        tag = "int" if isinstance(value, int) else "float"
        return ScalarNode(f"tag:yaml.org,2002:{tag}", repr(value), _MARK, _MARK)
    return ScalarNode("tag:yaml.org,2002:null", "null", _MARK, _MARK)
