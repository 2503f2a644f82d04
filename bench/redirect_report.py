"""The redirect benchmark's figures: one JSON-ready summary, and the text printed from it.

The printed tables are rendered from the same summary that is saved as
bench/out/redirect.json, so the two never disagree. Targets are judged here
and only printed (PASS, MISS, or n/a when the run did not measure them):
a benchmark that asserts hides every figure after the first miss.
"""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from common import percentile, table

if TYPE_CHECKING:
    from redirect import Options, ServerResult, Step
    from sipp import Sipp
    from tree_micro import TreeEval

__all__ = ["headlines", "progress_line", "render", "summarise"]

KAMAILIO_REFERENCE_US = 41.0  # the issue: Kamailio 5.6, about 41 µs per redirected call at 2,000/s
CPU_RATIO_TARGET = 3.0
CLEAN_RATE_TARGET = 2000
P99_RATE = 1000
P99_TARGET_MS = 5.0
TREE_TARGET_US = 10.0
SIPP_BUSY = 90.0  # % of its core: above this SIPp itself may be the bottleneck
OTHER_BUSY = 10.0  # % of a core used by other processes: above this figures are suspect


def progress_line(name: str, step: Step) -> str:
    rtts = step.sipp.rtts_ms
    p50, p99 = percentile(rtts, 0.50), percentile(rtts, 0.99)
    cpu = step.cpu_us_per_call
    line = (
        f"{name:<8} {step.rate:>5}/s: {step.sipp.successful} ok, {step.failed} failed, "
        f"p50 {_ms(p50)} ms, p99 {_ms(p99)} ms, {_num(cpu, 1)} µs/call, "
        f"{step.cpu_share:.0f}% of a core (SIPp {step.sipp_share:.0f}%)"
    )
    if step.other_busy_share >= OTHER_BUSY:
        line += f" [other processes: {step.other_busy_share:.0f}% of a core]"
    return line


def _step_summary(step: Step) -> dict[str, Any]:
    rtts = step.sipp.rtts_ms
    run = step.sipp
    return {
        "rate": step.rate,
        "offered_rate": None if run.achieved_rate is None else round(run.achieved_rate, 1),
        "planned": run.planned,
        "created": run.created,
        "successful": run.successful,
        "failed": step.failed,
        "failed_by_sipp": run.failed,
        "unfinished": run.unfinished,
        "not_started": run.not_started,
        "failures": run.failures,
        "sipp_errors": run.errors,
        "retransmissions": run.retransmissions,
        "out_of_call_messages": run.out_of_call,
        "rtt_samples": len(rtts),
        "p50_ms": _round(percentile(rtts, 0.50), 3),
        "p99_ms": _round(percentile(rtts, 0.99), 3),
        "max_ms": _round(rtts[-1] if rtts else None, 3),
        "mean_ms": _round(sum(rtts) / len(rtts) if rtts else None, 3),
        "cpu_us_per_call": _round(step.cpu_us_per_call, 1),
        "server_cpu_s": round(step.server_cpu_s, 2),
        "cpu_share_pct": round(step.cpu_share, 1),
        "sipp_cpu_share_pct": round(step.sipp_share, 1),
        "other_busy_pct": round(step.other_busy_share, 1),
        "other_busiest": [{"process": name, "pct": round(pct, 1)} for name, pct in step.other_top],
        "udp": step.udp,
        "sipp_seconds": round(run.wall, 2),
        "clean": step.clean,
        "offered": step.offered,
    }


def _highest_clean(result: ServerResult) -> int | None:
    rates = [s.rate for s in result.steps if s.clean and s.offered]
    return max(rates) if rates else None


