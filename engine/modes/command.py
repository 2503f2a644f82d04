"""``vms drs``, ``vms continuity`` and ``vms number``: set what the engines apply.

Each command opens ``DATA_DIR/modes.sqlite`` (created on first use), does
one thing and closes it; every engine on that ``data_dir`` has the change
in effect within a second and reports it (log, e-mail) once
(:mod:`engine.modes.watcher`). Bad input is one sentence on stderr and
exit status 1, checked before the database is touched.

Who may use what is :mod:`engine.modes.entitlement`. A customer whose
formula lacks a service can still see and end a mode left on from before
its formula changed, never switch one on. Times are printed in ISO 8601
UTC; ``--until`` takes any ISO 8601 time, naive meaning UTC (as ``vms cdr
export``).
"""

from __future__ import annotations

import getpass
import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from engine.config import Config, Customer
from engine.modes.entitlement import SERVICES, mode_problem
from engine.modes.store import FILENAME, ModeChange, ModeState, ModeStore, ModeStoreError
from engine.sites.health import iso
from routing_trees.numbers import to_e164
from routing_trees.source import did_you_mean

__all__ = ["DAY", "InputError", "audit", "continuity", "drs", "number"]

DAY = 86400.0


class InputError(Exception):
    """Bad input; the message is the sentence for the user."""


def drs(config: Config, action: str, customer_id: str, days: float | None, as_json: bool,
        out: TextIO, err: TextIO) -> int:  # fmt: skip
    """``vms drs status|activate|deactivate``: DRS until ``days`` (or drs.max_days) from now."""

    def run() -> int:
        customer = _customer(config, customer_id)
        length = float(config.drs_max_days) if days is None else days
        if not 0 < length <= config.drs_max_days:
            raise InputError(f"--days {length:g} is out of range: DRS lasts more than 0 and "
                             f"at most drs.max_days ({config.drs_max_days}) days")  # fmt: skip
        kind = {"activate": "on", "deactivate": "off"}.get(action, action)
        return _switch(config, customer, "drs", "DRS", kind, lambda now: now + length * DAY,
                       as_json, out)  # fmt: skip

    return _run(f"vms drs {action}", config, err, run)


def continuity(config: Config, action: str, customer_id: str, until_text: str | None,
               as_json: bool, out: TextIO, err: TextIO) -> int:  # fmt: skip
    """``vms continuity on|off|status``: Voice Continuity, until ``until_text`` or with no end."""

    def run() -> int:
        customer = _customer(config, customer_id)
        until = None if until_text is None else _parse_time(until_text, "--until")

        def end(now: float) -> float | None:
            if until is not None and until <= now:
                raise InputError(f"--until {until_text} is past; give a time to come, or no "
                                 "--until for no end")  # fmt: skip
            return until

        return _switch(config, customer, "continuity", "Voice Continuity", action, end, as_json,
                       out)  # fmt: skip

    return _run(f"vms continuity {action}", config, err, run)


def _switch(config: Config, customer: Customer, mode: str, name: str, kind: str,
            until: Callable[[float], float | None], as_json: bool, out: TextIO) -> int:  # fmt: skip
    """Status, on or off for one mode; what is due expires first, as an engine would."""
    with ModeStore.in_data_dir(config.data_dir) as store:
        store.expire_due()  # no engine may be running: the store must not show a past end
        state = store.get(customer.id)
        if kind == "status":
            return _status(state, as_json, out)
        _check_entitled(customer, mode, state, ending=kind == "off")
        if kind == "on":
            change = store.set_mode(customer.id, mode, until(store.clock()), _by(), "cli")
        elif state.mode != mode:
            raise InputError(f"{name} is not on for customer '{customer.id}' (its mode is "
                             f"{state.mode}), so there is nothing to switch off")  # fmt: skip
        else:
            change = store.set_mode(customer.id, "normal", None, _by(), "cli")
        return _report(store, customer.id, change, as_json, out)


def audit(config: Config, customer_id: str | None, as_json: bool, out: TextIO,
          err: TextIO) -> int:  # fmt: skip
    """``vms drs audit``: every audited attempt and change, oldest first."""

    def run() -> int:
        if customer_id is not None:
            _customer(config, customer_id)
        with ModeStore.in_data_dir(config.data_dir) as store:
            entries = store.audit_log(customer_id)
        if as_json:
            rows = [{"at": iso(e.at), "customer": e.customer, "caller": e.caller,
                     "action": e.action, "outcome": e.outcome, "via": e.via, "detail": e.detail}
                    for e in entries]  # fmt: skip
            json.dump({"customer": customer_id, "entries": rows}, out, indent=2)
            out.write("\n")
        elif not entries:
            print("vms drs audit: nothing audited yet", file=err)
        else:
            for e in entries:
                print(f"{iso(e.at)}  {e.customer or '-'}  {e.caller or '-'}  {e.action}  "
                      f"{e.outcome}  via {e.via}" + (f"  {e.detail}" if e.detail else ""),
                      file=out)  # fmt: skip
        return 0

    return _run("vms drs audit", config, err, run)


