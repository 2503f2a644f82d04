"""What the redirect and the B2BUA reports share: the summary's common keys, tables, verdicts.

Both benchmarks measure the same figures the same way (measure.py), so the
JSON keys of a step, a server and the side-by-side comparison, the tables
printed from them, the zero-failure target and the notes on a failed,
generator-bound or disturbed step are built here once;
redirect_report.py and b2bua_report.py add only what their mode has of
its own. The printed tables are rendered from the same summary that is
saved as JSON, so the two never disagree. Targets are judged and only
printed (PASS, MISS, or n/a when the run did not measure them): a
benchmark that asserts hides every figure after the first miss.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from common import Column, column, rows_table

if TYPE_CHECKING:
    from measure import ServerResult, Step
    from sipp import Sipp

__all__ = [
    "CALLS",
    "CPU_SHARE",
    "OTHER_BUSY",
    "P99",
    "SIPP_BUSY",
    "UDP_DROPS",
    "clean_target",
    "clock_notes",
    "comparison",
    "environment",
    "fixed",
    "headlines",
    "idle_note",
    "ms",
    "named",
    "num",
    "progress_line",
    "quoted_info",
    "ratio",
    "ratio_target",
    "reference_note",
    "rounded",
    "server_summary",
    "step_notes",
    "step_summary",
    "tables",
    "target",
    "tlsf_info",
    "verdicts",
]

ResultT = TypeVar("ResultT", bound="ServerResult[Any]")

SIPP_BUSY = 90.0  # % of its core: above this SIPp itself may be the bottleneck
OTHER_BUSY = 10.0  # % of a core used by other processes: above this figures are suspect


def rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}×"


def fixed(digits: int) -> Callable[[float | None], str]:
    """A cell format: ``digits`` decimals, ``-`` for a figure not measured."""
    return lambda value: num(value, digits)


#: The columns a step table of either benchmark starts with: the calls offered and their fate.
CALLS: list[Column] = [
    column("rate/s", "rate"),
    column("offered/s", "offered_rate", fixed(0)),
    column("ok", "successful"),
    column("failed", "failed"),
    column("retrans", "retransmissions"),
]
P99 = column("p99 ms", "p99_ms", ms)
CPU_SHARE = column("CPU %core", "cpu_share_pct", fixed(0))
#: The kernel's UDP drops during a step (system-wide counters).
UDP_DROPS: list[Column] = [
    ("UDP InErr", lambda row: str(row["udp"].get("InErrors", 0))),
    ("RcvbufErr", lambda row: str(row["udp"].get("RcvbufErrors", 0))),
]


def progress_line(name: str, step: Step, figures: str) -> str:
    """A step's line as soon as it is measured: its calls, the mode's ``figures``, disturbance."""
    line = f"{name:<8} {step.rate:>5}/s: {step.sipp.successful} ok, {step.failed} failed, {figures}"
    if step.other_busy_share >= OTHER_BUSY:
        line += f" [other processes: {step.other_busy_share:.0f}% of a core]"
    return line


# -- the JSON summary ------------------------------------------------------------------------


def environment(sipp: Sipp, timed: str) -> dict[str, Any]:
    """The machine and SIPp's clock; ``timed`` names the time SIPp measures (its ``_from`` key)."""
    return {
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
        f"{timed}_from": "INVITE sent" if sipp.send_time_rtd else "call created",
    }


