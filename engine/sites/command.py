"""``vms sites --config FILE [--json]``: the health of every configured site.

What the running engine sees, read from ``DATA_DIR/sites.json`` (written by
``engine/sites/prober.py``): one line per site of the configuration, with
its address, state, since when, the last probe's result, the consecutive
failures and successes, and the numbers behind it. A site the file does not
know yet is ``unknown``, with the reason. When the file is older than a few
probe intervals, a warning on stderr says the states may be stale (no
engine probing now).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, TextIO

from engine.config import Config, load_config
from engine.sites.health import UNKNOWN, iso
from engine.sites.prober import FILE_NAME
from routing_trees.source import SourceError

__all__ = ["rows", "run"]


def run(config_path: str, as_json: bool, out: TextIO, err: TextIO) -> int:
    """Print the sites' health; 1 for a bad configuration or an unreadable sites.json."""
    try:
        config = load_config(config_path)
    except SourceError as exc:
        for problem in exc.problems:
            print(problem, file=err)
        return 1
    path = config.data_dir / FILE_NAME
    try:
        document = _read(path)
    except ValueError as exc:
        print(f"vms sites: {path} {exc}; it is rewritten by the engine at its next probe, "
              "or remove it", file=err)  # fmt: skip
        return 1
    table = rows(config, document, path.parent)
    if as_json:
        written = None if document is None else document.get("written")
        json.dump({"data_dir": str(path.parent), "written": written, "sites": table}, out,
                  indent=2)  # fmt: skip
        out.write("\n")
    elif not table:
        print(f"vms sites: {config_path} configures no sites; add a 'sites:' section to it "
              "to have the engine probe them", file=err)  # fmt: skip
    else:
        for line in _lines(table):
            print(line, file=out)
    if document is not None and table:
        _warn_if_stale(config, document, path, err)
    return 0


def _read(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"cannot be read ({exc.strerror})") from None
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError("is not valid JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("sites"), dict):
        raise ValueError("is not a sites table (no 'sites' object)")
    return document


def rows(config: Config, document: dict[str, Any] | None, data_dir: Path) -> list[dict[str, Any]]:
    """One dict per configured site: the configuration, and what the engine saw of it."""
    out = []
    for name, site in config.sites.items():
        host, port = config.site_address(site)
        row: dict[str, Any] = {
            "name": name,
            "address": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
            "transport": site.transport,
            "state": UNKNOWN,
            "since": None,
            "last_result": None,
            "last_probe": None,
            "failures": 0,
            "successes": 0,
            "numbers": list(site.numbers),
            "note": None,
        }
        seen = None if document is None else document["sites"].get(name)
        if document is None:
            row["note"] = f"no engine has written {FILE_NAME} under {data_dir}"
        elif not isinstance(seen, dict):
            row["note"] = "the engine that wrote sites.json does not probe this site"
        else:
            for key in ("state", "since", "last_result", "last_probe", "failures", "successes"):
                if key in seen:
                    row[key] = seen[key]
        out.append(row)
    return out


def _lines(table: list[dict[str, Any]]) -> list[str]:
    name_w = max(len(r["name"]) for r in table)
    where = [f"{r['address']} {r['transport']}" for r in table]
    where_w = max(len(w) for w in where)
    state_w = max(len(str(r["state"])) for r in table)
    lines = []
    for row, place in zip(table, where, strict=True):
        numbers = ", ".join(row["numbers"]) or "none"
        head = f"{row['name']:<{name_w}}  {place:<{where_w}}  "
        if row["note"] is not None:
            lines.append(f"{head}{row['state']} ({row['note']})  numbers {numbers}")
            continue
        last = "no probe yet" if row["last_result"] is None else \
            f"last {row['last_result']} at {row['last_probe']}"  # fmt: skip
        lines.append(f"{head}{row['state']:<{state_w}}  since {row['since']}  {last}  "
                     f"{row['failures']} failed, {row['successes']} ok in a row  "
                     f"numbers {numbers}")  # fmt: skip
    return lines


def _warn_if_stale(config: Config, document: dict[str, Any], path: Path, err: TextIO) -> None:
    written = document.get("written_at")
    if not isinstance(written, int | float):
        return
    slowest = max(s.interval + s.timeout for s in config.sites.values())
    age = time.time() - written
    if age > 3 * slowest + 5:
        print(f"vms sites: {path} was last written at {iso(written)} ({age:.0f} s ago); "
              "no engine may be probing now, so these are the last states it saw", file=err)