def number(config: Config, action: str, raw: str, out: TextIO, err: TextIO) -> int:
    """``vms number port-out|port-in NUMBER``: stop or resume serving a number at once."""

    def run() -> int:
        e164 = to_e164(raw)
        if e164 is None:
            raise InputError(f"'{raw}' is not a phone number; write it like +3225551234 or "
                             "025551234")  # fmt: skip
        owner = next((c.id for c in config.customers.values() if e164 in c.numbers), None)
        if owner is None:
            raise InputError(f"{e164} is not a number of any customer in {config.file}; only "
                             "numbers VMS serves can be ported")  # fmt: skip
        away = action == "port-out"
        with ModeStore.in_data_dir(config.data_dir) as store:
            changed = store.set_ported(e164, away, _by(), "cli")
        what = f"{e164} (customer '{owner}')"
        if away:
            print(f"{what} is marked ported away: its calls get 404 from now on" if changed
                  else f"{what} was already marked ported away", file=out)  # fmt: skip
        else:
            print(f"{what} is served again" if changed
                  else f"{what} was not marked ported away", file=out)  # fmt: skip
        return 0

    return _run(f"vms number {action}", config, err, run)


def _run(prog: str, config: Config, err: TextIO, body: Callable[[], int]) -> int:
    try:
        return body()
    except (InputError, ModeStoreError) as exc:
        print(f"{prog}: {exc}", file=err)
    except sqlite3.Error as exc:
        print(f"{prog}: {config.data_dir / FILENAME} failed ({exc}); check that the data_dir "
              "is writable, then try again", file=err)  # fmt: skip
    return 1


def _customer(config: Config, customer_id: str) -> Customer:
    customer = config.customers.get(customer_id)
    if customer is None:
        raise InputError(f"unknown customer '{customer_id}' in {config.file}"
                         + did_you_mean(customer_id, config.customers))  # fmt: skip
    return customer


def _check_entitled(customer: Customer, mode: str, state: ModeState, ending: bool) -> None:
    problem = mode_problem(customer, mode)
    if problem is not None and not (ending and state.mode == mode):
        raise InputError(problem)


def _by() -> str:
    """Who is at the command line, for the audit."""
    try:
        return f"cli {getpass.getuser()}"
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return "cli"


def _parse_time(text: str, option: str) -> float:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{option} '{text}' is not an ISO 8601 time; write it like "
                         "2026-12-01T18:00:00Z or 2026-12-01T19:00:00+01:00 (naive times are UTC)"
                         ) from None  # fmt: skip
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _describe(state: ModeState) -> str:
    since = f" since {iso(state.since)}" if state.since is not None else ""
    by = f" (set by {state.by})" if state.by else ""
    if state.mode == "normal":
        return f"customer '{state.customer}' is in normal mode{since}{by}"
    end = f"until {iso(state.until)}" if state.until is not None else "with no end"
    return f"customer '{state.customer}' is in {SERVICES[state.mode]} mode{since}, {end}{by}"


def _document(state: ModeState) -> dict[str, Any]:
    return {
        "customer": state.customer,
        "mode": state.mode,
        "since": None if state.since is None else iso(state.since),
        "until": None if state.until is None else iso(state.until),
        "by": state.by or None,
    }


def _status(state: ModeState, as_json: bool, out: TextIO) -> int:
    if as_json:
        print(json.dumps(_document(state)), file=out)
    else:
        print(_describe(state), file=out)
    return 0


def _report(
    store: ModeStore, customer_id: str, change: ModeChange | None, as_json: bool, out: TextIO
) -> int:
    """The state after a change; None: another process made the same change first."""
    state = store.get(customer_id) if change is None else change.new
    if as_json:
        print(json.dumps({**_document(state), "changed": change is not None}), file=out)
    elif change is None:
        print(f"nothing changed: {_describe(state)}", file=out)
    else:
        print(f"{_describe(state)}; every engine on this data_dir applies it within a second",
              file=out)
    return 0