def step_summary(step: Step) -> dict[str, Any]:
    """A step's JSON: what SIPp counted and timed, and what the server and machine spent."""
    rtts = step.sipp.rtts_ms
    run = step.sipp
    return {
        "rate": step.rate,
        "offered_rate": rounded(step.offered_rate, 1),
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
        "p50_ms": rounded(step.rtt_ms(0.50), 3),
        "p99_ms": rounded(step.rtt_ms(0.99), 3),
        "max_ms": rounded(rtts[-1] if rtts else None, 3),
        "mean_ms": rounded(sum(rtts) / len(rtts) if rtts else None, 3),
        "cpu_us_per_call": rounded(step.cpu_us_per_call, 1),
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


def server_summary(
    result: ServerResult[Any], steps: list[dict[str, Any]], **more: Any
) -> dict[str, Any]:
    """A server's JSON: ``more`` (the mode's own keys) comes before its ``steps``."""
    return {
        "description": result.description,
        "idle_cpu_us_per_s": rounded(result.idle_cpu_us_per_s, 0),
        "error": result.error,
        "highest_clean_rate": result.highest_clean(),
        **more,
        "steps": steps,
    }


def named(results: Sequence[ResultT], name: str) -> ResultT | None:
    """The result of the server called ``name``, or None."""
    return next((r for r in results if r.name == name), None)


def comparison(
    rates: Sequence[int], results: Sequence[ServerResult[Any]], shares: bool = False,
    peer: str = "kamailio",
) -> list[dict[str, Any]]:  # fmt: skip
    """The engine beside Kamailio (the server named ``peer``) at every rate both ran at.

    ``shares``: with each server's % of its core over the run. The keys say
    ``kamailio_`` whichever Kamailio ``peer`` is.
    """
    engine, kamailio = named(results, "engine"), named(results, peer)
    if not (engine and kamailio):
        return []
    rows = []
    for rate in rates:
        e, k = engine.step(rate), kamailio.step(rate)
        if e is None or k is None:
            continue
        cpu_ratio = (
            e.cpu_us_per_call / k.cpu_us_per_call
            if e.cpu_us_per_call and k.cpu_us_per_call
            else None
        )
        row = {
            "rate": rate,
            "engine_cpu_us_per_call": rounded(e.cpu_us_per_call, 1),
            "kamailio_cpu_us_per_call": rounded(k.cpu_us_per_call, 1),
            "ratio": rounded(cpu_ratio, 2),
            "engine_failed": e.failed,
            "kamailio_failed": k.failed,
            "engine_p99_ms": rounded(e.rtt_ms(0.99), 3),
            "kamailio_p99_ms": rounded(k.rtt_ms(0.99), 3),
        }
        if shares:
            row["engine_cpu_share_pct"] = round(e.cpu_share, 1)
            row["kamailio_cpu_share_pct"] = round(k.cpu_share, 1)
        rows.append(row)
    return rows


# -- targets and notes -----------------------------------------------------------------------


def target(name: str, status: str, detail: str) -> dict[str, str]:
    return {"target": name, "status": status, "detail": detail}


def ratio_target(
    name: str,
    row: dict[str, Any] | None,
    limit: float,
    digits: int,
    fallback: str = "",
    also: str = "",
    judged: bool = True,
) -> dict[str, str]:
    """The engine's CPU per call against Kamailio's, judged on one comparison ``row``.

    ``fallback`` follows the rate when the row is not the target's own,
    ``also`` ends the detail; ``judged=False`` shows the figures as
    ``info`` (Kamailio on tlsf: not the issues' reference).
    """
    if row is None:
        return target(name, "n/a", "needs both servers measured at a common rate")
    verdict = "PASS" if row["ratio"] <= limit else "MISS"
    return target(
        name,
        verdict if judged else "info",
        f"at {row['rate']}/s{fallback}: engine {row['engine_cpu_us_per_call']:.{digits}f} µs, "
        f"Kamailio {row['kamailio_cpu_us_per_call']:.{digits}f} µs, ratio "
        f"{ratio(row['ratio'])}{also}",
    )


def tlsf_info(row: dict[str, Any] | None, limit: float, digits: int) -> list[dict[str, str]]:
    """The ratio against Kamailio on tlsf beside the judged one (``info``), when it ran."""
    if row is None:
        return []
    name = "the same against Kamailio on -x tlsf (its fastest here; not the reference)"
    return [ratio_target(name, row, limit, digits, judged=False)]


def clean_target(name: str, step: Step | None, rate: int) -> dict[str, str]:
    """No call failed in the engine's step at ``rate``, and SIPp really offered that rate."""
    if step is None:
        return target(name, "n/a", f"the engine was not measured at {rate}/s")
    if step.failed:
        return target(
            name, "MISS", f"{step.failed} of {step.sipp.planned} calls failed{_failure_kinds(step)}"
        )
    if not step.offered:
        return target(
            name, "n/a", f"no failures, but SIPp offered only {num(step.offered_rate, 0)}/s"
        )
    return target(name, "PASS", f"{step.sipp.successful} calls, none failed")


def _failure_kinds(step: Step) -> str:
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(step.sipp.failures.items()))
    parts = [
        p
        for p in (kinds, f"unfinished {step.sipp.unfinished}" if step.sipp.unfinished else "")
        if p
    ]
    return f" ({'; '.join(parts)})" if parts else ""


