"""The micro-benchmarks in ``make bench``: each script run as it is, its printed figures read back.

bench/tree_eval.py, floods.py, cdr_write.py and state_acquire.py stay plain
scripts that print figures (their docstrings say what each measures); this
runs each as its own process, so its timings are not disturbed by the
runner, keeps its output for the report and parses the lines that carry
its headline figures into the JSON summary (bench/out/micro.json):

- tree_eval.py, floods.py and cdr_write.py run pinned to core 0, the core
  the servers run on in the SIPp benchmarks: their figures are per call on
  the engine's one core.
- state_acquire.py is not pinned: it starts a redis-server and, for its
  last case, two client processes; on one core it would measure the
  scheduler's turns rather than the round trips. It needs redis-server
  (the Makefile's DEBIAN_BENCH installs it); without it the Redis cases
  cannot run, which counts as something that could not run.

With ``--quick``, cdr_write.py runs 3 s per case instead of 10 and
state_acquire.py 5,000 pairs per client instead of 20,000. The tree
evaluation the redirect benchmark already ran in the same invocation is
reused, not run again. Nothing is judged here but the tree-evaluation
target (as in the redirect report): the other scripts have no target.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tree_micro
from common import BenchError, summary_head
from redirect_report import TREE_TARGET_US

__all__ = ["PARTS", "Options", "headlines", "render", "run"]

PARTS = ("tree_eval", "floods", "cdr_write", "state_acquire")
CPU = 0


@dataclass(frozen=True)
class Options:
    parts: tuple[str, ...] = PARTS
    quick: bool = False
    #: The redirect benchmark's tree_eval summary from this invocation, to reuse.
    tree_eval: dict[str, Any] | None = None


def _script(bench: Path, name: str, args: list[str], pinned: bool, timeout: float = 900) -> str:
    """Run bench/NAME.py; its standard output, or BenchError with its last error line."""
    argv = [sys.executable, str(bench / f"{name}.py"), *args]
    if pinned:
        argv = ["taskset", "-c", str(CPU), *argv]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"bench/{name}.py did not finish in {timeout:.0f} s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"bench/{name}.py failed (exit status {done.returncode}): {last}")
    return done.stdout


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _figures(match: re.Match[str], *but: str) -> dict[str, float]:
    """Every named group of ``match`` but ``but``, as numbers: the groups bear their JSON keys."""
    return {name: _number(text) for name, text in match.groupdict().items() if name not in but}


# -- floods.py -----------------------------------------------------------------------------

_FLOODS = {
    "admit_admitted_us": r"^FloodGuard\.admit, admitted .*?:\s+([\d.]+) µs",
    "admit_refused_us": r"^FloodGuard\.admit, refused .*?:\s+([\d.]+) µs",
    "admit_distinct_sources_us": r"^FloodGuard\.admit, [\d,]+ distinct sources:\s+([\d.]+) µs",
    "bucket_bytes": r"^memory per source bucket .*?:\s+([\d.]+) bytes",
    "down_site_for_all_up_ns": r"^SiteTable\.down_site_for, every site up:\s+([\d.]+) ns",
    "down_site_for_some_down_ns": r"^SiteTable\.down_site_for, trunk and .*?:\s+([\d.]+) ns",
}


def floods(bench: Path, quick: bool) -> dict[str, Any]:
    output = _script(bench, "floods", [], pinned=True)
    figures = {
        key: _number(m[1])
        for key, pattern in _FLOODS.items()
        if (m := re.search(pattern, output, re.MULTILINE))
    }
    if not figures:
        raise BenchError("bench/floods.py ran but printed no figure this runner can read")
    return {"figures": figures, "output": output}


# -- cdr_write.py --------------------------------------------------------------------------

_SUSTAINED = re.compile(
    r"^sustained: (?P<legs_per_s>[\d,]+) legs/s .*?\((?P<calls_per_s>[\d,]+) calls/s of 2 "
    r"legs\).*?\((?P<rows_per_commit>[\d,]+) rows per commit, commit max "
    r"(?P<commit_max_ms>[\d.]+) ms\)",
    re.MULTILINE,
)
_PACED = re.compile(
    r"^\s*(?P<rate>\d+) calls/s .*?leg_\* call p50 (?P<leg_call_p50_us>[\d.]+) µs, p99 "
    r"(?P<leg_call_p99_us>[\d.]+) µs, max (?P<leg_call_max_us>[\d.]+) µs .*?commit p50 "
    r"(?P<commit_p50_ms>[\d.]+) ms, p99 (?P<commit_p99_ms>[\d.]+) ms, max "
    r"(?P<commit_max_ms>[\d.]+) ms \((?P<commits>[\d,]+) commits, (?P<rows_per_commit>[\d,]+) "
    r"rows each\)",
    re.MULTILINE,
)


def cdr_write(bench: Path, quick: bool) -> dict[str, Any]:
    seconds = 3 if quick else 10
    output = _script(bench, "cdr_write", ["--seconds", str(seconds)], pinned=True)
    out: dict[str, Any] = {"seconds": seconds, "sustained": None, "paced": {}, "output": output}
    if m := _SUSTAINED.search(output):
        out["sustained"] = _figures(m)
    for m in _PACED.finditer(output):
        out["paced"][m["rate"]] = _figures(m, "rate")
    if out["sustained"] is None and not out["paced"]:
        raise BenchError("bench/cdr_write.py ran but printed no figure this runner can read")
    return out


# -- state_acquire.py ----------------------------------------------------------------------

_PAIRS = re.compile(
    r"^(?P<label>\S.*?)\s+p50\s+(?P<p50_us>[\d.]+) µs\s+p99\s+(?P<p99_us>[\d.]+) µs\s+"
    r"(?P<pairs_per_s>[\d.]+) pairs/s\s+\((?P<pairs>\d+) pairs\)",
    re.MULTILINE,
)
_REDIS_TIME = re.compile(r"^redis-server time per command \(µs\): (?P<rest>.*)$", re.MULTILINE)


def state_acquire(bench: Path, quick: bool) -> dict[str, Any]:
    pairs = 5000 if quick else 20000
    output = _script(bench, "state_acquire", ["--pairs", str(pairs)], pinned=False)
    cases = {
        m["label"].strip(): {
            **_figures(m, "label", "pairs"),
            "pairs": int(m["pairs"]),
        }
        for m in _PAIRS.finditer(output)
    }
    server: dict[str, float] = {}
    if m := _REDIS_TIME.search(output):
        for part in m["rest"].split(","):
            name, _, value = part.strip().partition(" ")
            if value:
                server[name] = _number(value)
    out = {"pairs_per_client": pairs, "cases": cases, "redis_us_per_command": server}
    out["output"] = output
    if not cases:
        raise BenchError("bench/state_acquire.py ran but printed no figure this runner can read")
    if not any(label.startswith("redis") for label in cases):
        out["error"] = (
            "bench/state_acquire.py could not run its Redis cases: redis-server is not "
            "installed (Debian package redis-server; make bench installs it as root)"
        )
    return out


# -- tree_eval.py --------------------------------------------------------------------------


def tree_eval(bench: Path, quick: bool, reuse: dict[str, Any] | None) -> dict[str, Any]:
    if reuse is not None:
        return {**reuse, "from": "the redirect benchmark's run of bench/tree_eval.py"}
    tree = tree_micro.run(bench, CPU)
    return {
        "rules": tree.rules,
        "cases": tree.cases,
        "worst_median_us": tree.worst_median_us,
        "output": tree.output,
    }


def run(
    opts: Options, root: Path, say: Callable[[str], None] = print
) -> tuple[dict[str, Any], list[str]]:
    bench = root / "bench"
    errors: list[str] = []
    summary = summary_head("micro", {"parts": list(opts.parts), "quick": opts.quick})
    say(f"\nmicro-benchmarks: {', '.join(opts.parts)}")
    for part in opts.parts:
        say(f"running bench/{part}.py ...")
        try:
            if part == "tree_eval":
                result = tree_eval(bench, opts.quick, opts.tree_eval)
            elif part == "floods":
                result = floods(bench, opts.quick)
            elif part == "cdr_write":
                result = cdr_write(bench, opts.quick)
            else:
                result = state_acquire(bench, opts.quick)
        except BenchError as exc:
            errors.append(str(exc))
            summary[part] = {"error": str(exc)}
            continue
        if result.get("error"):
            errors.append(result["error"])
        summary[part] = result
    summary["targets"] = _targets(summary)
    say("")
    say(render(summary))
    return summary, errors


def _targets(summary: dict[str, Any]) -> list[dict[str, str]]:
    tree = summary.get("tree_eval")
    if not tree:
        return []
    name = f"tree evaluation below {TREE_TARGET_US:g} µs median (200-rule tree)"
    worst = tree.get("worst_median_us")
    if worst is None:
        return [{"target": name, "status": "n/a", "detail": tree.get("error", "did not run")}]
    status = "PASS" if worst < TREE_TARGET_US and tree.get("rules") == 200 else "MISS"
    return [
        {
            "target": name,
            "status": status,
            "detail": f"slowest case {worst:.2f} µs median, {tree.get('rules')} rules",
        }
    ]


def render(summary: dict[str, Any]) -> str:
    """Each script's own output, as it printed it, then the headline figures."""
    out = ["Micro-benchmarks (each script's own output)"]
    for part in PARTS:
        result = summary.get(part)
        if result is None:
            continue
        note = f" ({result['from']})" if result.get("from") else ""
        out += ["", f"bench/{part}.py{note}:"]
        if result.get("output"):
            out += [f"  {line}" for line in result["output"].rstrip().splitlines()]
        elif result.get("cases") and part == "tree_eval":
            out += [
                f"  {case}: median {c['median_us']:.2f} µs, p99 {c['p99_us']:.2f} µs"
                for case, c in result["cases"].items()
            ]
        if result.get("error"):
            out.append(f"  could not run: {result['error']}")
    out += ["", "headline figures"]
    out += [f"  {line}" for line in headlines(summary)]
    return "\n".join(out)


