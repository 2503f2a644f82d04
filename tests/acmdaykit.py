"""A scripted day of ACM calls and e-mails, for the statistics tests (tests/test_acm_stats*.py).

The day (2026-12-01, window 09:00-17:00 UTC), customer acme: sales
(service level 20 s) with anna and bert, support (30 s) with bert.

sales calls:  c1 answered by anna after 10 s, 300 s talk, 30 s wrap-up;
              c2 not answered by anna, answered by bert after 25 s, 600 s talk, 20 s wrap-up;
              c3 abandoned after 5 s (within 20 s: left out of the service level);
              c4 abandoned after 60 s; c5 timed out after 300 s;
              c6 queued at 16:59:50, still waiting at 17:00;
              c0 queued at 08:59 (before the window), abandoned at 09:00:10: not counted.
support:      s1 answered by bert after 10 s, 1200 s talk, 60 s wrap-up; s2 turned away, no agents.
sales e-mail: e1 queued 09:20, answered by anna at 09:50 (1800 s), ended 09:55.
anna: available from 08:55 (before the window), break 13:00-13:30, logged out at 16:00.
bert: logs in at 09:30, stays until after 17:00.

``ACM`` is what ``CONFIG``'s ``customers.acme.acm`` reads as.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

from twisted.internet.task import Clock

from engine.acm.events import AcmEvent
from engine.acm.model import AcmSettings, Group, Operator
from engine.acm.stats import StatsStore

DAY = "2026-12-01"


def at(hms: str) -> float:
    return datetime.fromisoformat(f"{DAY}T{hms}+00:00").timestamp()


SINCE, UNTIL = at("09:00:00"), at("17:00:00")


def clock_at(hms: str) -> Clock:
    """A Clock at ``hms`` (UTC) of the day."""
    clock = Clock()
    clock.advance(at(hms))
    return clock


def stats_store(data_dir: Path, clock: Clock, events: Iterable[AcmEvent] = ()) -> StatsStore:
    """The open statistics store of ``data_dir`` with ``events`` recorded; close it."""
    store = StatsStore.in_data_dir(data_dir, clock)
    store.open()
    for event in events:
        store.record(event)
    return store

CONFIG = """\
data_dir: var/
trees: trees/
customers:
  acme:
    formula: classic
    options: [acm]
    numbers: ["+3225551234"]{acme}
    acm:
      groups:
        sales: {{service_level: 20}}
        support: {{service_level: 30}}
      operators:
        anna: {{numbers: ["+32470001104"], pin: "1234", groups: {{sales: 3}}}}
        bert: {{numbers: ["+32470001105"], pin: "1234", groups: {{sales: 1, support: 2}}}}
  initech:
    formula: classic
    numbers: ["+3250123456"]{initech}
"""


def write_config(tmp_path: Path, acme: str = "", initech: str = "") -> Path:
    """``CONFIG`` in ``tmp_path`` (with the API token hashes given), and its trees/ directory."""
    (tmp_path / "trees").mkdir(parents=True, exist_ok=True)
    path = tmp_path / "vms.yaml"
    tokens = {
        k: f'\n    api_token: "{v}"' if v else "" for k, v in (("acme", acme), ("initech", initech))
    }
    path.write_text(CONFIG.format(**tokens))
    return path


ACM = AcmSettings(
    groups=MappingProxyType({"sales": Group("sales", service_level=20.0),
                             "support": Group("support", service_level=30.0)}),
    operators=MappingProxyType({
        "anna": Operator(name="anna", numbers=("+32470001104",), pin="1234",
                         groups=MappingProxyType({"sales": 3})),
        "bert": Operator(name="bert", numbers=("+32470001105",), pin="1234",
                         groups=MappingProxyType({"sales": 1, "support": 2})),
    }),
)  # fmt: skip


def call(hms: str, kind: str, contact: str, group: str = "sales", operator: str = "",
         channel: str = "call") -> AcmEvent:  # fmt: skip
    return AcmEvent(at(hms), "acme", kind, channel, group, contact, operator)


def state(hms: str, operator: str, new: str, group: str = "") -> AcmEvent:
    return AcmEvent(at(hms), "acme", "operator", group=group, operator=operator, detail=new)


DAY_EVENTS = [
    state("08:55:00", "anna", "available"),
    call("08:59:00", "queued", "c0"),
    call("09:00:10", "abandoned", "c0"),
    # c1: anna answers after 10 s
    call("09:10:00", "queued", "c1"),
    call("09:10:05", "offered", "c1", operator="anna"),
    state("09:10:05", "anna", "ringing", "sales"),
    call("09:10:10", "answered", "c1", operator="anna"),
    state("09:10:10", "anna", "on_call", "sales"),
    call("09:15:10", "ended", "c1", operator="anna"),
    state("09:15:10", "anna", "wrap_up", "sales"),
    state("09:15:40", "anna", "available"),
    # e1: an e-mail anna takes after 30 minutes
    call("09:20:00", "queued", "e1", channel="email"),
    state("09:30:00", "bert", "available"),
    call("09:50:00", "answered", "e1", operator="anna", channel="email"),
    call("09:55:00", "ended", "e1", operator="anna", channel="email"),
    # c2: anna does not answer, bert does after 25 s
    call("10:00:00", "queued", "c2"),
    call("10:00:02", "offered", "c2", operator="anna"),
    state("10:00:02", "anna", "ringing", "sales"),
    call("10:00:17", "no_answer", "c2", operator="anna"),
    state("10:00:17", "anna", "available"),
    call("10:00:20", "offered", "c2", operator="bert"),
    state("10:00:20", "bert", "ringing", "sales"),
    call("10:00:25", "answered", "c2", operator="bert"),
    state("10:00:25", "bert", "on_call", "sales"),
    call("10:10:25", "ended", "c2", operator="bert"),
    state("10:10:25", "bert", "wrap_up", "sales"),
    state("10:10:45", "bert", "available"),
    call("11:00:00", "queued", "c3"),
    call("11:00:05", "abandoned", "c3"),
    call("11:30:00", "queued", "c4"),
    call("11:31:00", "abandoned", "c4"),
    call("12:00:00", "queued", "c5"),
    call("12:05:00", "timeout", "c5"),
    state("13:00:00", "anna", "break|lunch"),
    state("13:30:00", "anna", "available"),
    # s1: bert answers support after 10 s
    call("14:00:00", "queued", "s1", "support"),
    call("14:00:05", "offered", "s1", "support", "bert"),
    state("14:00:05", "bert", "ringing", "support"),
    call("14:00:10", "answered", "s1", "support", "bert"),
    state("14:00:10", "bert", "on_call", "support"),
    call("14:20:10", "ended", "s1", "support", "bert"),
    state("14:20:10", "bert", "wrap_up", "support"),
    state("14:21:10", "bert", "available"),
    call("15:00:00", "no_agents", "s2", "support"),
    state("16:00:00", "anna", "logged_out"),
    call("16:59:50", "queued", "c6"),
    # after the window: not seen
    call("17:00:05", "answered", "c6", operator="bert"),
    state("17:00:05", "bert", "on_call", "sales"),
]