def clock_notes(env: dict[str, Any], times: str, started: str) -> list[str]:
    """What limits the ``times`` SIPp measured: its clock's steps, and when it starts one."""
    notes = []
    if env["sipp_clock_resolution_ms"] >= 1:
        notes.append(
            f"{times} have {env['sipp_clock_resolution_ms']:g} ms steps (SIPp "
            f"reads CLOCK_MONOTONIC_COARSE and {env['sipp_clock_note']}): "
            "p50/p99 are only that precise"
        )
    if started != "INVITE sent":
        notes.append(
            f"{times} start when SIPp allocates a call, up to 1 ms before its INVITE leaves"
        )
    return notes


def reference_note(
    kamailio: ServerResult[Any] | None, rate: int, reference_us: float, digits: int
) -> list[str]:
    """Kamailio's CPU per call here beside the figure the issue quotes for this machine class."""
    step = kamailio.step(rate) if kamailio else None
    if step is None or not step.cpu_us_per_call:
        return []
    return [
        f"Kamailio at {rate}/s: {step.cpu_us_per_call:.{digits}f} µs per call here; the issue "
        f"quotes about {reference_us:g} µs for this machine class"
    ]


def quoted_info(
    engine: ServerResult[Any] | None, rate: int, reference_us: float, limit: float
) -> list[dict[str, str]]:
    """The engine against the Kamailio cost the issue quotes (``info``), beside the verdict."""
    step = engine.step(rate) if engine else None
    if step is None or not step.cpu_us_per_call:
        return []
    ratio_ = step.cpu_us_per_call / reference_us
    return [
        target(
            f"the same against the issue's quoted {reference_us:g} µs (not measured here)",
            "info",
            f"at {rate}/s: engine {step.cpu_us_per_call:.0f} µs, ratio {ratio(ratio_)} "
            f"(limit {limit:g}×)",
        )
    ]


def idle_note(result: ServerResult[Any], aside: str = "") -> list[str]:
    if result.idle_cpu_us_per_s is None:
        return []
    return [
        f"{result.name} idle: {result.idle_cpu_us_per_s:.0f} µs of CPU per second "
        f"(included in its figures{aside})"
    ]


def step_notes(
    name: str,
    step: Step,
    error_log: str,
    busy: str | None,
    callee: Sequence[str] = (),
) -> list[str]:
    """What is wrong with one step of server ``name``, each note led by where it happened.

    ``error_log`` names the SIPp whose errors are quoted; ``busy`` is the
    note on a SIPp near its core's limit (None: it was not); ``callee``,
    the notes on the callee's SIPp (B2BUA mode).
    """
    notes = []
    if step.failed:
        errors = "; ".join(f"{n}× {kind}" for kind, n in list(step.sipp.errors.items())[:3])
        notes.append(
            f"{step.failed} failed{_failure_kinds(step)}"
            + (f"; {error_log}: {errors}" if errors else "")
        )
    notes += callee
    if not step.offered:
        notes.append(
            f"SIPp offered {num(step.offered_rate, 0)}/s and left {step.sipp.not_started} calls "
            "unstarted: the load generator, not the server, set the pace"
        )
    if busy:
        notes.append(busy)
    if step.other_busy_share >= OTHER_BUSY:
        notes.append(
            f"other processes kept {step.other_busy_share:.0f}% of a core busy meanwhile; these "
            "figures are disturbed (busiest: "
            + "; ".join(f"{process} {pct:.0f}%" for process, pct in step.other_top)
            + ")"
        )
    if step.udp.get("InErrors", 0) + step.udp.get("SndbufErrors", 0):
        notes.append(
            f"the kernel counted UDP InErrors {step.udp.get('InErrors', 0)} (RcvbufErrors "
            f"{step.udp.get('RcvbufErrors', 0)}), SndbufErrors "
            f"{step.udp.get('SndbufErrors', 0)} (system-wide counters)"
        )
    return [f"{name} at {step.rate}/s: {note}" for note in notes]


