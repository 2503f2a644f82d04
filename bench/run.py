"""``make bench``: run the benchmarks, print their figures, save a JSON summary of each.

Run: ``.venv/bin/python bench/run.py [--quick] [--benchmarks redirect,b2bua,media,micro] ...``.

Each benchmark is a module with ``run(options, root, say)`` returning its
JSON-ready summary and one sentence per thing that could not run; this
runner parses the command line, calls them in order (redirect, b2bua,
media, acm, micro), writes ``bench/out/NAME.json`` (git-ignored; a step that
measures more than one thing, as acm does with acm_reserve and acm_queue,
hands the others back under ``also`` and each gets its own file), prints a closing
summary of every benchmark's headline figures and targets, and decides the
exit status. It never asserts on a figure: exit 0 whenever everything ran,
whatever the figures say; exit 1, with the reasons on stderr, when
something could not run. Later benchmarks join ``BENCHMARKS``
the same way, each in its own module with its helpers shared through
common.py and sipp.py (and, for those that measure servers under SIPp
load, measure.py, report.py and servers.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import acm_queue
import acm_reserve
import b2bua
import b2bua_report
import micro
import redirect
import redirect_report
import rtp_media

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
QUICK_SECONDS = 3.0


def _rates(text: str) -> tuple[int, ...]:
    try:
        rates = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a comma-separated list of calls per second, e.g. 500,1000"
        ) from None
    if not rates or any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError("rates must be positive calls per second, e.g. 500,1000")
    return tuple(sorted(set(rates)))


def _benchmarks(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    known = (*BENCHMARKS, *micro.PARTS)
    unknown = [n for n in names if n not in known]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown benchmark {', '.join(unknown) or text!r}; choose from {', '.join(known)}"
        )
    return names


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--benchmarks",
        type=_benchmarks,
        metavar="NAMES",
        help="which to run, comma-separated: redirect, b2bua, media, acm, micro, or micro's parts "
        f"({', '.join(micro.PARTS)}) (default: all, in that order)",
    )
    which.add_argument("--redirect-only", action="store_true", help="the redirect benchmark only")
    which.add_argument("--b2bua-only", action="store_true", help="the B2BUA benchmark only")
    which.add_argument("--media-only", action="store_true", help="the media benchmark only")
    which.add_argument("--micro-only", action="store_true", help="the micro-benchmarks only")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--engine-only", action="store_true", help="measure the engine only")
    who.add_argument("--kamailio-only", action="store_true", help="measure Kamailio only")
    for flag, mode, rates in (
        ("--rates", "redirect", redirect.DEFAULT_RATES),
        ("--b2bua-rates", "B2BUA", b2bua.DEFAULT_RATES),
        ("--acm-rates", "ACM queue", acm_queue.DEFAULT_RATES),
    ):
        parser.add_argument(
            flag,
            type=_rates,
            default=rates,
            help=f"{mode}: calls per second, one SIPp run each (default: "
            f"{','.join(map(str, rates))})",
        )
    parser.add_argument(
        "--call-seconds",
        type=float,
        default=b2bua.CALL_SECONDS,
        help=f"B2BUA: how long each call lasts, ACK to BYE (default {b2bua.CALL_SECONDS:g})",
    )
    parser.add_argument(
        "--acm-operators",
        type=int,
        default=acm_queue.OPERATORS,
        help=f"ACM queue: operators in the group (default {acm_queue.OPERATORS}; "
        f"{acm_queue.QUICK_RATES[0]}/s for {acm_queue.QUICK_SECONDS:g} s with --quick, "
        f"{acm_queue.SECONDS:g} s per rate otherwise, or --seconds)",
    )
    parser.add_argument(
        "--b2bua-settle",
        type=float,
        help="B2BUA: seconds after each run before CPU is read again (default 64*T1 + "
        f"the call + 2 s = {b2bua.default_settle(b2bua.CALL_SECONDS):g}, with --quick too: "
        "the engine frees a call's transactions 64*T1 after they complete)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        help=f"seconds of calls per rate (default 10; {QUICK_SECONDS:g} with --quick)",
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument(
        "--settle",
        type=float,
        default=6.0,
        help="redirect: seconds after each run before CPU is read again (default 6: "
        "longer than the engine's T4, so answered transactions are freed)",
    )
    parser.add_argument(
        "--kamailio-mem",
        choices=("tlsf", "fm", "qm"),
        default="qm",
        help="the allocator of the Kamailio the targets are judged against (default qm: "
        "Debian's build as shipped; see bench/servers.py)",
    )
    parser.add_argument(
        "--no-kamailio-tlsf",
        action="store_true",
        help="skip the second Kamailio, on -x tlsf (its fastest allocator), shown for information",
    )
    parser.add_argument(
        "--kamailio-children", type=int, default=1, help="Kamailio UDP worker processes (default 1)"
    )
    parser.add_argument(
        "--no-fine-clock", action="store_true", help="leave SIPp on its 4 ms coarse clock"
    )
    parser.add_argument(
        "--no-tree-eval", action="store_true", help="skip the tree-evaluation micro-benchmark"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the work directory (configs, logs, SIPp CSV files)",
    )
    return parser


def _seconds(args: argparse.Namespace) -> float:
    return (
        float(args.seconds) if args.seconds is not None else (QUICK_SECONDS if args.quick else 10.0)
    )


Summaries = dict[str, dict[str, Any]]


def _load(args: argparse.Namespace) -> dict[str, Any]:
    """The options the redirect and the B2BUA benchmarks share."""
    return {
        "seconds": _seconds(args),
        "engine": not args.kamailio_only,
        "kamailio": not args.engine_only,
        "kamailio_mem": args.kamailio_mem,
        "kamailio_tlsf": not args.no_kamailio_tlsf and args.kamailio_mem != "tlsf",
        "kamailio_children": max(1, args.kamailio_children),
        "fine_clock": not args.no_fine_clock,
        "keep": args.keep,
    }


def _redirect(args: argparse.Namespace, done: Summaries) -> tuple[dict[str, Any], list[str]]:
    options = redirect.Options(
        rates=args.rates,
        settle=max(0.0, args.settle),
        tree_eval=not args.no_tree_eval,
        **_load(args),
    )
    return redirect.run(options, ROOT)


def _b2bua(args: argparse.Namespace, done: Summaries) -> tuple[dict[str, Any], list[str]]:
    call = max(0.0, args.call_seconds)
    settle = b2bua.default_settle(call) if args.b2bua_settle is None else args.b2bua_settle
    options = b2bua.Options(
        rates=args.b2bua_rates, settle=max(0.0, settle), call_seconds=call, **_load(args)
    )
    return b2bua.run(options, ROOT)


def _acm(args: argparse.Namespace, done: Summaries) -> tuple[dict[str, Any], list[str]]:
    """acm_reserve, then acm_queue (its summary under ``also``, for bench/out/acm_queue.json)."""
    summary, problems = acm_reserve.run(acm_reserve.Options(quick=args.quick), ROOT)
    quick = args.quick and args.acm_rates == acm_queue.DEFAULT_RATES
    options = acm_queue.Options(
        rates=acm_queue.QUICK_RATES if quick else args.acm_rates,
        seconds=args.seconds
        if args.seconds is not None
        else (acm_queue.QUICK_SECONDS if args.quick else acm_queue.SECONDS),
        operators=max(1, args.acm_operators),
        fine_clock=not args.no_fine_clock,
        keep=args.keep,
    )
    queue, more = acm_queue.run(options, ROOT)
    return {**summary, "also": {"acm_queue": queue}}, problems + more


def _media(args: argparse.Namespace, done: Summaries) -> tuple[dict[str, Any], list[str]]:
    options = rtp_media.Options(seconds=_seconds(args), quick=args.quick)
    return rtp_media.run(options, ROOT)


def _micro(args: argparse.Namespace, done: Summaries) -> tuple[dict[str, Any], list[str]]:
    parts = args.micro_parts
    if args.no_tree_eval:
        parts = tuple(p for p in parts if p != "tree_eval")
    if not parts:
        return {}, []
    tree = (done.get("redirect") or {}).get("tree_eval")
    options = micro.Options(parts=parts, quick=args.quick, tree_eval=tree)
    return micro.run(options, ROOT)


#: Every benchmark, by the name of its JSON file, in the order they run: each turns the
#: parsed command line (and the summaries of those run before it) into its options and
#: returns (summary, sentences about what could not run).
BENCHMARKS: dict[
    str, Callable[[argparse.Namespace, Summaries], tuple[dict[str, Any], list[str]]]
] = {
    "redirect": _redirect,
    "b2bua": _b2bua,
    "media": _media,
    "acm": _acm,
    "micro": _micro,
}

#: Each benchmark's closing-summary lines, from its summary.
HEADLINES: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "redirect": redirect_report.headlines,
    "b2bua": b2bua_report.headlines,
    "media": rtp_media.headlines,
    "acm": acm_reserve.headlines,
    "acm_queue": acm_queue.headlines,
    "micro": micro.headlines,
}


def _selected(args: argparse.Namespace) -> list[str]:
    """The benchmarks to run, in BENCHMARKS order; sets ``args.micro_parts``."""
    if args.redirect_only:
        names: tuple[str, ...] = ("redirect",)
    elif args.b2bua_only:
        names = ("b2bua",)
    elif args.media_only:
        names = ("media",)
    elif args.micro_only:
        names = ("micro",)
    else:
        names = args.benchmarks or tuple(BENCHMARKS)
    parts = tuple(p for p in micro.PARTS if p in names)
    if parts:
        names = (*names, "micro")
    elif "micro" in names:
        parts = micro.PARTS
    args.micro_parts = parts
    return [name for name in BENCHMARKS if name in names]


def _closing(summaries: Summaries) -> str:
    out = ["", "=" * 78, "summary of this run"]
    for name, summary in summaries.items():
        lines = HEADLINES[name](summary) if summary else []
        out += ["", f"{name} (bench/out/{name}.json)"]
        out += [f"  {line}" for line in lines] or ["  (nothing measured)"]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.seconds is not None and args.seconds <= 0:
        print("bench/run.py: --seconds must be positive", file=sys.stderr)
        return 2
    if args.call_seconds < 0 or (args.b2bua_settle is not None and args.b2bua_settle < 0):
        print("bench/run.py: --call-seconds and --b2bua-settle cannot be negative", file=sys.stderr)
        return 2
    errors: list[str] = []
    summaries: Summaries = {}
    for name in _selected(args):
        summary, problems = BENCHMARKS[name](args, summaries)
        errors += problems
        also = summary.pop("also", {}) if summary else {}
        for key, part in {name: summary, **also}.items():
            summaries[key] = part
            if part:
                OUT.mkdir(parents=True, exist_ok=True)
                path = OUT / f"{key}.json"
                path.write_text(json.dumps(part, indent=2, ensure_ascii=False) + "\n")
                print(f"\nsummary written to {path.relative_to(ROOT)}", flush=True)
    if len(summaries) > 1:
        print(_closing(summaries))
    for error in errors:
        print(f"bench/run.py: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
