"""The ``vms`` command line (contract.md, "Command line").

Errors go to stderr as one sentence; exit status 1 for bad input, 2 for bad
usage (argparse's own). No traceback reaches a user for bad input.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.config import Config, load_config, parse_hostport
from engine.passwords import hash_password
from engine.sip.digest import ha1
from engine.state.url import parse_state_url
from routing_trees import commands as tree_commands
from routing_trees.source import SourceError
from routing_trees.treeset import load_directory

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vms", description="Open Voice Managed Services")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the engine")
    serve.add_argument("--config", required=True, help="configuration file (YAML)")
    serve.add_argument("--sip", help="SIP listen address HOST:PORT (UDP and TCP)")
    serve.add_argument("--trunk", help="trunk address HOST:PORT for outgoing calls")
    serve.add_argument("--mode", choices=("redirect", "b2bua"))
    serve.add_argument("--trees", help="directory of routing trees")
    serve.add_argument("--data-dir", help="where durable data lives")
    serve.add_argument("--state", help="memory or redis://HOST:PORT/DB")
    serve.add_argument("--portal", help="HTTP listen address HOST:PORT")

    config = sub.add_parser("config", help="configuration files")
    config_sub = config.add_subparsers(dest="action", required=True)
    validate = config_sub.add_parser("validate", help="validate a configuration and its trees")
    validate.add_argument("file")

    tree = sub.add_parser("tree", help="routing trees")
    tree_sub = tree.add_subparsers(dest="action", required=True)
    tv = tree_sub.add_parser("validate", help="validate tree files")
    tv.add_argument("files", nargs="+")
    tv.add_argument("--config", help="also check each tree against its customer")
    te = tree_sub.add_parser("explain", help="which rule a call matches, and why")
    te.add_argument("file")
    te.add_argument("--caller", required=True, help="caller number, or 'anonymous'")
    te.add_argument("--called", required=True, help="called number")
    te.add_argument("--at", required=True, help="ISO 8601 time (naive = the tree's timezone)")
    te.add_argument("--mode", default="normal", choices=("normal", "drs", "continuity"))
    te.add_argument("--json", action="store_true", help="one JSON object")

    cdr = sub.add_parser("cdr", help="call detail records")
    cdr_sub = cdr.add_subparsers(dest="action", required=True)
    ce = cdr_sub.add_parser(
        "export",
        help="export call detail records (one per leg) as CSV or JSONL",
        description="Write the call detail records of the configuration's data_dir to stdout, "
        "one per call leg, ordered by start time. --from and --to select on the leg's start "
        "(--from included, --to excluded). Times are ISO 8601 with an offset or Z; a time "
        "without one is UTC; a date alone is its midnight UTC.",
    )
    ce.add_argument("--config", required=True, help="configuration file (YAML)")
    ce.add_argument("--from", dest="start", metavar="ISO8601",
                    help="first start time included, e.g. 2026-12-01T00:00:00Z (naive = UTC)")
    ce.add_argument("--to", dest="end", metavar="ISO8601",
                    help="start time excluded, e.g. 2027-01-01 (naive = UTC)")
    ce.add_argument("--format", required=True, choices=("csv", "jsonl"),
                    help="csv (a header row, then one row per leg) or jsonl (one object a line)")

    sites = sub.add_parser("sites", help="health of the configured sites, as the engine sees it")
    sites.add_argument("--config", required=True, help="configuration file (YAML)")
    sites.add_argument("--json", action="store_true", help="one JSON object")

    _mode_parsers(sub)
    _acm_parser(sub)

    st = sub.add_parser(
        "stats",
        help="a customer's ACM statistics (queues, operators, staffing)",
        description="ACM statistics of the configuration's data_dir for "
        "[--since, --until): today so far (UTC) by default; naive times are UTC.",
    )
    st.add_argument("--config", required=True, help="configuration file (YAML)")
    st.add_argument("--customer", required=True, help="customer id, as in the configuration")
    st.add_argument("--since", metavar="ISO8601", help="start of the window, included")
    st.add_argument("--until", metavar="ISO8601", help="end of the window, excluded (default now)")
    st.add_argument("--group", action="append", metavar="NAME", help="only this group (repeatable)")
    st.add_argument("--json", action="store_true", help="one JSON object, as the API answers")

    pw = sub.add_parser("passwd", help="read a password on stdin, print its hash for the config")
    pw.add_argument("--drs", action="store_true",
                    help="a DRS password, keyed on a phone: 6 to 16 digits")  # fmt: skip
    pw.add_argument("--digest", nargs=2, metavar=("USER", "CUSTOMER"),
                    help="a softphone's password: print its digest HA1s (realm CUSTOMER), "
                    "to put under the operator's softphone")  # fmt: skip
    return parser


def _mode_parsers(sub: Any) -> None:
    """``vms drs``, ``vms continuity``, ``vms number`` (engine/modes/command.py)."""

    def customer_command(parent: Any, name: str, text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=text, description=text)
        p.add_argument("--customer", required=True, help="customer id, as in the configuration")
        p.add_argument("--config", required=True, help="configuration file (YAML)")
        p.add_argument("--json", action="store_true", help="one JSON object")
        p.set_defaults(days=None, until=None)  # the options of activate and on
        return p

    drs = sub.add_parser("drs", help="a customer's DRS state, shared by every engine")
    drs_sub = drs.add_subparsers(dest="action", required=True)
    customer_command(drs_sub, "status", "print the customer's mode and when it ends")
    activate = customer_command(
        drs_sub, "activate", "switch the customer to DRS: its trees' 'mode: drs' rules apply "
        "in every engine within a second, until drs.max_days (or --days) from now")
    activate.add_argument("--days", type=float, metavar="N",
                          help="end DRS after N days (at most drs.max_days)")
    customer_command(drs_sub, "deactivate", "switch a customer in DRS back to normal")
    audit = drs_sub.add_parser(
        "audit", help="every DRS password attempt and mode change, oldest first")
    audit.add_argument("--config", required=True, help="configuration file (YAML)")
    audit.add_argument("--customer", help="only this customer's entries")
    audit.add_argument("--json", action="store_true", help="one JSON object")

    cont = sub.add_parser("continuity", help="a customer's Voice Continuity, shared by engines")
    cont_sub = cont.add_subparsers(dest="action", required=True)
    on = customer_command(
        cont_sub, "on", "switch the customer to Voice Continuity: its trees' 'mode: continuity' "
        "rules apply in every engine within a second")
    on.add_argument("--until", metavar="ISO8601",
                    help="switch it off by itself then, e.g. 2026-12-01T18:00:00Z (naive = UTC)")
    customer_command(cont_sub, "off", "switch a customer in Voice Continuity back to normal")
    customer_command(cont_sub, "status", "print the customer's mode and when it ends")

    numbers = sub.add_parser("number", help="numbers ported away to another operator")
    numbers_sub = numbers.add_subparsers(dest="action", required=True)
    for action, text in (("port-out", "stop serving a number at once (its calls get 404)"),
                         ("port-in", "serve a number ported away again")):
        p = numbers_sub.add_parser(action, help=text, description=text)
        p.add_argument("number", help="a number of a customer, in any accepted form")
        p.add_argument("--config", required=True, help="configuration file (YAML)")


def _acm_parser(sub: Any) -> None:
    """``vms acm`` (engine/acm/command.py)."""
    acm = sub.add_parser("acm", help="ACM operators' presence, shared by every engine (Redis)")
    acm_sub = acm.add_subparsers(dest="action", required=True)
    for action, text in (
        ("login", "make the operator available in its groups"),
        ("logout", "log the operator out"),
        ("break", "put the operator on break (--reason required)"),
        ("status", "print the operator's state per group (every operator without --operator)"),
    ):
        p = acm_sub.add_parser(action, help=text, description=text)
        p.add_argument("--customer", required=True, help="customer id, as in the configuration")
        p.add_argument("--operator", required=action != "status", metavar="NAME",
                       help="operator name, as in customers.ID.acm.operators")  # fmt: skip
        p.add_argument("--config", required=True, help="configuration file (YAML)")
        p.add_argument("--reason", metavar="TEXT", help="why the operator takes a break")
        p.add_argument("--json", action="store_true", help="JSON (status: a list)")


def _acm(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 1
    from engine.acm.command import run  # noqa: PLC0415 - Twisted only for this command

    return run(config, args.action, args.customer, args.operator, args.reason, args.json,
               sys.stdout, sys.stderr)  # fmt: skip


def _load(path: str) -> Config | None:
    try:
        return load_config(path)
    except SourceError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def _serve(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 1
    changes: dict[str, object] = {}
    try:
        if args.sip:
            changes["listen"] = parse_hostport(args.sip)
        if args.trunk:
            changes["trunk"] = parse_hostport(args.trunk)
        if args.portal:
            changes["portal"] = parse_hostport(args.portal, 8080)
    except ValueError as exc:
        print(f"vms serve: {exc}", file=sys.stderr)
        return 2
    if args.mode:
        changes["mode"] = args.mode
    if args.trees:
        changes["trees"] = Path(args.trees).resolve()
    if args.data_dir:
        changes["data_dir"] = Path(args.data_dir).resolve()
    if args.state:
        try:
            parse_state_url(args.state)
        except ValueError as exc:
            print(f"vms serve: --state: {exc}", file=sys.stderr)
            return 2
        changes["state"] = args.state
    from engine.serve import serve  # noqa: PLC0415 - Twisted only when serving

    return serve(config.with_overrides(**changes))


def _config_validate(args: argparse.Namespace) -> int:
    # Every problem on stderr, in the configuration or in a tree alike (as
    # `vms serve` reports them).
    config = _load(args.file)
    if config is None:
        return 1
    try:
        trees = load_directory(config.trees, config.profiles() or None)
    except SourceError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    print(f"{args.file}: valid ({len(config.customers)} customers, {len(trees.trees)} trees)",
          file=sys.stderr)  # fmt: skip
    return 0


def _tree_validate(args: argparse.Namespace) -> int:
    profiles = None
    if args.config:
        config = _load(args.config)
        if config is None:
            return 1
        profiles = config.profiles()
    return tree_commands.validate(args.files, profiles, sys.stdout, sys.stderr)


def _tree_explain(args: argparse.Namespace) -> int:
    return tree_commands.explain(args.file, args.caller, args.called, args.at, args.mode,
                                 args.json, sys.stdout, sys.stderr)  # fmt: skip


def _cdr_export(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 1
    from engine.cdr.export import run  # noqa: PLC0415 - only this command needs it

    try:
        return run(config.data_dir, args.format, args.start, args.end, sys.stdout, sys.stderr)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as the Python docs advise.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _modes(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 1
    from engine.modes import command  # noqa: PLC0415 - only these commands need it

    out, err = sys.stdout, sys.stderr
    if args.command == "number":
        return command.number(config, args.action, args.number, out, err)
    if args.command == "continuity":
        return command.continuity(config, args.action, args.customer, args.until, args.json,
                                  out, err)  # fmt: skip
    if args.action != "audit":
        return command.drs(config, args.action, args.customer, args.days, args.json, out, err)
    try:
        return command.audit(config, args.customer, args.json, out, err)
    except BrokenPipeError:  # `| head`: stop quietly, as for `vms cdr export`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _passwd(args: argparse.Namespace) -> int:
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("vms passwd: the password is empty; type one on stdin", file=sys.stderr)
        return 1
    if args.drs and not (password.isdigit() and password.isascii() and 6 <= len(password) <= 16):
        print("vms passwd: a DRS password is keyed on a phone: give 6 to 16 digits",
              file=sys.stderr)  # fmt: skip
        return 1
    if args.digest:  # HA1 is password-equivalent in its realm: keep the config as secret
        user, realm = args.digest
        print(f"ha1: {ha1(user, realm, password)}\n"
              f"ha1_sha256: {ha1(user, realm, password, 'SHA-256')}")  # fmt: skip
        return 0
    print(hash_password(password))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "config":
        return _config_validate(args)
    if args.command == "tree":
        return _tree_validate(args) if args.action == "validate" else _tree_explain(args)
    if args.command == "cdr":
        return _cdr_export(args)
    if args.command == "sites":
        from engine.sites.command import run as sites  # noqa: PLC0415 - only this command

        return sites(args.config, args.json, sys.stdout, sys.stderr)
    if args.command in ("drs", "continuity", "number"):
        return _modes(args)
    if args.command == "acm":
        return _acm(args)
    if args.command == "stats":
        config = _load(args.config)
        if config is None:
            return 1
        from engine.acm.stats_command import run as stats  # noqa: PLC0415 - only this command

        return stats(config, args.customer, args.since, args.until, args.group, args.json,
                     sys.stdout, sys.stderr)  # fmt: skip
    return _passwd(args)


if __name__ == "__main__":
    sys.exit(main())
