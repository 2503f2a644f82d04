"""The redirect benchmark's figures: one JSON-ready summary, and the text printed from it.

What both SIPp benchmarks report alike (step and server keys, the tables,
the zero-failure target, the notes on a step) is report.py's; this adds
redirect mode's own: response times up to the 302 with their maximum, CPU
per call with one decimal (tens of µs), the tree evaluation and the
targets of the foundation issue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import report
from common import Column, column, summary_head
from report import SIPP_BUSY, fixed, headlines, ms, num

if TYPE_CHECKING:
    from measure import ServerResult, Step
    from redirect import Options
    from sipp import Sipp
    from tree_micro import TreeEval

__all__ = ["headlines", "progress_line", "render", "summarise"]

KAMAILIO_REFERENCE_US = 41.0  # the issue: Kamailio 5.6, about 41 µs per redirected call at 2,000/s
CPU_RATIO_TARGET = 3.0
CLEAN_RATE_TARGET = 2000
P99_RATE = 1000
P99_TARGET_MS = 5.0
TREE_TARGET_US = 10.0

STEP_COLUMNS: list[Column] = [
    *report.CALLS,
    column("p50 ms", "p50_ms", ms),
    report.P99,
    column("max ms", "max_ms", ms),
    column("CPU µs/call", "cpu_us_per_call", fixed(1)),
    report.CPU_SHARE,
    column("SIPp %core", "sipp_cpu_share_pct", fixed(0)),
    column("other %core", "other_busy_pct", fixed(0)),
    *report.UDP_DROPS,
]


def progress_line(name: str, step: Step) -> str:
    figures = (
        f"p50 {ms(step.rtt_ms(0.50))} ms, p99 {ms(step.rtt_ms(0.99))} ms, "
        f"{num(step.cpu_us_per_call, 1)} µs/call, "
        f"{step.cpu_share:.0f}% of a core (SIPp {step.sipp_share:.0f}%)"
    )
    return report.progress_line(name, step, figures)


def summarise(
    opts: Options, sipp: Sipp, results: list[ServerResult[Step]], tree: TreeEval | None
) -> dict[str, Any]:
    tree_summary = None
    if tree is not None:
        tree_summary = {
            "rules": tree.rules,
            "cases": tree.cases,
            "worst_median_us": tree.worst_median_us,
        }
    options = {
        "rates": list(opts.rates),
        "seconds": opts.seconds,
        "settle": opts.settle,
        "kamailio_mem": opts.kamailio_mem,
        "kamailio_children": opts.kamailio_children,
        "kamailio_tlsf": opts.kamailio_tlsf,
    }
    summary: dict[str, Any] = {
        **summary_head("redirect", options),
        "environment": report.environment(sipp, "response_time"),
        "servers": {
            r.name: report.server_summary(r, [report.step_summary(s) for s in r.steps])
            for r in results
        },
        "comparison": report.comparison(opts.rates, results),
        "comparison_tlsf": report.comparison(opts.rates, results, peer="kamailio-tlsf"),
        "tree_eval": tree_summary,
    }
    summary["targets"] = _targets(summary, report.named(results, "engine"), tree)
    summary["notes"] = _notes(summary, results)
    return summary


def _ratio_row(comparison: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The comparison at the clean-rate target's rate, else at the highest common rate."""
    rows = [c for c in comparison if c["ratio"] is not None]
    return next((c for c in rows if c["rate"] == CLEAN_RATE_TARGET), rows[-1] if rows else None)


def _targets(
    summary: dict[str, Any], engine: ServerResult[Step] | None, tree: TreeEval | None
) -> list[dict[str, str]]:
    out = [
        report.ratio_target(
            f"engine CPU per call at most {CPU_RATIO_TARGET:g}× Kamailio's",
            _ratio_row(summary["comparison"]),
            CPU_RATIO_TARGET,
            1,
        ),
        *report.tlsf_info(_ratio_row(summary["comparison_tlsf"]), CPU_RATIO_TARGET, 1),
        *report.quoted_info(engine, CLEAN_RATE_TARGET, KAMAILIO_REFERENCE_US, CPU_RATIO_TARGET),
        report.clean_target(
            f"zero failed calls at {CLEAN_RATE_TARGET} calls/s on one core",
            engine.step(CLEAN_RATE_TARGET) if engine else None,
            CLEAN_RATE_TARGET,
        ),
    ]

    name = f"p99 response time below {P99_TARGET_MS:g} ms at {P99_RATE} calls/s"
    step = engine.step(P99_RATE) if engine else None
    p99 = step.rtt_ms(0.99) if step else None
    if step is None or p99 is None:
        out.append(report.target(name, "n/a", f"the engine has no response times at {P99_RATE}/s"))
    else:
        status = "PASS" if p99 < P99_TARGET_MS and not step.failed else "MISS"
        extra = f", {step.failed} failed" if step.failed else ""
        out.append(
            report.target(
                name, status, f"p99 {p99:.2f} ms over {len(step.sipp.rtts_ms)} calls{extra}"
            )
        )

    name = f"tree evaluation below {TREE_TARGET_US:g} µs median (200-rule tree)"
    worst = tree.worst_median_us if tree else None
    if tree is None or worst is None:
        out.append(report.target(name, "n/a", "bench/tree_eval.py did not run"))
    else:
        slowest = max(tree.cases, key=lambda c: float(tree.cases[c]["median_us"]))
        status = "PASS" if worst < TREE_TARGET_US and tree.rules == 200 else "MISS"
        out.append(
            report.target(
                name, status, f"slowest case '{slowest}' {worst:.2f} µs median, {tree.rules} rules"
            )
        )
    return out


def _notes(summary: dict[str, Any], results: list[ServerResult[Step]]) -> list[str]:
    env = summary["environment"]
    notes = report.clock_notes(env, "response times", env["response_time_from"])
    notes += report.reference_note(
        report.named(results, "kamailio"), CLEAN_RATE_TARGET, KAMAILIO_REFERENCE_US, 1
    )
    for result in results:
        notes += report.idle_note(result)
        for step in result.steps:
            busy = None
            if step.sipp_share >= SIPP_BUSY:
                busy = (
                    f"SIPp used {step.sipp_share:.0f}% of its core; it may be the bottleneck, "
                    "and its queueing is in the response times"
                )
            notes += report.step_notes(result.name, step, "SIPp's error log", busy)
    return notes


def render(summary: dict[str, Any]) -> str:
    """The plain-text report of a summary."""
    env = summary["environment"]
    out = [
        f"Redirect mode, {summary['options']['seconds']:g} s per rate; servers pinned to "
        "core 0, SIPp to core 1; response time = INVITE to 302 as SIPp sees it "
        f"({env['sipp_clock']}, from {env['response_time_from']})",
        *report.tables(summary, STEP_COLUMNS, cpu_digits=1),
    ]
    tree = summary["tree_eval"]
    if tree:
        cases = ", ".join(f"{case} {c['median_us']:.2f}" for case, c in tree["cases"].items())
        out.append(
            f"tree evaluation, {tree['rules']}-rule tree (bench/tree_eval.py), median µs: {cases}"
        )
    out += report.verdicts(summary)
    return "\n".join(out)
