"""Entitlements: the formula table, the run-time check, the configuration and the trees."""

from __future__ import annotations

from pathlib import Path

import pytest
from configkit import problems_of

from engine import cli
from engine.config import Customer, load_config
from engine.formulas import FORMULAS, Component, may, offers
from engine.passwords import hash_password
from routing_trees.entitlements import TRM_FORMULAS

STD, OPT = "standard", "option"

#: requirements.md, "Formulas": component -> (Classic, DRS, Voice Continuity, Outbound).
REQUIREMENTS = {
    "trm": (STD, STD, STD, None),
    "acm": (OPT, OPT, OPT, None),
    "campaigns": (None, None, None, STD),
    "recording": (OPT, None, None, None),
    "statistics": (OPT, None, None, OPT),
    "mobile": (None, None, STD, None),
}


@pytest.mark.parametrize("component", REQUIREMENTS)
def test_the_table_is_the_requirements_table(component: str) -> None:
    assert tuple(offers(f, component) for f in FORMULAS) == REQUIREMENTS[component]


def test_trees_and_the_table_agree_on_traffic_routing() -> None:
    assert {f for f in FORMULAS if offers(f, "trm")} == TRM_FORMULAS
    assert {f for f in FORMULAS if offers(f, "acm")} == TRM_FORMULAS


def customer(formula: str, *options: str, drs_password: str | None = None) -> Customer:
    return Customer("acme", formula, frozenset(options), ("+3225551234",),
                    drs_password=drs_password)  # fmt: skip


@pytest.mark.parametrize(
    ("who", "component", "message"),
    [
        (customer("classic", "recording"), "recording", None),
        (customer("classic"), "recording",
         "customer 'acme' (classic formula) has not ordered call recording: "
         "add 'recording' to customers.acme.options"),
        (customer("drs", "acm"), "recording",
         "customer 'acme' has the drs formula, which does not include call recording "
         "(an option of classic)"),
        (customer("outbound"), "campaigns", None),
        (customer("classic", "acm", "recording", "statistics"), "campaigns",
         "customer 'acme' has the classic formula, which does not include outbound campaigns "
         "(standard in outbound)"),
        (customer("outbound", "statistics"), "statistics", None),
        (customer("classic", "statistics"), "statistics", None),
        (customer("outbound"), "statistics",
         "customer 'acme' (outbound formula) has not ordered the statistics report: "
         "add 'statistics' to customers.acme.options"),
        (customer("continuity"), "statistics",
         "customer 'acme' has the continuity formula, which does not include the statistics "
         "report (an option of classic, outbound)"),
        (customer("drs"), "drs", None),
        (customer("classic", drs_password="scrypt$..."), "drs", None),
        (customer("classic"), "drs",
         "customer 'acme' (classic formula) has not ordered DRS: set "
         "customers.acme.drs_password (made by `vms passwd`)"),
        (customer("continuity", drs_password="scrypt$..."), "drs",
         "customer 'acme' has the continuity formula, which does not include DRS "
         "(standard in drs; an option of classic)"),
        (customer("outbound"), "drs",
         "customer 'acme' has the outbound formula, which does not include DRS "
         "(standard in drs; an option of classic)"),
        (customer("continuity"), "continuity", None),
        (customer("drs"), "continuity",
         "customer 'acme' has the drs formula, which does not include Voice Continuity "
         "(standard in continuity)"),
        (customer("classic", drs_password="scrypt$..."), "continuity",
         "customer 'acme' has the classic formula, which does not include Voice Continuity "
         "(standard in continuity)"),
        (customer("continuity"), "mobile", None),
        (customer("classic", "acm"), "acm", None),
        (customer("continuity"), "acm",
         "customer 'acme' (continuity formula) has not ordered Agent Contact Management: "
         "add 'acm' to customers.acme.options"),
        (customer("outbound"), "trm",
         "customer 'acme' has the outbound formula, which does not include Traffic Routing "
         "Management (standard in classic, drs, continuity)"),
    ],
)  # fmt: skip
def test_may(who: Customer, component: Component, message: str | None) -> None:
    assert may(who, component) == message