def summarise(
    opts: Options, sipp: Sipp, results: list[ServerResult], tree: TreeEval | None
) -> dict[str, Any]:
    by_name = {r.name: r for r in results}
    servers = {
        r.name: {
            "description": r.description,
            "idle_cpu_us_per_s": _round(r.idle_cpu_us_per_s, 0),
            "error": r.error,
            "highest_clean_rate": _highest_clean(r),
            "steps": [_step_summary(s) for s in r.steps],
        }
        for r in results
    }
    comparison = []
    engine, kamailio = by_name.get("engine"), by_name.get("kamailio")
    if engine and kamailio:
        for rate in opts.rates:
            e, k = engine.step(rate), kamailio.step(rate)
            if e is None or k is None:
                continue
            ratio = (
                e.cpu_us_per_call / k.cpu_us_per_call
                if e.cpu_us_per_call and k.cpu_us_per_call
                else None
            )
            comparison.append(
                {
                    "rate": rate,
                    "engine_cpu_us_per_call": _round(e.cpu_us_per_call, 1),
                    "kamailio_cpu_us_per_call": _round(k.cpu_us_per_call, 1),
                    "ratio": _round(ratio, 2),
                    "engine_failed": e.failed,
                    "kamailio_failed": k.failed,
                    "engine_p99_ms": _round(percentile(e.sipp.rtts_ms, 0.99), 3),
                    "kamailio_p99_ms": _round(percentile(k.sipp.rtts_ms, 0.99), 3),
                }
            )
    tree_summary = None
    if tree is not None:
        tree_summary = {
            "rules": tree.rules,
            "cases": tree.cases,
            "worst_median_us": tree.worst_median_us,
        }
    summary: dict[str, Any] = {
        "benchmark": "redirect",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": {
            "rates": list(opts.rates),
            "seconds": opts.seconds,
            "settle": opts.settle,
            "kamailio_mem": opts.kamailio_mem,
            "kamailio_children": opts.kamailio_children,
        },
        "environment": {
            "kernel": platform.release(),
            "cores": os.cpu_count(),
            "runner_python": platform.python_version(),
            "sipp_clock_resolution_ms": sipp.resolution_ms,
            "sipp_clock": (
                "CLOCK_MONOTONIC (LD_PRELOAD shim)"
                if sipp.shim
                else "CLOCK_MONOTONIC_COARSE (SIPp's own)"
            ),
            "sipp_clock_note": sipp.clock_note,
            "response_time_from": "INVITE sent" if sipp.send_time_rtd else "call created",
        },
        "servers": servers,
        "comparison": comparison,
        "tree_eval": tree_summary,
    }
    summary["targets"] = _targets(summary, engine, tree)
    summary["notes"] = _notes(summary, results)
    return summary


def _target(name: str, status: str, detail: str) -> dict[str, str]:
    return {"target": name, "status": status, "detail": detail}


def _targets(
    summary: dict[str, Any], engine: ServerResult | None, tree: TreeEval | None
) -> list[dict[str, str]]:
    out = []
    name = f"engine CPU per call at most {CPU_RATIO_TARGET:g}× Kamailio's"
    rows = [c for c in summary["comparison"] if c["ratio"] is not None]
    row = next((c for c in rows if c["rate"] == CLEAN_RATE_TARGET), rows[-1] if rows else None)
    if row is None:
        out.append(_target(name, "n/a", "needs both servers measured at a common rate"))
    else:
        status = "PASS" if row["ratio"] <= CPU_RATIO_TARGET else "MISS"
        out.append(
            _target(
                name,
                status,
                f"at {row['rate']}/s: engine {row['engine_cpu_us_per_call']:.1f} µs, Kamailio "
                f"{row['kamailio_cpu_us_per_call']:.1f} µs, ratio {_ratio(row['ratio'])}",
            )
        )

    name = f"zero failed calls at {CLEAN_RATE_TARGET} calls/s on one core"
    step = engine.step(CLEAN_RATE_TARGET) if engine else None
    if step is None:
        out.append(_target(name, "n/a", f"the engine was not measured at {CLEAN_RATE_TARGET}/s"))
    elif step.failed:
        out.append(
            _target(
                name,
                "MISS",
                f"{step.failed} of {step.sipp.planned} calls failed{_failure_kinds(step)}",
            )
        )
    elif not step.offered:
        out.append(
            _target(
                name,
                "n/a",
                f"no failures, but SIPp offered only {_num(step.sipp.achieved_rate, 0)}/s",
            )
        )
    else:
        out.append(_target(name, "PASS", f"{step.sipp.successful} calls, none failed"))

    name = f"p99 response time below {P99_TARGET_MS:g} ms at {P99_RATE} calls/s"
    step = engine.step(P99_RATE) if engine else None
    p99 = percentile(step.sipp.rtts_ms, 0.99) if step else None
    if step is None or p99 is None:
        out.append(_target(name, "n/a", f"the engine has no response times at {P99_RATE}/s"))
    else:
        status = "PASS" if p99 < P99_TARGET_MS and not step.failed else "MISS"
        extra = f", {step.failed} failed" if step.failed else ""
        out.append(
            _target(name, status, f"p99 {p99:.2f} ms over {len(step.sipp.rtts_ms)} calls{extra}")
        )

    name = f"tree evaluation below {TREE_TARGET_US:g} µs median (200-rule tree)"
    worst = tree.worst_median_us if tree else None
    if tree is None or worst is None:
        out.append(_target(name, "n/a", "bench/tree_eval.py did not run"))
    else:
        slowest = max(tree.cases, key=lambda c: float(tree.cases[c]["median_us"]))
        status = "PASS" if worst < TREE_TARGET_US and tree.rules == 200 else "MISS"
        out.append(
            _target(
                name, status, f"slowest case '{slowest}' {worst:.2f} µs median, {tree.rules} rules"
            )
        )
    return out


