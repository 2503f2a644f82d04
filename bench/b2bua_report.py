"""The B2BUA benchmark's figures: one JSON-ready summary, and the text printed from it.

As for redirect mode (redirect_report.py): the printed tables are rendered
from the summary saved as bench/out/b2bua.json, and targets are judged and
printed (PASS, MISS, or n/a when the run did not measure them), never
asserted.
"""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from common import percentile, table
from redirect_report import (
    OTHER_BUSY,
    SIPP_BUSY,
    _ms,
    _num,
    _ratio,
    _round,
    _step_summary,
    headlines,
)

if TYPE_CHECKING:
    from b2bua import B2buaResult, B2buaStep, Options
    from sipp import Sipp

__all__ = ["headlines", "progress_line", "render", "summarise"]

KAMAILIO_REFERENCE_US = 600.0  # the issue: Kamailio, about 600 µs per call at 500 calls/s
KAMAILIO_REFERENCE_RATE = 500
KAMAILIO_REFERENCE_CLEAN = 1000  # ... and clean up to about 1,000 calls/s
CPU_RATIO_TARGET = 2.0
CPU_RATIO_RATE = 500  # where the issue quotes Kamailio's figure
CPU_RATIO_ALSO = 300
CLEAN_RATE_TARGET = 300
SPEED_CHANGE = 0.10  # a core speed that moved by this much between steps is noted


def progress_line(name: str, step: B2buaStep) -> str:
    rtts = step.sipp.rtts_ms
    p50, p99 = percentile(rtts, 0.50), percentile(rtts, 0.99)
    cpu = step.cpu_us_per_call
    line = (
        f"{name:<8} {step.rate:>5}/s: {step.sipp.successful} ok, {step.failed} failed, "
        f"setup p50 {_ms(p50)} ms p99 {_ms(p99)} ms, {_num(cpu, 0)} µs CPU/call, "
        f"{step.cpu_share:.0f}% of a core (SIPp caller {step.sipp_share:.0f}% + callee "
        f"{step.uas_share:.0f}%)"
    )
    if step.other_busy_share >= OTHER_BUSY:
        line += f" [other processes: {step.other_busy_share:.0f}% of a core]"
    return line


def _b2bua_step_summary(step: B2buaStep) -> dict[str, Any]:
    out = _step_summary(step)
    uas = step.uas
    out.update(
        {
            "offered_rate": _round(step.offered_rate, 1),
            "answered_rate": _round(step.sipp.achieved_rate, 1),
            "retransmissions_caller": step.sipp.retransmissions,
            "retransmissions": step.retransmissions,
            "callee": None
            if uas is None
            else {
                "calls": uas.created,
                "successful": uas.successful,
                "failed": uas.failed,
                "failures": uas.failures,
                "retransmissions": uas.retransmissions,
                "sipp_errors": uas.errors,
                "cpu_s": round(uas.cpu_seconds, 2),
                "exit_status": uas.exit_status,
            },
            "cpu_us_per_call_less_idle": _round(step.cpu_us_per_call_less_idle, 1),
            "window_s": round(step.window_s, 1),
            "core_speed_mips": _round(step.core_speed, 1),
            "sipp_callee_cpu_share_pct": round(step.uas_share, 1),
            "sipp_both_cpu_share_pct": round(step.sipp_total_share, 1),
        }
    )
    return out


def _highest_clean(result: B2buaResult) -> int | None:
    rates = [s.rate for s in result.b2bua_steps() if s.clean and s.offered]
    return max(rates) if rates else None


def summarise(opts: Options, sipp: Sipp, results: list[B2buaResult]) -> dict[str, Any]:
    by_name = {r.name: r for r in results}
    servers = {
        r.name: {
            "description": r.description,
            "idle_cpu_us_per_s": _round(r.idle_cpu_us_per_s, 0),
            "error": r.error,
            "highest_clean_rate": _highest_clean(r),
            "calls_completed_in_all": r.calls_answered,
            "call_records": r.records,
            "steps": [_b2bua_step_summary(s) for s in r.b2bua_steps()],
        }
        for r in results
    }
    comparison = []
    engine, kamailio = by_name.get("engine"), by_name.get("kamailio")
    if engine and kamailio:
        for rate in opts.rates:
            e, k = engine.b2bua_step(rate), kamailio.b2bua_step(rate)
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
                    "engine_cpu_share_pct": round(e.cpu_share, 1),
                    "kamailio_cpu_share_pct": round(k.cpu_share, 1),
                }
            )
    summary: dict[str, Any] = {
        "benchmark": "b2bua",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": {
            "rates": list(opts.rates),
            "seconds": opts.seconds,
            "settle": opts.settle,
            "call_seconds": opts.call_seconds,
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
            "setup_time_from": "INVITE sent" if sipp.send_time_rtd else "call created",
            "setup_time_to": "200 OK received",
        },
        "servers": servers,
        "comparison": comparison,
    }
    summary["targets"] = _targets(summary, engine)
    summary["notes"] = _notes(summary, results)
    return summary


