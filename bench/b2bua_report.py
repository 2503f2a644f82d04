"""The B2BUA benchmark's figures: one JSON-ready summary, and the text printed from it.

What both SIPp benchmarks report alike (step and server keys, the tables,
the zero-failure target, the notes on a step) is report.py's; this adds
B2BUA mode's own: setup times, the callee's SIPp beside the caller's, CPU
per call with no decimal (hundreds of µs) and less the idle rate, the call
records, the core-speed probe, and the targets of the B2BUA issue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import report
from common import Column, column, summary_head
from report import SIPP_BUSY, fixed, headlines, ms, num, rounded

if TYPE_CHECKING:
    from b2bua import B2buaResult, B2buaStep, Options
    from sipp import Sipp

__all__ = ["headlines", "progress_line", "render", "summarise"]

KAMAILIO_REFERENCE_US = 600.0  # the issue: Kamailio, about 600 µs per call at 500 calls/s
KAMAILIO_REFERENCE_RATE = 500  # (and clean up to about 1,000 calls/s)
CPU_RATIO_TARGET = 2.0
CPU_RATIO_RATE = 500  # where the issue quotes Kamailio's figure
CPU_RATIO_ALSO = 300
CLEAN_RATE_TARGET = 300
SPEED_CHANGE = 0.10  # a core speed that moved by this much between steps is noted

STEP_COLUMNS: list[Column] = [
    *report.CALLS,
    column("setup p50 ms", "p50_ms", ms),
    report.P99,
    column("CPU µs/call", "cpu_us_per_call", fixed(0)),
    column("less idle", "cpu_us_per_call_less_idle", fixed(0)),
    report.CPU_SHARE,
    column("SIPp uac %", "sipp_cpu_share_pct", fixed(0)),
    column("uas %", "sipp_callee_cpu_share_pct", fixed(0)),
    column("other %", "other_busy_pct", fixed(0)),
    *report.UDP_DROPS,
    column("core0 speed", "core_speed_mips", fixed(0)),
]


def progress_line(name: str, step: B2buaStep) -> str:
    figures = (
        f"setup p50 {ms(step.rtt_ms(0.50))} ms p99 {ms(step.rtt_ms(0.99))} ms, "
        f"{num(step.cpu_us_per_call, 0)} µs CPU/call, "
        f"{step.cpu_share:.0f}% of a core (SIPp caller {step.sipp_share:.0f}% + callee "
        f"{step.uas_share:.0f}%)"
    )
    return report.progress_line(name, step, figures)


def _step_summary(step: B2buaStep) -> dict[str, Any]:
    out = report.step_summary(step)
    uas = step.uas
    out.update(
        {
            "answered_rate": rounded(step.sipp.achieved_rate, 1),
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
            "cpu_us_per_call_less_idle": rounded(step.cpu_us_per_call_less_idle, 1),
            "window_s": round(step.window_s, 1),
            "core_speed_mips": rounded(step.core_speed, 1),
            "sipp_callee_cpu_share_pct": round(step.uas_share, 1),
            "sipp_both_cpu_share_pct": round(step.sipp_total_share, 1),
        }
    )
    return out


def summarise(opts: Options, sipp: Sipp, results: list[B2buaResult]) -> dict[str, Any]:
    options = {
        "rates": list(opts.rates),
        "seconds": opts.seconds,
        "settle": opts.settle,
        "call_seconds": opts.call_seconds,
        "kamailio_mem": opts.kamailio_mem,
        "kamailio_children": opts.kamailio_children,
        "kamailio_tlsf": opts.kamailio_tlsf,
    }
    summary: dict[str, Any] = {
        **summary_head("b2bua", options),
        "environment": {
            **report.environment(sipp, "setup_time"),
            "setup_time_to": "200 OK received",
        },
        "servers": {
            r.name: report.server_summary(
                r,
                [_step_summary(s) for s in r.steps],
                calls_completed_in_all=r.calls_answered,
                call_records=r.records,
            )
            for r in results
        },
        "comparison": report.comparison(opts.rates, results, shares=True),
        "comparison_tlsf": report.comparison(
            opts.rates, results, shares=True, peer="kamailio-tlsf"
        ),
    }
    summary["targets"] = _targets(summary, report.named(results, "engine"))
    summary["notes"] = _notes(summary, results)
    return summary


def _ratio_row(comparison: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, str, str]:
    """The comparison at the issue's rate (else the nearest common one), with its notes."""
    rows = {c["rate"]: c for c in comparison if c["ratio"] is not None}
    row = rows.get(CPU_RATIO_RATE)
    fallback = ""
    if row is None and rows:  # judged at the common rate nearest the issue's
        rate = min(rows, key=lambda r: abs(r - CPU_RATIO_RATE))
        row, fallback = rows[rate], f" (not measured at {CPU_RATIO_RATE}/s)"
    also = rows.get(CPU_RATIO_ALSO)
    more = f"; at {CPU_RATIO_ALSO}/s: ratio {report.ratio(also['ratio'])}" if also else ""
    return row, fallback, more


