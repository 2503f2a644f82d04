"""The sites, floods and billing sections of the configuration: values, defaults, problems."""

from __future__ import annotations

from pathlib import Path

from configkit import problems_of

from engine.config import BillingSettings, load_config
from engine.floods import FloodSettings, RateLimit
from engine.sites.health import Site


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vms.yaml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    return problems_of(write(tmp_path, text))


def test_the_issue_example(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """\
sip: {trunk: "127.0.0.1:5080"}
trees: trees/
sites:
  trunk:                        # a site named trunk with no address probes sip.trunk
    numbers: ["*"]              # everything goes through the trunk
  pbx-acme:
    address: "127.0.0.1:5090"   # host:port, UDP (optional transport: udp|tcp)
    numbers: ["+3225550*", "+3225550001"]
    interval: 5
    timeout: 2
    down_after: 3
    up_after: 2
"""))
    assert config.sites == {
        "trunk": Site("trunk", None, "udp", ("*",)),
        "pbx-acme": Site("pbx-acme", ("127.0.0.1", 5090), "udp", ("+3225550*", "+3225550001"),
                         5.0, 2.0, 3, 2),
    }  # fmt: skip
    assert config.site_address(config.sites["trunk"]) == ("127.0.0.1", 5080)
    assert config.site_address(config.sites["pbx-acme"]) == ("127.0.0.1", 5090)
    moved = config.with_overrides(trunk=("192.0.2.1", 5060))  # vms serve --trunk
    assert moved.site_address(moved.sites["trunk"]) == ("192.0.2.1", 5060)


def test_defaults_when_the_sections_are_absent(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "trees: trees/\n"))
    assert config.sites == {}
    assert config.floods == FloodSettings(RateLimit(20.0, 40), RateLimit(500.0, 1000), 503, 5)
    assert config.billing == BillingSettings(())
    assert config.flood_overrides() == {}


def test_site_numbers_in_any_form_and_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """\
trees: trees/
sip: {transports: [udp, tcp]}
sites:
  gw:
    address: gw.example.net
    transport: TCP
    numbers: ["02 555 00*", "003225550001", "+32 (0)2 555 00 02", "+3225550001", "*"]
    interval: 1
"""))
    site = config.sites["gw"]
    assert site.address == ("gw.example.net", 5060)
    assert site.transport == "tcp"
    assert site.numbers == ("+32255500*", "+3225550001", "+3225550002", "*")
    assert (site.interval, site.timeout, site.down_after, site.up_after) == (1.0, 1.0, 3, 2)


def test_the_trunk_site_covers_everything_unless_it_lists_numbers(tmp_path: Path) -> None:
    pbx = '  pbx: {address: "127.0.0.1:5090"}\n'
    as_the_readme_shows = "trees: trees/\nsites:\n  trunk: {interval: 5}\n" + pbx
    config = load_config(write(tmp_path, as_the_readme_shows))
    assert config.sites["trunk"].numbers == ("*",)
    assert config.sites["pbx"].numbers == ()  # any other site covers what it lists
    listed = 'trees: trees/\nsites:\n  trunk: {numbers: ["+3225550*"]}\n' + pbx
    assert load_config(write(tmp_path, listed)).sites["trunk"].numbers == ("+3225550*",)
    probed_only = "trees: trees/\nsites: {trunk: {numbers: []}}\n"
    assert load_config(write(tmp_path, probed_only)).sites["trunk"].numbers == ()


