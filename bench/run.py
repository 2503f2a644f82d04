"""``make bench``: run the benchmarks, print their figures, save a JSON summary of each.

Run: ``.venv/bin/python bench/run.py [--quick] [--rates 500,1000] ...``.

Each benchmark is a module with ``run(options, root, say)`` returning its
JSON-ready summary and one sentence per thing that could not run; this
runner parses the command line, calls them, writes ``bench/out/NAME.json``
(git-ignored) and decides the exit status. It never asserts on a figure:
exit 0 whenever everything ran, whatever the figures say; exit 1, with the
reasons on stderr, when something could not run. Later benchmarks (B2BUA,
media, ACM) join ``BENCHMARKS`` the same way, each in its own module with
its helpers shared through common.py and sipp.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import redirect

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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.splitlines()[0])
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--engine-only", action="store_true", help="measure the engine only")
    who.add_argument("--kamailio-only", action="store_true", help="measure Kamailio only")
    parser.add_argument(
        "--rates",
        type=_rates,
        default=redirect.DEFAULT_RATES,
        help="calls per second, one SIPp run each (default: "
        f"{','.join(map(str, redirect.DEFAULT_RATES))})",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        help=f"seconds per rate (default 10; {QUICK_SECONDS:g} with --quick)",
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument(
        "--settle",
        type=float,
        default=6.0,
        help="seconds after each run before CPU is read again (default 6: "
        "longer than the engine's T4, so answered transactions are freed)",
    )
    parser.add_argument(
        "--kamailio-mem",
        choices=("tlsf", "fm", "qm"),
        default="tlsf",
        help="Kamailio's memory manager (default tlsf; Debian's default qm is "
        "a debugging allocator, several times slower)",
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


def _redirect(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    seconds = args.seconds if args.seconds is not None else (QUICK_SECONDS if args.quick else 10.0)
    options = redirect.Options(
        rates=args.rates,
        seconds=seconds,
        settle=max(0.0, args.settle),
        engine=not args.kamailio_only,
        kamailio=not args.engine_only,
        kamailio_mem=args.kamailio_mem,
        kamailio_children=max(1, args.kamailio_children),
        fine_clock=not args.no_fine_clock,
        tree_eval=not args.no_tree_eval,
        keep=args.keep,
    )
    return redirect.run(options, ROOT)


#: Every benchmark, by the name of its JSON file: each turns the parsed command line into
#: its options and returns (summary, sentences about what could not run).
BENCHMARKS: dict[str, Callable[[argparse.Namespace], tuple[dict[str, Any], list[str]]]] = {
    "redirect": _redirect,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.seconds is not None and args.seconds <= 0:
        print("bench/run.py: --seconds must be positive", file=sys.stderr)
        return 2
    errors: list[str] = []
    for name, benchmark in BENCHMARKS.items():
        summary, problems = benchmark(args)
        errors += problems
        if summary:
            OUT.mkdir(parents=True, exist_ok=True)
            path = OUT / f"{name}.json"
            path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
            print(f"\nsummary written to {path.relative_to(ROOT)}")
    for error in errors:
        print(f"bench/run.py: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