def _targets(summary: dict[str, Any], engine: B2buaResult | None) -> list[dict[str, str]]:
    row, fallback, more = _ratio_row(summary["comparison"])
    return [
        report.ratio_target(
            f"engine CPU per call at most {CPU_RATIO_TARGET:g}× Kamailio's (at {CPU_RATIO_RATE}/s)",
            row,
            CPU_RATIO_TARGET,
            0,
            fallback,
            more,
        ),
        *report.tlsf_info(_ratio_row(summary["comparison_tlsf"])[0], CPU_RATIO_TARGET, 0),
        *report.quoted_info(
            engine, KAMAILIO_REFERENCE_RATE, KAMAILIO_REFERENCE_US, CPU_RATIO_TARGET
        ),
        report.clean_target(
            f"zero failed calls at {CLEAN_RATE_TARGET} calls/s",
            engine.step(CLEAN_RATE_TARGET) if engine else None,
            CLEAN_RATE_TARGET,
        ),
    ]


def _notes(summary: dict[str, Any], results: list[B2buaResult]) -> list[str]:
    env = summary["environment"]
    notes = [
        f"CPU per call: utime+stime of the server's process tree over the run and the "
        f"{summary['options']['settle']:g} s after it (64*T1 transaction timers, call-record "
        "commits), idle work included; divided by the calls the caller's SIPp completed",
        *report.clock_notes(env, "setup times", env["setup_time_from"]),
        *_speed_notes(results),
        *report.reference_note(
            report.named(results, "kamailio"), KAMAILIO_REFERENCE_RATE, KAMAILIO_REFERENCE_US, 0
        ),
    ]
    for result in results:
        notes += report.idle_note(result, "; 'cpu_us_per_call_less_idle' in the JSON leaves it out")
        records = result.records
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
        for step in result.steps:
            notes += report.step_notes(
                result.name, step, "caller SIPp's error log", _busy(step), _callee(step)
            )
    return notes


def _callee(step: B2buaStep) -> list[str]:
    """What the callee's SIPp counted wrong: failed calls, its error log."""
    if step.uas is None or not (step.uas.failed or step.uas.errors):
        return []
    errors = "; ".join(f"{n}× {kind}" for kind, n in list(step.uas.errors.items())[:3])
    return [
        f"the callee SIPp counted {step.uas.failed} failed calls"
        + (f"; its error log: {errors}" if errors else "")
    ]


def _busy(step: B2buaStep) -> str | None:
    if step.sipp_total_share < SIPP_BUSY:
        return None
    return (
        f"the two SIPp instances used {step.sipp_total_share:.0f}% of their core; SIPp may be "
        "the bottleneck, and its queueing is in the setup times"
    )


def _speed_notes(results: list[B2buaResult]) -> list[str]:
    """How fast core 0 ran a fixed loop before each server's steps, when it moved."""
    medians = {}
    for result in results:
        speeds = sorted(s.core_speed for s in result.steps if s.core_speed)
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
        speeds = [s.core_speed for s in result.steps if s.core_speed]
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
    return "\n".join(
        [
            f"B2BUA mode, full calls of {opts['call_seconds']:g} s, {opts['seconds']:g} s of "
            f"calls per rate (+{opts['settle']:g} s settle); servers pinned to core 0, both SIPp "
            f"to core 1; setup = {env['setup_time_from']} to {env['setup_time_to']} as the "
            f"caller's SIPp sees it ({env['sipp_clock']})",
            *report.tables(summary, STEP_COLUMNS, cpu_digits=0, shares=True),
            *report.verdicts(summary),
        ]
    )
