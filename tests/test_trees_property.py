"""Property tests: the compiled evaluator always agrees with the interpretive one."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from routing_trees.compile import compile_tree
from routing_trees.evaluate import interpret
from routing_trees.facts import Facts
from routing_trees.model import MODES, Calendar, CallerList, Criteria, Reject, Rule, Tree
from routing_trees.numbers import to_e164
from routing_trees.timewindows import DAYS, MINUTES_PER_DAY, MINUTES_PER_WEEK, parse_windows

NUMBERS = ("+3225551234", "+3225551235", "+3232012000")
CALLERS = (
    "+32475000001",
    "+32475000002",
    "+3226000001",
    "+3226100001",
    "+3290123456",
    "+442071234567",
    "+3225551234",
)
PATTERNS = (*CALLERS[:4], "+3226*", "+32261*", "+32475*", "+44*", "+32*", "+3290*")
WINDOWS = (
    "mon-fri 08:00-18:00",
    "sat 09:00-12:00",
    "fri 22:00-06:00",
    "sun 22:00-06:00",
    "fri-mon 10:00-24:00",
    "sun",
    "02:00-03:00",
    "sun 01:30-03:30",
    "mon-fri 08:00-18:00, sat 09:00-12:00",
    "wed 12:00-12:01",
)
ZONES = ("Europe/Brussels", "America/New_York", "UTC", "Asia/Kolkata")
DAY0 = date(2026, 3, 20)
DATES = [DAY0 + timedelta(days=i) for i in range(20)] + [
    date(2026, 10, 20) + timedelta(days=i) for i in range(10)
]
DST_DAYS = [
    datetime(2026, 3, 29, tzinfo=ZoneInfo("UTC")).timestamp(),
    datetime(2026, 10, 25, tzinfo=ZoneInfo("UTC")).timestamp(),
    datetime(2026, 3, 8, tzinfo=ZoneInfo("UTC")).timestamp(),
    datetime(2026, 11, 1, tzinfo=ZoneInfo("UTC")).timestamp(),
]


def _subset(items: tuple[str, ...] | list[str]) -> st.SearchStrategy[tuple[str, ...]]:
    """Mostly absent (so that rules often hold), else one to three values."""
    some = st.lists(st.sampled_from(list(items)), min_size=1, max_size=3, unique=True)
    return st.one_of(st.just(()), st.just(()), some.map(tuple))


criteria = st.builds(
    Criteria,
    time=st.one_of(st.none(), st.none(), st.sampled_from(WINDOWS).map(parse_windows)),
    date_in=_subset(["holidays", "closures"]),
    caller=_subset(PATTERNS),
    caller_in=_subset(["vip", "blocked", "empty"]),
    anonymous=st.sampled_from([None, None, True, False]),
    called=_subset(NUMBERS),
    mode=_subset(MODES),
)


@st.composite
def trees(draw: st.DrawFn) -> Tree:
    lists = {
        name: CallerList(name, tuple(draw(st.lists(st.sampled_from(PATTERNS), max_size=4))))
        for name in ("vip", "blocked", "empty")
    }
    calendars = {
        name: Calendar(name, frozenset(draw(st.lists(st.sampled_from(DATES), max_size=8))))
        for name in ("holidays", "closures")
    }
    whens = draw(st.lists(criteria, min_size=0, max_size=14))
    rules = tuple(Rule(f"r{i}", i, when, Reject(400 + i)) for i, when in enumerate(whens))
    return Tree(
        file="h.yaml",
        customer="h",
        numbers=NUMBERS,
        timezone=draw(st.sampled_from(ZONES)),
        lists=MappingProxyType(lists),
        calendars=MappingProxyType(calendars),
        prompts=MappingProxyType({}),
        rules=rules,
    )


DAY_STARTS = [datetime(d.year, d.month, d.day, tzinfo=ZoneInfo("UTC")).timestamp() for d in DATES]
moments = st.one_of(
    st.floats(min_value=DST_DAYS[0] - 86400 * 10, max_value=DST_DAYS[1] + 86400 * 10),
    st.sampled_from(DST_DAYS).flatmap(
        lambda day: st.floats(min_value=day - 86400, max_value=day + 2 * 86400)
    ),
    # Right on, just before and just after whole and half hours: where windows begin and end.
    st.builds(
        lambda day, hour, minute, second: day + hour * 3600 + minute + second,
        st.sampled_from(DAY_STARTS),
        st.integers(0, 23),
        st.sampled_from([-60, 0, 60, 1740, 1800, 1860]),
        st.sampled_from([0, 30, 59.5]),
    ),
)
facts = st.builds(
    Facts,
    caller=st.none() | st.sampled_from(CALLERS),
    called=st.sampled_from((*NUMBERS, "+3229999999")),
    at=moments,
    mode=st.sampled_from(MODES),
)


@settings(max_examples=400, deadline=None)
@given(trees(), st.lists(facts, min_size=1, max_size=12))
def test_compiled_agrees_with_interpreted(tree: Tree, calls: list[Facts]) -> None:
    compiled = compile_tree(tree)
    for call in calls:
        assert compiled.evaluate(call) == interpret(tree, call)


half_hours = st.integers(0, 47).map(lambda h: f"{h // 2:02d}:{30 * (h % 2):02d}")
windows = st.builds(
    lambda first, last, start, end: f"{first}-{last} {start}-{end}",
    st.sampled_from(DAYS),
    st.sampled_from(DAYS),
    half_hours,
    half_hours | st.just("24:00"),
).filter(lambda spec: spec.split()[1][:5] != spec.split()[1][6:])


@st.composite
def timed_trees(draw: st.DrawFn) -> Tree:
    specs = draw(st.lists(st.lists(windows, min_size=1, max_size=3), min_size=1, max_size=10))
    rules = tuple(
        Rule(f"r{i}", i, Criteria(time=parse_windows(", ".join(spec))), Reject(400 + i))
        for i, spec in enumerate(specs)
    )
    zone = draw(st.sampled_from(ZONES))
    return Tree("h.yaml", "h", NUMBERS, zone, {}, {}, {}, rules)


@settings(max_examples=300, deadline=None)
@given(timed_trees(), st.lists(moments, min_size=1, max_size=20))
def test_compiled_agrees_on_window_edges(tree: Tree, instants: list[float]) -> None:
    compiled = compile_tree(tree)
    for instant in instants:
        call = Facts("+3226000001", NUMBERS[0], instant)
        assert compiled.evaluate(call) == interpret(tree, call)


@given(
    st.sampled_from(DAYS),
    st.sampled_from(DAYS),
    st.integers(0, 23 * 60 + 59),
    st.integers(1, 24 * 60),
)
def test_windows_match_their_definition(first: str, last: str, start: int, end: int) -> None:
    if start == end:
        return
    spec = f"{first}-{last} {start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"
    windows = parse_windows(spec)
    a, b = DAYS.index(first), DAYS.index(last)
    days = [(a + i) % 7 for i in range((b - a) % 7 + 1)]
    length = end - start if end > start else MINUTES_PER_DAY - start + end
    expected = {
        (d * MINUTES_PER_DAY + start + k) % MINUTES_PER_WEEK for d in days for k in range(length)
    }
    assert {m for m in range(MINUTES_PER_WEEK) if m in windows} == expected


digits = st.text("0123456789", min_size=8, max_size=9)


@given(digits, st.lists(st.sampled_from(" ./-"), max_size=4), st.randoms())
def test_separators_never_change_a_number(body: str, seps: list[str], rnd: object) -> None:
    plain = "0" + body
    spaced = list(plain)
    for sep in seps:
        spaced.insert(1 + rnd.randrange(len(spaced) - 1), sep)  # type: ignore[attr-defined]
    e164 = to_e164(plain)
    assert to_e164("".join(spaced)) == e164
    if e164 is not None:
        assert to_e164(e164) == e164
        assert to_e164("00" + e164[1:]) == e164