def _failure_kinds(step: Step) -> str:
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(step.sipp.failures.items()))
    parts = [
        p
        for p in (kinds, f"unfinished {step.sipp.unfinished}" if step.sipp.unfinished else "")
        if p
    ]
    return f" ({'; '.join(parts)})" if parts else ""


def _notes(summary: dict[str, Any], results: list[ServerResult]) -> list[str]:
    env = summary["environment"]
    notes = []
    if env["sipp_clock_resolution_ms"] >= 1:
        notes.append(
            f"response times have {env['sipp_clock_resolution_ms']:g} ms steps (SIPp "
            f"reads CLOCK_MONOTONIC_COARSE and {env['sipp_clock_note']}): "
            "p50/p99 are only that precise"
        )
    if env["response_time_from"] != "INVITE sent":
        notes.append(
            "response times start when SIPp allocates a call, up to 1 ms before its INVITE leaves"
        )
    kamailio = next((r for r in results if r.name == "kamailio"), None)
    k2000 = kamailio.step(CLEAN_RATE_TARGET) if kamailio else None
    if k2000 is not None and k2000.cpu_us_per_call:
        notes.append(
            f"Kamailio at {CLEAN_RATE_TARGET}/s: {k2000.cpu_us_per_call:.1f} µs per "
            f"call here; the issue quotes about {KAMAILIO_REFERENCE_US:g} µs for "
            "this machine class"
        )
    for result in results:
        if result.idle_cpu_us_per_s is not None:
            notes.append(
                f"{result.name} idle: {result.idle_cpu_us_per_s:.0f} µs of CPU per "
                "second (included in its figures)"
            )
        for step in result.steps:
            where = f"{result.name} at {step.rate}/s"
            if step.failed:
                errors = "; ".join(f"{n}× {kind}" for kind, n in list(step.sipp.errors.items())[:3])
                notes.append(
                    f"{where}: {step.failed} failed{_failure_kinds(step)}"
                    + (f"; SIPp's error log: {errors}" if errors else "")
                )
            if not step.offered:
                notes.append(
                    f"{where}: SIPp offered {_num(step.sipp.achieved_rate, 0)}/s and "
                    f"left {step.sipp.not_started} calls unstarted: the load generator, "
                    "not the server, set the pace"
                )
            if step.sipp_share >= SIPP_BUSY:
                notes.append(
                    f"{where}: SIPp used {step.sipp_share:.0f}% of its core; it may be "
                    "the bottleneck, and its queueing is in the response times"
                )
            if step.other_busy_share >= OTHER_BUSY:
                notes.append(
                    f"{where}: other processes kept {step.other_busy_share:.0f}% of a "
                    "core busy meanwhile; these figures are disturbed (busiest: "
                    + "; ".join(f"{name} {pct:.0f}%" for name, pct in step.other_top)
                    + ")"
                )
            drops = step.udp.get("InErrors", 0) + step.udp.get("SndbufErrors", 0)
            if drops:
                notes.append(
                    f"{where}: the kernel counted UDP InErrors "
                    f"{step.udp.get('InErrors', 0)} (RcvbufErrors "
                    f"{step.udp.get('RcvbufErrors', 0)}), SndbufErrors "
                    f"{step.udp.get('SndbufErrors', 0)} (system-wide counters)"
                )
    return notes