def headlines(summary: dict[str, Any]) -> list[str]:
    """One line per micro-benchmark that ran, for the reports and the run's closing summary."""
    out = []
    tree = summary.get("tree_eval") or {}
    if tree.get("cases"):
        cases = ", ".join(f"{case} {c['median_us']:.2f}" for case, c in tree["cases"].items())
        out.append(f"tree evaluation, {tree.get('rules')}-rule tree, median µs: {cases}")
    floods_ = (summary.get("floods") or {}).get("figures") or {}
    if floods_:
        out.append(
            "flood guard per call: admitted "
            f"{floods_.get('admit_admitted_us', float('nan')):.2f} µs, refused "
            f"{floods_.get('admit_refused_us', float('nan')):.2f} µs, new source each call "
            f"{floods_.get('admit_distinct_sources_us', float('nan')):.2f} µs, "
            f"{floods_.get('bucket_bytes', float('nan')):.0f} bytes per bucket; "
            f"down-site lookup {floods_.get('down_site_for_all_up_ns', float('nan')):.0f} ns "
            f"(all up), {floods_.get('down_site_for_some_down_ns', float('nan')):.0f} ns "
            "(trunk and half the sites down)"
        )
    cdr = summary.get("cdr_write") or {}
    if cdr.get("sustained") or cdr.get("paced"):
        parts = []
        if cdr.get("sustained"):
            s = cdr["sustained"]
            parts.append(f"sustained {s['calls_per_s']:,.0f} calls/s of 2 legs on one core")
        for rate, p in cdr.get("paced", {}).items():
            parts.append(
                f"at {rate} calls/s commit p50 {p['commit_p50_ms']:.2f} ms, p99 "
                f"{p['commit_p99_ms']:.2f} ms, leg_* call p99 {p['leg_call_p99_us']:.1f} µs"
            )
        out.append("call records (SQLite): " + "; ".join(parts))
    state = summary.get("state_acquire") or {}
    if state.get("cases"):
        shown = ", ".join(
            f"{label} p50 {c['p50_us']:.1f} µs / p99 {c['p99_us']:.1f} µs"
            for label, c in state["cases"].items()
            if label
            in ("memory, one caller", "redis, one client", "redis, two clients in one process")
        )
        server = state.get("redis_us_per_command") or {}
        extra = (
            "; redis-server per command: " + ", ".join(f"{k} {v:.1f} µs" for k, v in server.items())
            if server
            else ""
        )
        out.append(f"call slot acquire+release: {shown}{extra}")
    for part in PARTS:
        error = (summary.get(part) or {}).get("error")
        if error:
            out.append(f"{part}: could not run: {error}")
    out += [f"{t['status']:<4}  {t['target']}: {t['detail']}" for t in summary.get("targets", [])]
    return out