def test_site_problems(tmp_path: Path) -> None:
    assert problems(tmp_path, """\
trees: trees/
sites:
  pbx:
    numbers: ["+3225550*", "abc", "+32*5", "025*"]
    interval: 0
    timeout: fast
    down_after: 0
    up_after: 101
    transprot: udp
  gw:
    address: "127.0.0.1:99999"
    transport: sctp
  slow:
    address: 127.0.0.1
    interval: 2
    timeout: 3
  bad name:
    address: 127.0.0.1
  empty:
  trunk:
    transport: tcp
""") == [
        "F:3:3: site 'pbx' lacks the required key 'address' (only the site named 'trunk' may "
        "leave it out: it probes sip.trunk)",
        "F:4:28: site 'pbx': 'abc' is not a phone number, a prefix ending in * or *",
        "F:4:35: site 'pbx': '+32*5' is not a phone number, a prefix ending in * or *",
        "F:5:15: site 'pbx' interval must be at least 0.1, not 0",
        "F:6:14: site 'pbx' timeout must be a number, not 'fast'",
        "F:7:17: site 'pbx' down_after must be at least 1, not 0",
        "F:8:15: site 'pbx' up_after must be at most 100, not 101",
        "F:9:5: unknown key 'transprot' in site 'pbx' (did you mean 'transport'?)",
        "F:11:14: site 'gw' address: '99999' is not a port number (1-65535)",
        "F:12:16: site 'gw' transport must be udp or tcp, not 'sctp'",
        "F:16:14: site 'slow' timeout (3 s) must not exceed its interval (2 s): "
        "one probe at a time",
        "F:17:3: site name 'bad name' must be letters, digits, '.', '-' or '_'",
        "F:19:9: site 'empty' must be a mapping, not nothing",
    ]
    # the transport is checked against sip.transports once the rest is right
    assert problems(tmp_path, """\
trees: trees/
sip: {transports: [udp]}
sites:
  trunk:
    transport: tcp
  pbx:
    address: 127.0.0.1
    numbers: "+3225550*"
""") == ["F:5:16: site 'trunk' transport tcp is not one of sip.transports (udp)"]
    assert problems(tmp_path, "trees: trees/\nsites: [trunk]\n") == [
        "F:2:8: sites must be a mapping, not a list"]  # fmt: skip


def test_floods_and_per_customer_overrides(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """\
trees: trees/
customers:
  acme:
    formula: classic
    numbers: ["+3225551234"]
    floods: {per_number: {burst: 5}}
  globex:
    formula: classic
    numbers: ["+3222001000"]
    floods:
      per_number: {rate: 100, burst: 200}
  initech:
    formula: classic
    numbers: ["+3232012000"]
floods:
  per_number: {rate: 10}
  per_source: {rate: 50.5, burst: 100}
  response: 486
  retry_after: 0
"""))
    assert config.floods == FloodSettings(RateLimit(10.0, 40), RateLimit(50.5, 100), 486, 0)
    # a key the customer leaves out comes from floods.per_number, then the default
    assert config.flood_overrides() == {"acme": RateLimit(10.0, 5),
                                        "globex": RateLimit(100.0, 200)}  # fmt: skip
    assert config.customers["initech"].floods is None


def test_flood_problems(tmp_path: Path) -> None:
    assert problems(tmp_path, """\
trees: trees/
floods:
  per_number: {rate: 0, burst: 1.5}
  per_source: {rate: 200000, brust: 3}
  response: 480
  retry_after: -1
  per_site: {}
customers:
  acme:
    formula: classic
    numbers: ["+3225551234"]
    floods: {per_number: {rate: fast}, per_source: {rate: 1}}
""") == [
        "F:3:22: floods.per_number.rate must be at least 0.01, not 0",
        "F:3:32: floods.per_number.burst must be a whole number, not '1.5'",
        "F:4:22: floods.per_source.rate must be at most 100000 calls/s, not 200000",
        "F:4:30: unknown key 'brust' in floods.per_source (did you mean 'burst'?)",
        "F:5:13: floods.response must be 503 or 486, not 480",
        "F:6:16: floods.retry_after must be at least 0, not -1",
        "F:7:3: unknown key 'per_site' in floods (did you mean 'per_source'?)",
        "F:12:33: customers.acme.floods.per_number.rate must be a number, not 'fast'",
        "F:12:40: unknown key 'per_source' in customers.acme.floods (did you mean 'per_number'?)",
    ]


def test_billing_prefixes_normalised(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """\
trees: trees/
billing:
  other_operator_prefixes: ["+3247", "0032 48*", "049", "+3247", "+44"]
"""))
    assert config.billing.other_operator_prefixes == ("+3247", "+3248", "+3249", "+44")
    assert problems(tmp_path, """\
trees: trees/
billing:
  other_operator_prefixes: ["+3247", "47", "+32 0", "+", "*"]
  others: []
""") == [
        "F:3:38: billing.other_operator_prefixes: '47' is not a number prefix "
        "(E.164 like +3247, or 0032.., 0..)",
        "F:3:44: billing.other_operator_prefixes: '+32 0' is not a number prefix "
        "(E.164 like +3247, or 0032.., 0..)",
        "F:3:53: billing.other_operator_prefixes: '+' is not a number prefix "
        "(E.164 like +3247, or 0032.., 0..)",
        "F:3:58: billing.other_operator_prefixes: '*' is not a number prefix "
        "(E.164 like +3247, or 0032.., 0..)",
        "F:4:3: unknown key 'others' in billing",
    ]


def test_the_demo_configuration_still_loads(root: Path) -> None:
    config = load_config(root / "config" / "vms.yaml")
    assert config.floods == FloodSettings()
