"""Validation: one test per problem class, each asserting the full FILE:LINE:COL line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
from test_trees_kit import HEAD, problems, tree, workdir

from routing_trees.model import CustomerProfile, Forward, Menu, Queue, Split

__all__ = ["workdir"]

ACME = CustomerProfile(
    "acme",
    "classic",
    frozenset({"acm"}),
    frozenset({"+3225551234", "+3225551235", "+3225551299"}),
    frozenset({"sales", "support"}),
)


# -- structure and keys ----------------------------------------------------------


def test_unknown_top_level_key_with_did_you_mean(workdir: Path) -> None:
    assert problems(HEAD + "rotes: []\n") == [
        "t.yaml:1:1: the tree lacks the required key 'routes'",
        "t.yaml:4:1: unknown key 'rotes' in the tree (did you mean 'routes'?)",
    ]


def test_unknown_rule_key(workdir: Path) -> None:
    assert problems(HEAD + "routes:\n  - wen: {}\n    do: {reject: 480}\n") == [
        "t.yaml:5:5: unknown key 'wen' in rule 1 (did you mean 'when'?)",
    ]


def test_unknown_criterion(workdir: Path) -> None:
    text = HEAD + "routes:\n  - name: day\n    when: {tmie: mon}\n    do: {reject: 480}\n"
    assert problems(text) == [
        "t.yaml:6:12: unknown key 'tmie' in the when of rule 'day' (did you mean 'time'?)",
    ]


def test_unknown_key_inside_nested_action(workdir: Path) -> None:
    text = HEAD + (
        "routes:\n"
        "  - name: day\n"
        "    do:\n"
        '      forward: "+3225550001"\n'
        '      on_busy: {forward: "+3225550002", timout: 5}\n'
    )
    assert problems(text) == [
        "t.yaml:8:41: unknown key 'timout' in on_busy in rule 'day' (did you mean 'timeout'?)",
    ]


def test_duplicate_key(workdir: Path) -> None:
    text = HEAD + "routes:\n  - do: {reject: 480}\n    do: {reject: 486}\n"
    assert problems(text) == ["t.yaml:6:5: duplicate key 'do' in rule 1"]


def test_version_must_be_1(workdir: Path) -> None:
    text = HEAD.replace("version: 1", "version: 2") + "routes:\n  - do: {reject: 480}\n"
    assert problems(text) == ["t.yaml:1:10: version must be 1, not 2"]


def test_not_a_mapping_empty_and_syntax_error(workdir: Path) -> None:
    assert problems("- a\n- b\n") == ["t.yaml:1:1: the tree must be a mapping, not a list"]
    assert problems("") == ["t.yaml:1:1: the file is empty"]
    assert problems("version: [1\n") == [
        "t.yaml:2:1: YAML syntax error: expected ',' or ']', but got '<stream end>'"
    ]
    assert problems("a: " + "[" * 3000 + "\n") == ["t.yaml:1:1: the YAML is nested too deeply"]


# -- numbers, timezone -------------------------------------------------------------


def test_tree_numbers_must_be_geographic(workdir: Path) -> None:
    text = (
        "version: 1\ncustomer: acme\n"
        'numbers: ["+32475123456", "080012345", "+3270123456", "+442071234567", "x1"]\n'
        "routes:\n  - do: {reject: 480}\n"
    )
    assert problems(text) == [
        "t.yaml:3:11: +32475123456 is a mobile number; a tree serves geographic numbers only",
        "t.yaml:3:27: +3280012345 is a freephone (0800) number; "
        "a tree serves geographic numbers only",
        "t.yaml:3:40: +3270123456 is a shared-cost (070) number; "
        "a tree serves geographic numbers only",
        "t.yaml:3:55: +442071234567 is a foreign number; a tree serves geographic numbers only",
        "t.yaml:3:72: 'x1' is not a phone number: "
        "write it as +3225551234, 003225551234 or 025551234",
    ]


def test_number_without_plus_gets_a_hint_and_duplicates_are_caught(workdir: Path) -> None:
    text = (
        "version: 1\ncustomer: acme\n"
        "numbers:\n  - 3225551234\n  - 02 555 12 35\n  - +3225551235\n"
        "routes:\n  - do: {reject: 480}\n"
    )
    assert problems(text) == [
        "t.yaml:4:5: '3225551234' is not a phone number (did you mean '+3225551234'?): "
        "write it as +3225551234, 003225551234 or 025551234",
        "t.yaml:6:5: number +3225551235 is listed twice (first on line 5)",
    ]


def test_numbers_must_not_be_empty(workdir: Path) -> None:
    text = "version: 1\ncustomer: acme\nnumbers: []\nroutes:\n  - do: {reject: 480}\n"
    assert problems(text) == ["t.yaml:3:10: numbers must list at least one number"]


def test_unknown_timezone(workdir: Path) -> None:
    text = HEAD + "timezone: Europe/Brussel\nroutes:\n  - do: {reject: 480}\n"
    assert problems(text) == [
        "t.yaml:4:11: unknown timezone 'Europe/Brussel' (did you mean 'Europe/Brussels'?): "
        "use an IANA name such as Europe/Brussels",
    ]


def test_timezone_defaults_to_brussels(workdir: Path) -> None:
    assert tree(HEAD + "routes:\n  - do: {reject: 480}\n").timezone == "Europe/Brussels"


# -- lists, calendars, prompts --------------------------------------------------------


def test_list_entries_are_normalised(workdir: Path) -> None:
    text = HEAD + (
        'lists:\n  vip: ["0475 12 34 56", "026*", "003290*", "+32 2 55*"]\n'
        "routes:\n  - do: {reject: 480}\n"
    )
    assert tree(text).lists["vip"].entries == ("+32475123456", "+3226*", "+3290*", "+32255*")


def test_bad_list_entries(workdir: Path) -> None:
    text = HEAD + 'lists:\n  vip: ["+32x*", "hello"]\nroutes:\n  - do: {reject: 480}\n'
    assert problems(text) == [
        "t.yaml:5:9: '+32x*' in list 'vip' is not a number prefix: write e.g. +3226* or 026*",
        "t.yaml:5:18: 'hello' in list 'vip' is not a phone number or a prefix ending in *: "
        "write it as +3225551234, 003225551234 or 025551234",
    ]


def test_undefined_list_with_did_you_mean(workdir: Path) -> None:
    text = HEAD + (
        'lists:\n  vip: ["+32475123456"]\n'
        "routes:\n"
        "  - when: {caller_in: vips}\n    do: {reject: 480}\n"
    )
    assert problems(text) == ["t.yaml:7:23: undefined list 'vips' (did you mean 'vip'?)"]


def test_undefined_list_when_there_are_none(workdir: Path) -> None:
    text = HEAD + "routes:\n  - when: {caller_in: vip}\n    do: {reject: 480}\n"
    assert problems(text) == ["t.yaml:5:23: undefined list 'vip': the tree defines no lists"]


def test_bad_calendar_dates(workdir: Path) -> None:
    text = HEAD + (
        "calendars:\n"
        '  off: ["2026-13-01", "25/12/2026", "2027-01-05..2027-01-01", "2027-01-01..2028-06-01"]\n'
        "routes:\n  - do: {reject: 480}\n"
    )
    assert problems(text) == [
        "t.yaml:5:9: '2026-13-01' in calendar 'off' is not a date: "
        "write YYYY-MM-DD, or YYYY-MM-DD..YYYY-MM-DD for a range",
        "t.yaml:5:23: '25/12/2026' in calendar 'off' is not a date: "
        "write YYYY-MM-DD, or YYYY-MM-DD..YYYY-MM-DD for a range",
        "t.yaml:5:37: the range '2027-01-05..2027-01-01' ends before it starts",
        "t.yaml:5:63: the range '2027-01-01..2028-06-01' spans 518 days; a range spans at most 366",
    ]


def test_calendar_ranges_expand(workdir: Path) -> None:
    text = HEAD + (
        'calendars:\n  summer: ["2027-07-30..2027-08-02", 2027-12-25]\nroutes:\n'
        "  - do: {reject: 480}\n"
    )
    days = sorted(d.isoformat() for d in tree(text).calendars["summer"].dates)
    assert days == ["2027-07-30", "2027-07-31", "2027-08-01", "2027-08-02", "2027-12-25"]


def test_undefined_calendar(workdir: Path) -> None:
    text = HEAD + (
        'calendars:\n  holidays: ["2026-12-25"]\n'
        "routes:\n  - when: {date_in: holiday}\n    do: {reject: 480}\n"
    )
    assert problems(text) == [
        "t.yaml:7:21: undefined calendar 'holiday' (did you mean 'holidays'?)"
    ]


def test_prompt_missing_file(workdir: Path) -> None:
    text = HEAD + "prompts:\n  closed: prompts/gone.wav\nroutes:\n  - do: {announce: closed}\n"
    assert problems(text) == [
        "t.yaml:5:11: prompt 'closed': prompts/gone.wav does not exist "
        "(prompt paths are relative to the tree file)",
    ]


def test_prompt_wrong_format(workdir: Path) -> None:
    frames = np.zeros((4410, 2), dtype=np.float32)
    soundfile.write("prompts/hifi.wav", frames, 44100, subtype="PCM_16")
    text = HEAD + "prompts:\n  closed: prompts/hifi.wav\nroutes:\n  - do: {announce: closed}\n"
    assert problems(text) == [
        "t.yaml:5:11: prompt 'closed': prompts/hifi.wav is PCM 16 bit, stereo, 44100 Hz; "
        "a prompt must be PCM 11025 Hz, 8 bit, mono WAV",
    ]


def test_prompt_paths_are_relative_to_the_tree_file(workdir: Path) -> None:
    Path("sub").mkdir()
    Path("sub/prompts").symlink_to(workdir / "prompts")
    text = HEAD + "prompts:\n  closed: prompts/closed-nl.wav\nroutes:\n  - do: {announce: closed}\n"
    loaded = tree(text, name="sub/t.yaml")
    assert loaded.prompts["closed"].path == Path("sub/prompts/closed-nl.wav")


def test_undefined_prompt(workdir: Path) -> None:
    text = HEAD + (
        "prompts:\n  closed: prompts/closed-nl.wav\nroutes:\n  - do: {announce: closd}\n"
    )
    assert problems(text) == ["t.yaml:7:20: undefined prompt 'closd' (did you mean 'closed'?)"]


# -- routes and criteria -------------------------------------------------------------


def test_routes_must_not_be_empty(workdir: Path) -> None:
    assert problems(HEAD + "routes: []\n") == ["t.yaml:4:9: routes must list at least one rule"]


def test_rule_needs_do(workdir: Path) -> None:
    assert problems(HEAD + "routes:\n  - name: x\n") == [
        "t.yaml:5:5: rule 1 lacks the required key 'do'"
    ]


def test_rule_names_default_and_must_be_unique(workdir: Path) -> None:
    ok = HEAD + "routes:\n  - when: {mode: drs}\n    do: {reject: 480}\n  - do: {reject: 486}\n"
    assert [r.name for r in tree(ok).rules] == ["rule-1", "rule-2"]
    clash = HEAD + (
        "routes:\n"
        "  - name: a\n    when: {mode: drs}\n    do: {reject: 480}\n"
        "  - name: a\n    do: {reject: 486}\n"
    )
    assert problems(clash) == ["t.yaml:8:11: rule name 'a' is already used on line 5"]


def test_time_syntax_error_points_inside_the_string(workdir: Path) -> None:
    text = HEAD + (
        "routes:\n"
        '  - when: {time: "mon-fri 08:00-18:60"}\n    do: {reject: 480}\n'
        "  - when:\n      time: mon-fri 08:00-18:00, thur 09:00-12:00\n    do: {reject: 486}\n"
    )
    assert problems(text) == [
        "t.yaml:5:36: time: minutes must be 00-59, not 60",
        "t.yaml:8:34: time: unknown weekday 'thur' (did you mean 'thu'?)",
    ]


def test_bad_criterion_values(workdir: Path) -> None:
    text = HEAD + (
        "routes:\n"
        "  - when: {caller: nobody}\n    do: {reject: 480}\n"
        "  - when: {anonymous: maybe}\n    do: {reject: 480}\n"
        '  - when: {called: "+3225559999"}\n    do: {reject: 480}\n'
        "  - when: {mode: dsr}\n    do: {reject: 480}\n"
    )
    assert problems(text) == [
        "t.yaml:5:20: 'nobody' in caller is not a phone number or a prefix ending in *: "
        "write it as +3225551234, 003225551234 or 025551234",
        "t.yaml:7:23: anonymous must be true or false, not 'maybe'",
        "t.yaml:9:20: called +3225559999 is not one of this tree's numbers "
        "(+3225551234, +3225551235)",
        "t.yaml:11:18: unknown mode 'dsr' (did you mean 'drs'?): use normal, drs or continuity",
    ]


def test_anonymous_with_caller_can_never_hold(workdir: Path) -> None:
    text = HEAD + (
        'routes:\n  - name: x\n    when: {anonymous: true, caller: "+3226*"}\n'
        "    do: {reject: 480}\n"
    )
    assert problems(text) == [
        "t.yaml:6:12: rule 'x' can never hold: anonymous: true means no number, "
        "so caller and caller_in cannot match",
    ]


# -- actions ---------------------------------------------------------------------------


def test_two_actions_in_one_do(workdir: Path) -> None:
    text = HEAD + 'routes:\n  - name: x\n    do: {forward: "+3225550001", reject: 486}\n'
    assert problems(text) == [
        "t.yaml:6:34: the action of rule 'x' has two actions, 'forward' and 'reject': "
        "a do holds exactly one; put the second under an outcome "
        "(on_busy, on_no_answer, ..., then)",
    ]


def test_modifier_of_another_action(workdir: Path) -> None:
    text = HEAD + (
        "prompts:\n  closed: prompts/closed-nl.wav\n"
        "routes:\n  - name: x\n    do: {announce: closed, timeout: 20}\n"
    )
    assert problems(text) == [
        "t.yaml:8:28: 'timeout' does not apply to announce (it belongs to forward and menu); "
        "announce takes then",
    ]


def test_then_after_forward_is_refused(workdir: Path) -> None:
    text = HEAD + 'routes:\n  - name: x\n    do: {forward: "+3225550001", then: {reject: 486}}\n'
    assert problems(text) == [
        "t.yaml:6:34: 'then' does not apply to forward (it belongs to announce); forward takes "
        "timeout, max_calls, on_busy, on_no_answer, on_unreachable, on_overflow",
    ]


def test_do_without_an_action(workdir: Path) -> None:
    text = HEAD + "routes:\n  - name: x\n    do: {timeout: 20}\n"
    assert problems(text) == [
        "t.yaml:6:9: the action of rule 'x' names no action: "
        "give one of forward, announce, queue, menu, split, reject",
    ]


def test_forward_values(workdir: Path) -> None:
    text = HEAD + (
        "routes:\n  - name: x\n"
        '    do: {forward: "+32 2 555 00 01", timeout: 900, max_calls: 0}\n'
        "  - name: y\n    do: {forward: 12}\n"
    )
    assert problems(text) == [
        "t.yaml:6:47: forward timeout must be at most 600, not 900",
        "t.yaml:6:63: max_calls must be at least 1, not 0",
        "t.yaml:8:19: forward '12' is not a phone number: "
        "write it as +3225551234, 003225551234 or 025551234",
    ]


def test_forward_accepts_mobile_and_foreign_numbers(workdir: Path) -> None:
    text = HEAD + (
        'routes:\n  - do: {forward: "0475 99 99 99", on_busy: {forward: "0044 20 7123 4567"}}\n'
    )
    action = tree(text).rules[0].do
    assert isinstance(action, Forward)
    assert action.number == "+32475999999"
    assert isinstance(action.on_busy, Forward)
    assert action.on_busy.number == "+442071234567"


def test_reject_codes(workdir: Path) -> None:
    text = HEAD + "routes:\n  - when: {mode: drs}\n    do: {reject: 302}\n  - do: {reject: 700}\n"
    assert problems(text) == [
        "t.yaml:6:18: reject needs a SIP final response code from 400 to 699, not 302",
        "t.yaml:7:18: reject needs a SIP final response code from 400 to 699, not 700",
    ]


def test_split_weights_must_add_up(workdir: Path) -> None:
    text = HEAD + (
        "routes:\n  - do:\n"
        "      split:\n"
        '        - {weight: 70, do: {forward: "+3225550002"}}\n'
        "        - {weight: 20, do: {reject: 486}}\n"
    )
    assert problems(text) == [
        "t.yaml:6:7: split weights add up to 90; they must add up to 100",
    ]


def test_split_weight_must_be_positive(workdir: Path) -> None:
    text = HEAD + (
        "routes:\n  - do:\n"
        "      split:\n"
        '        - {weight: 0, do: {forward: "+3225550002"}}\n'
        "        - {weight: 100, do: {reject: 486}, wieght: 3}\n"
    )
    assert problems(text) == [
        "t.yaml:7:20: split weight must be at least 1, not 0",
        "t.yaml:8:44: unknown key 'wieght' in split branch 2 (did you mean 'weight'?)",
    ]


def test_menu_both_shapes_and_bad_option_keys(workdir: Path) -> None:
    good = HEAD + (
        "prompts:\n  closed: prompts/closed-nl.wav\n"
        "routes:\n"
        "  - when: {mode: drs}\n"
        "    do:\n"
        "      menu: closed\n"
        '      options: {"1": {forward: "+3225550001"}, "#": {reject: 486}}\n'
        "      timeout: 8\n"
        "  - do:\n"
        "      menu:\n"
        "        prompt: closed\n"
        '        options: {"*": {queue: sales}}\n'
        "        retries: 0\n"
        "        on_timeout: {reject: 480}\n"
    )
    first, second = (r.do for r in tree(good).rules)
    assert isinstance(first, Menu)
    assert isinstance(second, Menu)
    assert (first.timeout, first.retries, sorted(first.options)) == (8, 2, ["#", "1"])
    assert (second.timeout, second.retries, list(second.options)) == (5, 0, ["*"])
    assert isinstance(second.options["*"], Queue)
    bad = HEAD + (
        "prompts:\n  closed: prompts/closed-nl.wav\n"
        "routes:\n"
        '  - do: {menu: closed, options: {"12": {reject: 486}}}\n'
    )
    assert problems(bad) == [
        "t.yaml:7:34: menu option '12' is not one DTMF key: use 0-9, * or #",
    ]


def test_menu_needs_options(workdir: Path) -> None:
    text = HEAD + "prompts:\n  closed: prompts/closed-nl.wav\nroutes:\n  - do: {menu: closed}\n"
    assert problems(text) == ['t.yaml:7:10: menu needs options: {"1": action, ...}']


def test_split_holds_branches(workdir: Path) -> None:
    text = HEAD + (
        "routes:\n  - do:\n      split:\n"
        '        - {weight: 70, do: {forward: "+3225550002"}}\n'
        "        - {weight: 30, do: {queue: support}}\n"
    )
    action = tree(text).rules[0].do
    assert isinstance(action, Split)
    assert [w for w, _ in action.branches] == [70, 30]


# -- across the file -------------------------------------------------------------------


def test_rule_after_one_that_always_holds_is_unreachable(workdir: Path) -> None:
    text = HEAD + (
        "routes:\n"
        "  - name: all\n    do: {reject: 480}\n"
        "  - name: late\n    when: {mode: drs}\n    do: {reject: 486}\n"
        "  - name: empty\n    when: {}\n    do: {reject: 486}\n"
    )
    assert problems(text) == [
        "t.yaml:7:5: rule 'late' can never match: rule 'all' (line 5) comes first and always holds",
        "t.yaml:10:5: rule 'empty' can never match: rule 'all' (line 5) comes first "
        "and always holds",
    ]


def test_rule_with_superset_criteria_is_unreachable(workdir: Path) -> None:
    text = HEAD + (
        'lists:\n  vip: ["+32475123456", "+3226*"]\n'
        "routes:\n"
        '  - name: day\n    when: {time: "mon-fri 08:00-18:00"}\n    do: {reject: 480}\n'
        "  - name: vip-day\n"
        '    when: {time: "mon-fri 08:00-18:00", caller_in: vip}\n    do: {reject: 486}\n'
        '  - name: brussels\n    when: {caller: "+322*"}\n    do: {reject: 480}\n'
        '  - name: ixelles\n    when: {caller: "02 6*", mode: drs}\n    do: {reject: 486}\n'
        '  - name: morning\n    when: {time: "tue 09:00-10:00"}\n    do: {reject: 486}\n'
    )
    assert problems(text) == [
        "t.yaml:10:5: rule 'vip-day' can never match: rule 'day' (line 7) comes first "
        "and holds whenever it does",
        "t.yaml:16:5: rule 'ixelles' can never match: rule 'brussels' (line 13) comes first "
        "and holds whenever it does",
        "t.yaml:19:5: rule 'morning' can never match: rule 'day' (line 7) comes first "
        "and holds whenever it does",
    ]


def test_forward_looping_into_own_number(workdir: Path) -> None:
    text = HEAD + (
        'routes:\n  - do: {forward: "+3225550001", on_busy: {forward: "02 555 12 35"}}\n'
    )
    assert problems(text) == [
        "t.yaml:5:53: forward to +3225551235 loops back into this tree (one of its numbers)",
    ]


def test_nesting_deeper_than_max_depth(workdir: Path) -> None:
    nested = "{reject: 486}"
    for _ in range(8):
        nested = f'{{forward: "+3225550001", on_busy: {nested}}}'
    text = HEAD + f"routes:\n  - name: deep\n    do: {nested}\n"
    column = 9 + 8 * len('{forward: "+3225550001", on_busy: ')
    assert problems(text) == [
        f"t.yaml:6:{column}: on_busy.on_busy.on_busy.on_busy.on_busy.on_busy.on_busy.on_busy "
        "in rule 'deep' nests 9 actions deep; the limit is 8 (MAX_DEPTH): flatten this branch",
    ]


def test_all_problems_in_one_pass_sorted(workdir: Path) -> None:
    text = (
        "version: 1\ncustomer: acme\n"
        "routes:\n  - do: {reject: 200}\n"
        'numbers: ["+32475123456"]\n'
        "colour: red\n"
    )
    assert problems(text) == [
        "t.yaml:4:18: reject needs a SIP final response code from 400 to 699, not 200",
        "t.yaml:5:11: +32475123456 is a mobile number; a tree serves geographic numbers only",
        "t.yaml:6:1: unknown key 'colour' in the tree",
    ]


# -- against the customer's profile ----------------------------------------------------------


def test_unknown_customer(workdir: Path) -> None:
    text = HEAD.replace("acme", "acne") + "routes:\n  - do: {reject: 480}\n"
    assert problems(text, {"acme": ACME}) == [
        "t.yaml:2:11: unknown customer 'acne' (did you mean 'acme'?)"
    ]
    assert problems(text, {}) == [
        "t.yaml:2:11: unknown customer 'acne': the configuration defines no customers"
    ]


def test_outbound_customer_has_no_tree(workdir: Path) -> None:
    outbound = CustomerProfile("acme", "outbound", frozenset(), ACME.numbers)
    assert problems(HEAD + "routes:\n  - do: {reject: 480}\n", {"acme": outbound}) == [
        "t.yaml:2:11: customer 'acme' (formula outbound) has no traffic routing (TRM): "
        "a routing tree cannot serve it",
    ]


def test_numbers_the_customer_does_not_own(workdir: Path) -> None:
    small = CustomerProfile("acme", "classic", frozenset(), frozenset({"+3225551234"}))
    assert problems(HEAD + "routes:\n  - do: {reject: 480}\n", {"acme": small}) == [
        "t.yaml:3:26: +3225551235 is not a number of customer 'acme' (formula classic): "
        "add it to the customer's numbers in the configuration, or remove it here",
    ]


def test_queue_needs_the_acm_option(workdir: Path) -> None:
    plain = CustomerProfile("acme", "drs", frozenset({"recording"}), ACME.numbers)
    assert problems(HEAD + "routes:\n  - do: {queue: sales}\n", {"acme": plain}) == [
        "t.yaml:5:10: queue needs Agent Contact Management, but customer 'acme' "
        "(formula drs) lacks the 'acm' option",
    ]


def test_queue_groups_are_checked_when_known(workdir: Path) -> None:
    text = HEAD + "routes:\n  - do: {queue: sale}\n"
    assert problems(text, {"acme": ACME}) == [
        "t.yaml:5:17: undefined ACM group 'sale' of customer 'acme' (did you mean 'sales'?)"
    ]
    unknown_groups = CustomerProfile("acme", "classic", frozenset({"acm"}), ACME.numbers, None)
    assert problems(text, {"acme": unknown_groups}) == []


def test_forward_into_another_number_of_the_customer(workdir: Path) -> None:
    text = HEAD + 'routes:\n  - do: {forward: "+3225551299"}\n'
    assert problems(text) == []
    assert problems(text, {"acme": ACME}) == [
        "t.yaml:5:19: forward to +3225551299 loops back into customer 'acme' "
        "(one of its VMS numbers)",
    ]