def write(tmp_path: Path, customers: str) -> Path:
    (tmp_path / "trees").mkdir(exist_ok=True)
    path = tmp_path / "vms.yaml"
    path.write_text(f"trees: trees/\ncustomers:\n{customers}")
    return path


def problems(tmp_path: Path, customers: str) -> list[str]:
    return problems_of(write(tmp_path, customers))


def test_the_configuration_refuses_options_the_formula_does_not_offer(tmp_path: Path) -> None:
    assert problems(tmp_path, """\
  a: {formula: drs, options: [acm, recording], numbers: ["+3225551234"]}
  b: {formula: continuity, options: [statistics], numbers: ["+3225551235"]}
  c: {formula: outbound, options: [acm, recording], numbers: ["+3225551236"]}
""") == [
        "F:3:36: customer 'a': the drs formula does not offer the 'recording' option",
        "F:4:38: customer 'b': the continuity formula does not offer the 'statistics' option",
        "F:5:36: customer 'c': the outbound formula does not offer the 'acm' option",
        "F:5:41: customer 'c': the outbound formula does not offer the 'recording' option",
    ]


def test_the_configuration_takes_every_option_a_formula_offers(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """\
  a: {formula: classic, options: [acm, recording, statistics], numbers: []}
  b: {formula: drs, options: [acm], numbers: []}
  c: {formula: continuity, options: [acm], numbers: []}
  d: {formula: outbound, options: [statistics], numbers: []}
"""))
    assert {cid: set(c.options) for cid, c in config.customers.items()} == {
        "a": {"acm", "recording", "statistics"}, "b": {"acm"}, "c": {"acm"}, "d": {"statistics"}
    }  # fmt: skip


TREE = """\
version: 1
customer: acme
numbers: ["+3225551234"]
routes:
  - do: {forward: "+3225550001", on_no_answer: {queue: sales}}
"""


@pytest.mark.parametrize(
    ("formula", "options", "out"),
    [
        ("classic", "[recording]",
         "t.yaml:5:49: queue needs Agent Contact Management, but customer 'acme' "
         "(formula classic) lacks the 'acm' option\n"),
        ("drs", "[]",
         "t.yaml:5:49: queue needs Agent Contact Management, but customer 'acme' "
         "(formula drs) lacks the 'acm' option\n"),
        ("outbound", "[]",
         "t.yaml:2:11: customer 'acme' (formula outbound) has no traffic routing (TRM): "
         "a routing tree cannot serve it\n"),
        ("continuity", "[acm]",  # the option, but no acm: section with the group
         "t.yaml:5:56: undefined ACM group 'sales' of customer 'acme': customer 'acme' "
         "has no ACM groups\n"),
    ],
)  # fmt: skip
def test_tree_validate_with_the_configuration_refuses_queues_without_acm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    formula: str, options: str, out: str,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    config = write(tmp_path, f"""\
  acme:
    formula: {formula}
    options: {options}
    numbers: ["+3225551234"]
    drs_password: "{hash_password("x")}"
""")
    Path("t.yaml").write_text(TREE)
    code = cli.main(["tree", "validate", "t.yaml", "--config", str(config)])
    assert (code, capsys.readouterr().out) == (0 if "valid" in out else 1, out)


def test_tree_validate_checks_queue_groups_against_the_configured_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    config = write(tmp_path, """\
  acme:
    formula: classic
    options: [acm]
    numbers: ["+3225551234"]
    acm:
      groups: {saless: {}}
      operators:
        anna: {numbers: ["+32470001104"], pin: "1234", groups: {saless: 3}}
""")
    Path("t.yaml").write_text(TREE)
    code = cli.main(["tree", "validate", "t.yaml", "--config", str(config)])
    out = capsys.readouterr().out
    assert (code, out) == (1, "t.yaml:5:56: undefined ACM group 'sales' of customer 'acme' "
                              "(did you mean 'saless'?)\n")
