"""The configuration file: every key validated, FILE:LINE:COL for each problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from configkit import problems_of

from engine.config import SipSettings, load_config, parse_hostport
from engine.passwords import hash_password, is_hash, verify_password

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vms.yaml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    return problems_of(write(tmp_path, text))


def test_the_demo_configuration_is_valid() -> None:
    config = load_config(ROOT / "config" / "vms.yaml")
    assert config.sip.listen == ("127.0.0.1", 5060)
    assert config.portal == ("127.0.0.1", 8080)
    assert config.trees == (ROOT / "routing_trees" / "examples").resolve()
    assert config.data_dir == (ROOT / "var").resolve()
    assert config.drs_service_number == "+3278150000"
    assert config.customers["acme"].numbers == ("+3225551234", "+3225551235")
    assert config.customers["acme"].profile().options == {"acm", "recording", "statistics"}


def test_the_contract_example_is_valid(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, f"""\
sip:   {{listen: "127.0.0.1:5060", trunk: "127.0.0.1:5080", mode: b2bua}}
state: memory
data_dir: var/
trees: {ROOT}/routing_trees/examples/
portal: {{listen: "127.0.0.1:8080"}}
drs:   {{service_number: "+3278150000", max_days: 31}}
customers:
  acme:
    formula: classic
    options: [acm, recording, statistics]
    numbers: ["+3225551234"]
    customer_number: "4711"
    drs_password: "{hash_password("secret")}"
"""))
    assert config.sip.mode == "b2bua"
    assert config.data_dir == (tmp_path / "var").resolve()
    assert config.drs_max_days == 31


def test_defaults() -> None:
    assert SipSettings().peers == ("127.0.0.0/8", "::1/128")
    assert SipSettings().overload.max_delay == 0.2


def test_unknown_keys_with_did_you_mean_and_types(tmp_path: Path) -> None:
    assert problems(tmp_path, """\
sip:
  listen: "127.0.0.1:99999"
  mdoe: redirect
  peers: [127.0.0.1, not-an-address]
  timers: {t1: fast}
trees: trees/
portal: {listen: 8080x}
state: mysql://x
""") == [
        "F:2:11: sip.listen: '99999' is not a port number (1-65535)",
        "F:3:3: unknown key 'mdoe' in sip (did you mean 'mode'?)",
        "F:4:22: sip.peers: 'not-an-address' is not an address or network (or 'open')",
        "F:5:16: sip.timers.t1 must be a number, not 'fast'",
        "F:8:8: state must be 'memory' or redis://[:PASSWORD@]HOST[:PORT][/DB], not "
        "'mysql://x': the scheme must be redis://",
    ]


def test_customers_numbers_formulas_options_and_passwords(tmp_path: Path) -> None:
    assert problems(tmp_path, """\
trees: trees/
customers:
  acme:
    formula: classic
    options: [acm, recordings]
    numbers: ["+32475123456", "0800 12 345", "02 555 12 34"]
    customer_number: "47a"
    drs_password: "plain text"
  globex:
    formula: outbound
    options: [acm]
    numbers: ["025551234"]
  initech:
    formula: premium
    numbers: []
""") == [
        "F:5:20: customer 'acme': unknown option 'recordings' "
        "(options: acm, recording, statistics)",
        "F:6:15: customer 'acme': +32475123456 is a mobile number; "
        "VMS serves geographic numbers only",
        "F:6:31: customer 'acme': +3280012345 is a freephone (0800) number; "
        "VMS serves geographic numbers only",
        "F:7:22: customer 'acme': customer_number must be digits (it is keyed on a phone)",
        "F:8:19: customer 'acme': drs_password must be a hash made by `vms passwd`, "
        "not a password",
        "F:9:3: number +3225551234 belongs to both customer 'acme' and customer 'globex'",
        "F:11:15: customer 'globex': the outbound formula does not offer the 'acm' option",
        "F:14:14: customer 'initech' formula must be one of classic, drs, continuity, "
        "outbound, not 'premium'",
    ]


def test_yaml_syntax_error_and_missing_trees(tmp_path: Path) -> None:
    (line,) = problems(tmp_path, "sip: {listen: [\n")
    assert line.startswith("F:2:1: YAML syntax error: ")
    assert problems(tmp_path, "state: memory\n") == [
        "F:1:1: the configuration lacks the required key 'trees'"
    ]


@pytest.mark.parametrize(
    ("text", "want"),
    [("127.0.0.1:5080", ("127.0.0.1", 5080)), ("trunk.example.com", ("trunk.example.com", 5060)),
     ("[::1]:5062", ("::1", 5062))],
)  # fmt: skip
def test_parse_hostport(text: str, want: tuple[str, int]) -> None:
    assert parse_hostport(text) == want


def test_password_hashes_are_salted_scrypt_and_verify_in_constant_time() -> None:
    first, second = hash_password("4711-demo"), hash_password("4711-demo")
    assert first != second and first.startswith("scrypt$16384$8$1$")
    assert is_hash(first) and not is_hash("4711-demo")
    assert verify_password("4711-demo", first)
    assert not verify_password("4711-dem0", first)
    assert not verify_password("4711-demo", "scrypt$3$8$1$AAAA$AAAA")  # n not a power of 2
