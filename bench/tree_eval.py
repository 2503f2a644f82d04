"""Micro-benchmark: compiled routing-tree evaluation on a realistic 200-rule tree.

Run: ``.venv/bin/python bench/tree_eval.py``. Writes the tree into a temporary
directory, loads and compiles it, then times ``CompiledTree.evaluate`` for
facts that match the first rule, a middle rule, the last rule, and no rule,
and prints median and p99 per call (each call timed on its own, so the
figures include ~50 ns of timer overhead). The interpretive evaluator is
timed too, for comparison. No assertions: it prints figures.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from routing_trees.compile import compile_tree
from routing_trees.evaluate import interpret
from routing_trees.facts import Facts
from routing_trees.load import load_tree
from routing_trees.timewindows import DAYS

RULES = 200
NUMBERS = [f"+32220001{n:02d}" for n in range(40)]


def window(k: int) -> str:
    hour = 8 + (k // 7) % 12
    return f"{DAYS[k % 7]} {hour:02d}:00-{hour + 1:02d}:00"


def tree_yaml() -> str:
    """40 numbers, 6 caller lists, a holiday calendar, 200 rules of four shapes."""
    lines = [
        "version: 1",
        "customer: bench",
        "numbers: [" + ", ".join(f'"{n}"' for n in NUMBERS) + "]",
        "timezone: Europe/Brussels",
        "lists:",
        "  blocked: ["
        + ", ".join(f'"+3290{i:02d}*"' for i in range(20))
        + ", "
        + ", ".join(f'"+32478{i:06d}"' for i in range(10))
        + "]",
    ]
    for v in range(5):
        members = [f'"+32496{v}{i:05d}"' for i in range(18)] + [f'"+3215{v}{i}*"' for i in range(2)]
        lines.append(f"  vip{v}: [" + ", ".join(members) + "]")
    lines += [
        "calendars:",
        '  holidays: ["2026-12-25", "2027-01-01", "2027-04-05", "2027-05-01", "2027-07-21"]',
        "routes:",
        "  - name: disaster",
        "    when: {mode: drs}",
        '    do: {forward: "+3238889999"}',
        "  - name: blocked",
        "    when: {caller_in: blocked}",
        "    do: {reject: 603}",
    ]
    for k in range(2, RULES - 1):
        number = NUMBERS[k % 40]
        shape = k % 4
        when = {
            0: f'{{called: "{number}", time: "{window(k)}"}}',
            1: f'{{called: "{number}", time: "{window(k)}", caller_in: vip{k % 5}}}',
            2: f'{{called: "{number}", date_in: holidays, time: "{window(k)}"}}',
            3: f'{{called: "{number}", caller: "+32{470 + k // 40}*"}}',
        }[shape]
        lines += [
            f"  - name: r{k}",
            f"    when: {when}",
            "    do:",
            f'      forward: "+3223{k:06d}"',
            "      timeout: 20",
            f'      on_no_answer: {{forward: "+32475{k:06d}", on_busy: {{reject: 486}}}}',
        ]
    lines += [
        "  - name: last",
        f'    when: {{called: "{NUMBERS[1]}", anonymous: true, time: "sat-sun 00:00-24:00"}}',
        "    do: {reject: 480}",
    ]
    return "\n".join(lines) + "\n"


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def measure(fn, facts: Facts, calls: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    clock = time.perf_counter_ns
    samples = []
    for _ in range(calls):
        start = clock()
        fn(facts)
        samples.append(clock() - start)
    samples.sort()
    return statistics.median(samples) / 1000, samples[int(len(samples) * 0.99)] / 1000


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(tree_yaml())
        started = time.perf_counter()
        tree = load_tree(path)
        loaded = time.perf_counter()
        compiled = compile_tree(tree)
        done = time.perf_counter()
    print(f"tree: {len(tree.rules)} rules, {len(tree.numbers)} numbers")
    print(
        f"load+validate {1000 * (loaded - started):.1f} ms, compile {1000 * (done - loaded):.1f} ms"
    )
    wednesday = at("2027-03-03T10:30:00+01:00")  # a Wednesday, not a holiday
    cases = {
        "first rule": Facts("+3226123456", NUMBERS[20], wednesday, "drs"),
        "middle rule": Facts("+3226123456", NUMBERS[20], wednesday),
        "last rule": Facts(None, NUMBERS[1], at("2027-03-06T03:00:00+01:00")),
        "no match": Facts("+3226123456", NUMBERS[39], at("2027-03-07T03:00:00+01:00")),
    }
    print(f"{'case':<12} {'rule':>12} {'median µs':>10} {'p99 µs':>8} {'interp. median µs':>18}")
    for name, facts in cases.items():
        decision = compiled.evaluate(facts)
        assert decision == interpret(tree, facts)
        rule = "-" if decision.rule is None else f"{decision.rule_index + 1} {decision.rule}"
        for _ in range(2000):  # warm up
            compiled.evaluate(facts)
        median, p99 = measure(compiled.evaluate, facts, 200_000)
        slow, _ = measure(lambda f: interpret(tree, f), facts, 2_000)
        print(f"{name:<12} {rule:>12} {median:>10.2f} {p99:>8.2f} {slow:>18.1f}")
    base = cases["middle rule"]
    moving = [Facts(base.caller, base.called, base.at + 60 * i) for i in range(50_000)]
    clock = time.perf_counter_ns
    start = clock()
    for facts in moving:
        compiled.evaluate(facts)
    per_call = (clock() - start) / len(moving) / 1000
    print(f"new wall-clock minute on every call (zoneinfo conversion each time): {per_call:.2f} µs")
    print(f"run on Python {sys.version.split()[0]}, {datetime.now(UTC):%Y-%m-%d}")


if __name__ == "__main__":
    main()