# -- the printed report ----------------------------------------------------------------------


def tables(
    summary: dict[str, Any], columns: Sequence[Column], cpu_digits: int, shares: bool = False
) -> list[str]:
    """Each server's steps, the side-by-side comparison, and each server's highest clean rate.

    ``cpu_digits``: the decimals of CPU µs per call beside each other;
    ``shares``: the comparison shows each server's % of its core.
    """
    out = []
    for name, server in summary["servers"].items():
        out += ["", f"{name}: {server['description']}", _table(columns, server["steps"])]
        if server["error"]:
            out.append(f"could not finish: {server['error']}")
    if summary["comparison"]:
        cpu = fixed(cpu_digits)
        side: list[Column] = [
            column("rate/s", "rate"),
            *_pair("µs/call", "cpu_us_per_call", cpu),
            column("ratio", "ratio", ratio),
            *(_pair("%core", "cpu_share_pct", fixed(0)) if shares else []),
            *_pair("failed", "failed"),
            *_pair("p99 ms", "p99_ms", ms),
        ]
        out += ["", "engine / Kamailio, side by side", _table(side, summary["comparison"])]
        if summary.get("comparison_tlsf"):
            out += ["", "engine / Kamailio on -x tlsf (not the issues' reference), side by side",
                    _table(side, summary["comparison_tlsf"])]  # fmt: skip
    return [*out, "", *_highest_clean(summary, "none of the rates measured")]


def _table(columns: Sequence[Column], rows: Sequence[dict[str, Any]]) -> str:
    return rows_table(columns, rows) if rows else "(no step measured)"


def _pair(header: str, key: str, fmt: Callable[[Any], str] = str) -> list[Column]:
    """The engine's column and Kamailio's, for the comparison's ``engine_KEY``/``kamailio_KEY``."""
    return [
        column(f"{label} {header}", f"{name}_{key}", fmt)
        for name, label in (("engine", "engine"), ("kamailio", "Kamailio"))
    ]


def _highest_clean(summary: dict[str, Any], none: str) -> list[str]:
    return [
        f"highest rate with zero failed calls, {name}: "
        + (f"{server['highest_clean_rate']} calls/s" if server["highest_clean_rate"] else none)
        for name, server in (summary.get("servers") or {}).items()
    ]


def verdicts(summary: dict[str, Any]) -> list[str]:
    """The report's closing sections: the targets, then the notes."""
    out = ["", "targets"]
    out += [f"  {t['status']:<4}  {t['target']}: {t['detail']}" for t in summary["targets"]]
    if summary["notes"]:
        out += ["", "notes"]
        out += [f"  - {note}" for note in summary["notes"]]
    return out


def headlines(summary: dict[str, Any]) -> list[str]:
    """The lines of the run's closing summary: the ratio per rate, clean rates, targets."""
    out = []
    for key, peer in (("comparison", "Kamailio"), ("comparison_tlsf", "Kamailio tlsf")):
        rows = summary.get(key) or []
        if rows:
            out.append(
                f"CPU µs/call engine / {peer}: "
                + ", ".join(
                    f"{c['rate']}/s {num(c['engine_cpu_us_per_call'], 0)} / "
                    f"{num(c['kamailio_cpu_us_per_call'], 0)} ({ratio(c['ratio'])})"
                    for c in rows
                )
            )
    out += _highest_clean(summary, "none")
    out += [f"{t['status']:<4}  {t['target']}: {t['detail']}" for t in summary.get("targets", [])]
    return out