def _target(name: str, status: str, detail: str) -> dict[str, str]:
    return {"target": name, "status": status, "detail": detail}


def _targets(summary: dict[str, Any], engine: B2buaResult | None) -> list[dict[str, str]]:
    out = []
    name = f"engine CPU per call at most {CPU_RATIO_TARGET:g}× Kamailio's (at {CPU_RATIO_RATE}/s)"
    rows = {c["rate"]: c for c in summary["comparison"] if c["ratio"] is not None}
    row = rows.get(CPU_RATIO_RATE)
    fallback = ""
    if row is None and rows:  # judged at the common rate nearest the issue's
        rate = min(rows, key=lambda r: abs(r - CPU_RATIO_RATE))
        row, fallback = rows[rate], f" (not measured at {CPU_RATIO_RATE}/s)"
    if row is None:
        out.append(_target(name, "n/a", "needs both servers measured at a common rate"))
    else:
        status = "PASS" if row["ratio"] <= CPU_RATIO_TARGET else "MISS"
        also = rows.get(CPU_RATIO_ALSO)
        extra = f"; at {CPU_RATIO_ALSO}/s: ratio {_ratio(also['ratio'])}" if also else ""
        out.append(
            _target(
                name,
                status,
                f"at {row['rate']}/s{fallback}: engine {row['engine_cpu_us_per_call']:.0f} µs, "
                f"Kamailio {row['kamailio_cpu_us_per_call']:.0f} µs, ratio "
                f"{_ratio(row['ratio'])}{extra}",
            )
        )

    name = f"zero failed calls at {CLEAN_RATE_TARGET} calls/s"
    step = engine.b2bua_step(CLEAN_RATE_TARGET) if engine else None
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
                f"no failures, but SIPp offered only {_num(step.offered_rate, 0)}/s",
            )
        )
    else:
        out.append(_target(name, "PASS", f"{step.sipp.successful} calls, none failed"))
    return out


def _failure_kinds(step: B2buaStep) -> str:
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(step.sipp.failures.items()))
    parts = [
        p
        for p in (kinds, f"unfinished {step.sipp.unfinished}" if step.sipp.unfinished else "")
        if p
    ]
    return f" ({'; '.join(parts)})" if parts else ""