def render(summary: dict[str, Any]) -> str:
    """The plain-text report of a summary."""
    env = summary["environment"]
    out = [
        f"Redirect mode, {summary['options']['seconds']:g} s per rate; servers pinned to "
        "core 0, SIPp to core 1; response time = INVITE to 302 as SIPp sees it "
        f"({env['sipp_clock']}, from {env['response_time_from']})"
    ]
    headers = [
        "rate/s",
        "offered/s",
        "ok",
        "failed",
        "retrans",
        "p50 ms",
        "p99 ms",
        "max ms",
        "CPU µs/call",
        "CPU %core",
        "SIPp %core",
        "other %core",
        "UDP InErr",
        "RcvbufErr",
    ]
    for name, server in summary["servers"].items():
        out += ["", f"{name}: {server['description']}"]
        rows = [
            [
                str(s["rate"]),
                _num(s["offered_rate"], 0),
                str(s["successful"]),
                str(s["failed"]),
                str(s["retransmissions"]),
                _ms(s["p50_ms"]),
                _ms(s["p99_ms"]),
                _ms(s["max_ms"]),
                _num(s["cpu_us_per_call"], 1),
                _num(s["cpu_share_pct"], 0),
                _num(s["sipp_cpu_share_pct"], 0),
                _num(s["other_busy_pct"], 0),
                str(s["udp"].get("InErrors", 0)),
                str(s["udp"].get("RcvbufErrors", 0)),
            ]
            for s in server["steps"]
        ]
        out.append(table(headers, rows) if rows else "(no step measured)")
        if server["error"]:
            out.append(f"could not finish: {server['error']}")
    if summary["comparison"]:
        out += ["", "engine / Kamailio, side by side"]
        rows = [
            [
                str(c["rate"]),
                _num(c["engine_cpu_us_per_call"], 1),
                _num(c["kamailio_cpu_us_per_call"], 1),
                _ratio(c["ratio"]),
                str(c["engine_failed"]),
                str(c["kamailio_failed"]),
                _ms(c["engine_p99_ms"]),
                _ms(c["kamailio_p99_ms"]),
            ]
            for c in summary["comparison"]
        ]
        out.append(
            table(
                [
                    "rate/s",
                    "engine µs/call",
                    "Kamailio µs/call",
                    "ratio",
                    "engine failed",
                    "Kamailio failed",
                    "engine p99 ms",
                    "Kamailio p99 ms",
                ],
                rows,
            )
        )
    out.append("")
    for name, server in summary["servers"].items():
        best = server["highest_clean_rate"]
        out.append(
            f"highest rate with zero failed calls, {name}: "
            + (f"{best} calls/s" if best else "none of the rates measured")
        )
    tree = summary["tree_eval"]
    if tree:
        cases = ", ".join(f"{case} {c['median_us']:.2f}" for case, c in tree["cases"].items())
        out.append(
            f"tree evaluation, {tree['rules']}-rule tree (bench/tree_eval.py), median µs: {cases}"
        )
    out += ["", "targets"]
    out += [f"  {t['status']:<4}  {t['target']}: {t['detail']}" for t in summary["targets"]]
    if summary["notes"]:
        out += ["", "notes"]
        out += [f"  - {note}" for note in summary["notes"]]
    return "\n".join(out)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}×"


def headlines(summary: dict[str, Any]) -> list[str]:
    """The lines of the run's closing summary: the ratio per rate, clean rates, targets."""
    out = []
    rows = summary.get("comparison") or []
    if rows:
        out.append(
            "CPU µs/call engine / Kamailio: "
            + ", ".join(
                f"{c['rate']}/s {_num(c['engine_cpu_us_per_call'], 0)} / "
                f"{_num(c['kamailio_cpu_us_per_call'], 0)} ({_ratio(c['ratio'])})"
                for c in rows
            )
        )
    for name, server in (summary.get("servers") or {}).items():
        best = server["highest_clean_rate"]
        out.append(
            f"highest rate with zero failed calls, {name}: "
            + (f"{best} calls/s" if best else "none")
        )
    out += [f"{t['status']:<4}  {t['target']}: {t['detail']}" for t in summary.get("targets", [])]
    return out