def _notes(summary: dict[str, Any], results: list[B2buaResult]) -> list[str]:
    env = summary["environment"]
    opts = summary["options"]
    notes = [
        f"CPU per call: utime+stime of the server's process tree over the run and the "
        f"{opts['settle']:g} s after it (64*T1 transaction timers, call-record commits), "
        "idle work included; divided by the calls the caller's SIPp completed"
    ]
    if env["sipp_clock_resolution_ms"] >= 1:
        notes.append(
            f"setup times have {env['sipp_clock_resolution_ms']:g} ms steps (SIPp "
            f"reads CLOCK_MONOTONIC_COARSE and {env['sipp_clock_note']})"
        )
    if env["setup_time_from"] != "INVITE sent":
        notes.append("setup times start when SIPp allocates a call, before its INVITE leaves")
    notes += _speed_notes(results)
    kamailio = next((r for r in results if r.name == "kamailio"), None)
    k_ref = kamailio.b2bua_step(KAMAILIO_REFERENCE_RATE) if kamailio else None
    if k_ref is not None and k_ref.cpu_us_per_call:
        notes.append(
            f"Kamailio at {KAMAILIO_REFERENCE_RATE}/s: {k_ref.cpu_us_per_call:.0f} µs per call "
            f"here; the issue quotes about {KAMAILIO_REFERENCE_US:g} µs for this machine class"
        )
    for result in results:
        server = summary["servers"][result.name]
        if result.idle_cpu_us_per_s is not None:
            notes.append(
                f"{result.name} idle: {result.idle_cpu_us_per_s:.0f} µs of CPU per second "
                "(included in its figures; 'cpu_us_per_call_less_idle' in the JSON leaves it out)"
            )
        records = server["call_records"]
        if records is not None:
            expected = 2 * result.calls_answered
            rules = ", ".join(f"{rule} {n}" for rule, n in records.get("rules", {}).items())
            notes.append(
                f"{result.name} call records: {records.get('legs', 0)} legs ended and "
                f"{records.get('open_legs', 0)} open in the database, for "
                f"{result.calls_answered} completed calls of 2 legs (expected {expected})"
                + (f"; rules matched (leg 0): {rules}" if rules else "")
                + (f"; {records['error']}" if records.get("error") else "")
            )
        for step in result.b2bua_steps():
            where = f"{result.name} at {step.rate}/s"
            if step.failed:
                errors = "; ".join(f"{n}× {kind}" for kind, n in list(step.sipp.errors.items())[:3])
                notes.append(
                    f"{where}: {step.failed} failed{_failure_kinds(step)}"
                    + (f"; caller SIPp's error log: {errors}" if errors else "")
                )
            if step.uas is not None and (step.uas.failed or step.uas.errors):
                errors = "; ".join(f"{n}× {kind}" for kind, n in list(step.uas.errors.items())[:3])
                notes.append(
                    f"{where}: the callee SIPp counted {step.uas.failed} failed calls"
                    + (f"; its error log: {errors}" if errors else "")
                )
            if not step.offered:
                notes.append(
                    f"{where}: SIPp offered {_num(step.offered_rate, 0)}/s and "
                    f"left {step.sipp.not_started} calls unstarted: the load generator, "
                    "not the server, set the pace"
                )
            if step.sipp_total_share >= SIPP_BUSY:
                notes.append(
                    f"{where}: the two SIPp instances used {step.sipp_total_share:.0f}% of "
                    "their core; SIPp may be the bottleneck, and its queueing is in the "
                    "setup times"
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


def _speed_notes(results: list[B2buaResult]) -> list[str]:
    """How fast core 0 ran a fixed loop before each server's steps, when it moved."""
    medians = {}
    for result in results:
        speeds = sorted(s.core_speed for s in result.b2bua_steps() if s.core_speed)
        if speeds:
            medians[result.name] = speeds[len(speeds) // 2]
    out = []
    if len(medians) == 2:
        (a, sa), (b, sb) = medians.items()
        change = sb / sa - 1
        text = (
            f"core 0 ran the speed probe (common.core_speed) at {sa:.0f} M loops/s before "
            f"the {a} steps and {sb:.0f} before the {b} steps (median)"
        )
        if abs(change) >= SPEED_CHANGE:
            text += (
                f": the machine was {abs(change) * 100:.0f}% "
                f"{'faster' if change > 0 else 'slower'} for {b}, which skews the CPU ratio "
                "by about as much"
            )
        out.append(text)
    for result in results:
        speeds = [s.core_speed for s in result.b2bua_steps() if s.core_speed]
        if len(speeds) > 1 and max(speeds) / min(speeds) - 1 >= SPEED_CHANGE:
            out.append(
                f"{result.name}: core 0's speed moved from {min(speeds):.0f} to "
                f"{max(speeds):.0f} M loops/s between its steps (the host's load changed)"
            )
    return out


def render(summary: dict[str, Any]) -> str:
    """The plain-text report of a summary."""
    env = summary["environment"]
    opts = summary["options"]
    out = [
        f"B2BUA mode, full calls of {opts['call_seconds']:g} s, {opts['seconds']:g} s of calls "
        f"per rate (+{opts['settle']:g} s settle); servers pinned to core 0, both SIPp to "
        f"core 1; setup = {env['setup_time_from']} to {env['setup_time_to']} as the caller's "
        f"SIPp sees it ({env['sipp_clock']})"
    ]
    headers = [
        "rate/s",
        "offered/s",
        "ok",
        "failed",
        "retrans",
        "setup p50 ms",
        "p99 ms",
        "CPU µs/call",
        "less idle",
        "CPU %core",
        "SIPp uac %",
        "uas %",
        "other %",
        "UDP InErr",
        "RcvbufErr",
        "core0 speed",
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
                _num(s["cpu_us_per_call"], 0),
                _num(s["cpu_us_per_call_less_idle"], 0),
                _num(s["cpu_share_pct"], 0),
                _num(s["sipp_cpu_share_pct"], 0),
                _num(s["sipp_callee_cpu_share_pct"], 0),
                _num(s["other_busy_pct"], 0),
                str(s["udp"].get("InErrors", 0)),
                str(s["udp"].get("RcvbufErrors", 0)),
                _num(s["core_speed_mips"], 0),
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
                _num(c["engine_cpu_us_per_call"], 0),
                _num(c["kamailio_cpu_us_per_call"], 0),
                _ratio(c["ratio"]),
                _num(c["engine_cpu_share_pct"], 0),
                _num(c["kamailio_cpu_share_pct"], 0),
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
                    "engine %core",
                    "Kamailio %core",
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
    out += ["", "targets"]
    out += [f"  {t['status']:<4}  {t['target']}: {t['detail']}" for t in summary["targets"]]
    if summary["notes"]:
        out += ["", "notes"]
        out += [f"  - {note}" for note in summary["notes"]]
    return "\n".join(out)
