"""ACM e-mail routing: configuration, a real SMTP intake, the desk over the HTTP API, restarts.

Messages go from smtplib (in a thread) to the engine's aiosmtpd intake on a
free loopback port, into the SQLite store, and to operators through
/api/v1/customers/ID/email on a real HTTP port. Presence is the in-process
shared state; the desk's time rules (tiers) run on a task.Clock.
"""

from __future__ import annotations

import hashlib
import smtplib
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from configkit import problems_of
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.python import threadable

from apikit import Api
from engine import api_email
from engine.acm import mailstore
from engine.acm.events import AcmEvent
from engine.acm.mailconfig import EmailSettings
from engine.acm.maildesk import ConflictError, EmailDesk
from engine.acm.mailintake import SmtpHandler, smtp_intake
from engine.acm.mailservice import EmailService
from engine.acm.mailstore import MailStore, StoreClosedError
from engine.acm.runtime import AcmRuntime, AcmStartError
from engine.api_email import EmailApi
from engine.cdr.migrations import migrate, schema_version
from engine.config import Config, load_config
from engine.modes.store import ModeStore
from engine.passwords import hash_password
from engine.state.memory import MemoryState
from rediskit import free_port

pytestmark = pytest.mark.filterwarnings("ignore:Using readBody with a transport")

TOKEN = "initech-Token-1"
AUTH = f"Bearer initech:{TOKEN}"
HASH = hash_password(TOKEN)

CONFIG = """\
trees: trees/
data_dir: data/
customers:
  initech:
    formula: classic
    options: [acm]
    numbers: ["+3225551234"]
    api_token: "{hash}"
    acm:
      groups:
        sales: {{}}
        support: {{tiers: [{{after: 30, min_level: 1}}]}}
      operators:
        anna: {{numbers: ["+32470001104"], pin: "1234", groups: {{sales: 3, support: 3}}}}
        bert: {{numbers: ["+32470001105"], pin: "4321", groups: {{support: 1}}}}
      email:
{email}
"""

EMAIL = """\
        smtp: {listen: 127.0.0.1, port: {port}, domains: [initech.example, Initech.test]}
        rules:
          - {to: sales@initech.example, group: sales}
          - {subject: "invoice|billing", group: support}
          - {from: "@bigclient\\\\.example$", group: support}
        default_group: sales
        max_size: 4096
"""


def write(tmp_path: Path, email: str, port: int = 2525) -> Path:
    path = tmp_path / "vms.yaml"
    path.write_text(CONFIG.format(hash=HASH, email=email.replace("{port}", str(port))))
    return path


def problems(tmp_path: Path, email: str) -> list[str]:
    return problems_of(write(tmp_path, email))


class Events(list[AcmEvent]):
    """An EventSink that keeps what it hears."""

    def record(self, event: AcmEvent) -> None:
        self.append(event)

    def kinds(self) -> list[tuple[str, str, str]]:
        return [(e.kind, e.contact, e.operator) for e in self]


# -- configuration -----------------------------------------------------------------------


def test_the_issue_example_reads(tmp_path: Path) -> None:
    acm = load_config(write(tmp_path, EMAIL)).customers["initech"].acm
    assert acm is not None and acm.email is not None
    email = acm.email
    assert email.smtp is not None and email.smtp.domains == ("initech.example", "initech.test")
    assert (email.default_group, email.max_size, email.hold) == ("sales", 4096, 600.0)
    route = email.group_for
    assert route(["Sales@Initech.example"], "x@y.example", "Invoice 42") == "sales"  # first wins
    assert route(["info@initech.example"], "x@y.example", "Re: BILLING question") == "support"
    assert route(["info@initech.example"], "ceo@bigclient.example", "hello") == "support"
    assert route(["info@initech.example"], "ceo@bigclient.example.org", "hello") == "sales"
    assert route(["info@initech.example"], "x@y.example", "hello") == "sales"  # the default


def test_imap_reads_its_password_from_a_file_beside_the_config(tmp_path: Path) -> None:
    (tmp_path / "imap.pw").write_text("secret\n")
    email = """\
        imap: {host: mail.initech.example, user: desk, password_file: imap.pw, poll: 30}
        default_group: support
"""
    acm = load_config(write(tmp_path, email)).customers["initech"].acm
    assert acm is not None and acm.email is not None and acm.email.imap is not None
    imap = acm.email.imap
    assert (imap.host, imap.port, imap.tls, imap.mailbox, imap.poll) == \
        ("mail.initech.example", 993, True, "INBOX", 30.0)  # fmt: skip
    assert imap.password_file == tmp_path / "imap.pw"
    assert "imap.pw" not in repr(imap)


def test_bad_settings_are_file_line_col_problems(tmp_path: Path) -> None:
    email = """\
        smtp: {port: 70000, domains: ["not a domain"]}
        imap: {host: h, user: u, password_file: missing.pw}
        rules:
          - {to: sales@initech.example, group: sale}
          - {subject: "invoice(", group: support}
          - {group: support}
          - {to: nobody, group: sales}
        default_group: salse
        max_size: 10
        poll: 3
"""
    assert problems(tmp_path, email) == [
        "F:17:22: customers.initech.acm.email.smtp.port must be at most 65535, not 70000",
        "F:17:39: customers.initech.acm.email.smtp.domains: 'not a domain' is not a domain name",
        "F:18:49: customers.initech.acm.email.imap.password_file: no such file: "
        f"{tmp_path / 'missing.pw'}",
        "F:20:48: each rule of customers.initech.acm.email.rules: group: undefined group "
        "'sale' (did you mean 'sales'?)",
        "F:21:31: each rule of customers.initech.acm.email.rules: subject: not a regular "
        "expression: missing ), unterminated subpattern",
        "F:22:13: each rule of customers.initech.acm.email.rules needs a condition: to, from "
        "or subject",
        "F:23:18: each rule of customers.initech.acm.email.rules: to: 'nobody' is not an "
        "e-mail address",
        "F:24:24: customers.initech.acm.email.default_group: undefined group 'salse' "
        "(did you mean 'sales'?)",
        "F:25:19: customers.initech.acm.email.max_size must be at least 1024, not 10",
        "F:26:9: unknown key 'poll' in customers.initech.acm.email",
    ]


def test_no_source_and_no_default_group(tmp_path: Path) -> None:
    assert problems(tmp_path, "        rules: []\n") == [
        "F:17:9: customers.initech.acm.email lacks the required key 'default_group'",
        "F:17:9: customers.initech.acm.email needs smtp (an intake), imap (a mailbox) or "
        "both: otherwise no e-mail ever arrives",
    ]


# -- through a real SMTP intake ----------------------------------------------------------


class Engine:
    """The e-mail service of one engine run, its API, its presence and what it reported."""

    def __init__(self, config: Config, state: MemoryState, api: Api) -> None:
        self.events = Events()
        self.service = EmailService(reactor, config, state, self.events)
        self.service.start()
        EmailApi(self.service.desk).plug(api.v1)
        self.api = api

    async def get(self, path: str) -> tuple[int, Any]:
        status, _, body = await self.api.call("GET", f"/api/v1/customers/initech/{path}", AUTH)
        return status, body

    async def post(self, path: str) -> tuple[int, Any]:
        status, _, body = await self.api.call("POST", f"/api/v1/customers/initech/{path}", AUTH)
        return status, body

    async def call(self, method: str, path: str) -> tuple[int, Any, Any]:
        """Status, headers and body."""
        return await self.api.call(method, f"/api/v1/customers/initech/{path}", AUTH)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load_config(write(tmp_path, EMAIL, free_port()))


@pytest.fixture
def state() -> MemoryState:
    return MemoryState(reactor)


@pytest.fixture
def start(
    config: Config, state: MemoryState, make_api: Callable[..., Api], tmp_path: Path
) -> Iterator[Callable[[], Engine]]:
    """Starts an engine (again, for a restart: the one before is stopped first)."""
    engines: list[Engine] = []
    modes = ModeStore(tmp_path / "modes.sqlite")
    modes.open()

    def run() -> Engine:
        if engines:
            engines[-1].service.stop()
        engines.append(Engine(config, state, make_api(config=config, store=modes)))
        return engines[-1]

    yield run
    engines[-1].service.stop()
    modes.close()


def port_of(config: Config) -> int:
    acm = config.customers["initech"].acm
    assert acm is not None and acm.email is not None and acm.email.smtp is not None
    return acm.email.smtp.port


def message(subject: str, to: str = "info@initech.example", size: int = 0,
            message_id: str | None = None) -> EmailMessage:  # fmt: skip
    mail = EmailMessage()
    mail["From"] = "Client <client@example.org>"
    mail["To"] = to
    mail["Subject"] = subject
    if message_id is not None:
        mail["Message-ID"] = message_id
    mail.set_content("Hello,\nplease call me back.\n" + ("x" * 79 + "\n") * (size // 80))
    return mail


async def send(config: Config, mail: EmailMessage, to: list[str] | None = None) -> None:
    """Delivers through the intake; raises what smtplib raises (refusals included)."""

    def deliver() -> None:
        with smtplib.SMTP("127.0.0.1", port_of(config), timeout=5) as client:
            client.send_message(mail, to_addrs=to)

    await deferToThread(deliver)


async def login(state: MemoryState, operator: str, groups: dict[str, int]) -> None:
    await state.set_operator("initech", operator, "available", groups, reactor.seconds())


@pytest_twisted.ensureDeferred
async def test_an_email_from_smtp_to_done(
    config: Config, state: MemoryState, start: Callable[[], Engine],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    engine = start()
    await send(config, message("Need a quote", to="Sales@initech.example"))
    # The 250 came after the commit, and the arrival was announced before the 250 left.
    assert [(e.kind, e.channel, e.group) for e in engine.events] == [("queued", "email", "sales")]
    status, queues = await engine.get("email")
    assert status == 200 and queues["groups"]["support"] == \
        {"waiting": 0, "oldest": None, "assigned": 0}  # fmt: skip
    assert queues["groups"]["sales"]["waiting"] == 1 and queues["groups"]["sales"]["oldest"]

    status, body = await engine.get("email?operator=anna")
    assert (status, body) == (409, {"error": "operator 'anna' is logged out: e-mails go to "
                                             "available operators"})  # fmt: skip
    await login(state, "anna", {"sales": 3, "support": 3})
    status, body = await engine.get("email?operator=anna")
    assert status == 200
    email = body["email"]
    assert (email["group"], email["from"], email["to"], email["subject"], email["state"],
            email["operator"]) == ("sales", "client@example.org", ["Sales@initech.example"],
                                   "Need a quote", "assigned", "anna")  # fmt: skip
    # Kept from calls while on it; asking again gives the same e-mail.
    assert [i.state for i in await state.operators("initech", "sales")] == ["on_call"]
    assert (await engine.get("email?operator=anna"))[1]["email"]["id"] == email["id"]
    # Read and parsed in a pool thread, not on the reactor.
    parsed_on_reactor: list[bool] = []
    text_of = api_email._text

    def spy(raw: bytes) -> tuple[str, list[str]]:
        parsed_on_reactor.append(threadable.isInIOThread())
        return text_of(raw)

    monkeypatch.setattr(api_email, "_text", spy)
    status, full = await engine.get(f"email/{email['id']}")
    assert status == 200 and full["text"].startswith("Hello,\nplease call me back.")
    assert full["attachments"] == [] and parsed_on_reactor == [False]

    # Only the operator who has it ends it, and who that is must be said.
    assert await engine.post(f"email/{email['id']}/done?operator=bert") == \
        (409, {"error": f"e-mail {email['id']} is in the hands of 'anna', not 'bert'"})  # fmt: skip
    assert (await engine.post(f"email/{email['id']}/release?operator=bert"))[0] == 409
    assert await engine.post(f"email/{email['id']}/done") == \
        (400, {"error": f"POST email/{email['id']}/done needs ?operator=NAME: the operator "
                        "who has the e-mail"})  # fmt: skip
    assert (await engine.post(f"email/{email['id']}/release"))[0] == 400
    assert [i.state for i in await state.operators("initech", "sales")] == ["on_call"]
    status, done = await engine.post(f"email/{email['id']}/done?operator=anna")
    assert (status, done["state"]) == (200, "done")
    assert [i.state for i in await state.operators("initech", "sales")] == ["available"]
    contact = f"email-{email['id']}"
    assert engine.events.kinds() == [("queued", contact, ""), ("offered", contact, "anna"),
                                     ("answered", contact, "anna"), ("ended", contact, "anna")]
    assert engine.events[-1].detail == "done"
    assert (await engine.get("email?operator=anna"))[1] == {"email": None}
    assert (await engine.post(f"email/{email['id']}/done?operator=anna"))[0] == 409


@pytest_twisted.ensureDeferred
async def test_foreign_recipients_get_550_and_big_messages_552(
    config: Config, start: Callable[[], Engine]
) -> None:
    engine = start()
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await send(config, message("relay?", to="someone@elsewhere.example"))
    assert refused.value.recipients["someone@elsewhere.example"][0] == 550
    with pytest.raises(smtplib.SMTPSenderRefused) as announced:  # told by MAIL FROM's SIZE=
        await send(config, message("big", size=5000))
    assert announced.value.smtp_code == 552

    def without_size() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", port_of(config), timeout=5) as client:
            client.ehlo()
            client.mail("client@example.org")
            client.rcpt("info@initech.example")
            return client.data(message("big", size=5000).as_string())

    assert (await deferToThread(without_size))[0] == 552
    assert engine.events == [] and engine.service.store.queues("initech") == {}


@pytest_twisted.ensureDeferred
async def test_rules_route_and_a_copy_is_kept_once(
    config: Config, start: Callable[[], Engine]
) -> None:
    engine = start()
    await send(config, message("Your INVOICE 42", message_id="<42@example.org>"))
    await send(config, message("Your INVOICE 42", message_id="<42@example.org>"))  # a retry
    await send(config, message("hello", to="info@initech.test"))
    await send(config, message("hello"), to=["info@initech.example", "x@elsewhere.example"])
    assert [e.group for e in engine.events] == ["support", "sales", "sales"]
    queues = engine.service.store.queues("initech")
    assert (queues["support"].waiting, queues["sales"].waiting) == (1, 2)


@pytest_twisted.ensureDeferred
async def test_a_restart_keeps_waiting_and_assigned_emails(
    config: Config, state: MemoryState, start: Callable[[], Engine]
) -> None:
    engine = start()
    await send(config, message("first", to="sales@initech.example"))
    await send(config, message("second", to="sales@initech.example"))
    await login(state, "anna", {"sales": 3, "support": 3})
    taken = (await engine.get("email?operator=anna"))[1]["email"]
    assert taken["subject"] == "first"

    engine = start()  # the same data_dir and presence, a new service and API
    assert engine.events == []  # each was reported queued once, by the run that stored it
    assert (await engine.get("email?operator=anna"))[1]["email"] == taken
    status, body = await engine.post(f"email/{taken['id']}/release?operator=anna")
    assert (status, body["state"], body["operator"]) == (200, "waiting", None)
    assert [(e.kind, e.detail) for e in engine.events] == [("ended", "released")]
    # Given back, it is the oldest again.
    assert (await engine.get("email?operator=anna"))[1]["email"]["subject"] == "first"
    status, queues = await engine.get("email")
    assert queues["groups"]["sales"] | {"oldest": None} == \
        {"waiting": 1, "oldest": None, "assigned": 1}  # fmt: skip


@pytest_twisted.ensureDeferred
async def test_api_refusals(start: Callable[[], Engine]) -> None:
    engine = start()
    assert await engine.get("email?operator=zed") == \
        (404, {"error": "customer 'initech' has no operator 'zed'"})  # fmt: skip
    assert (await engine.get("email/77"))[0] == 404
    assert (await engine.get("email/abc"))[0] == 404
    assert (await engine.post("email/77/done?operator=anna"))[0] == 404
    assert (await engine.post("email/77/done"))[0] == 400
    assert (await engine.post("email/77/archive"))[0] == 404
    status, body = await engine.post("email")  # no id: a sentence, not an IndexError
    assert status == 404 and body["error"].startswith("POST needs an e-mail")
    # Ids SQLite cannot hold, or that are not ASCII digits: a sentence, not an OverflowError.
    for bad in ("0", "-1", "1e3", "9223372036854775808", "9" * 40, "%C2%B2", "%D9%A1"):
        for method, path in (("GET", f"email/{bad}"), ("POST", f"email/{bad}/done?operator=x")):
            status, _, body = await engine.call(method, path)
            assert status == 404, (method, path)
            assert "whole numbers from 1 to 9223372036854775807" in body["error"]
    assert await engine.get("email/9223372036854775807") == \
        (404, {"error": "customer 'initech' has no e-mail 9223372036854775807"})  # fmt: skip
    status, _, _ = await engine.api.call("GET", "/api/v1/customers/initech/email")
    assert status == 401


# -- the desk's time rules, on a Clock ---------------------------------------------------


@dataclass
class ClockDesk:
    """Initech's e-mail desk on a Clock at 1_700_000_000, its presence and its store."""

    email: EmailSettings
    clock: Clock
    state: MemoryState
    store: MailStore
    events: Events
    desk: EmailDesk


@pytest.fixture
def clock_desk(tmp_path: Path) -> Iterator[ClockDesk]:
    acm = load_config(write(tmp_path, EMAIL)).customers["initech"].acm
    assert acm is not None and acm.email is not None
    clock = Clock()
    clock.advance(1_700_000_000)
    state = MemoryState(clock)
    store = MailStore(tmp_path / "email.sqlite")
    store.open(clock.seconds())
    events = Events()
    yield ClockDesk(acm.email, clock, state, store, events,
                    EmailDesk(clock, store, state, events, {"initech": acm}.get))  # fmt: skip
    store.close()


@pytest_twisted.ensureDeferred
async def test_tiers_hold_an_email_for_the_competent_then_widen(clock_desk: ClockDesk) -> None:
    clock, state, store, events, desk = (clock_desk.clock, clock_desk.state, clock_desk.store,
                                         clock_desk.events, clock_desk.desk)  # fmt: skip
    hold = clock_desk.email.hold
    store.add("initech", message_id=None, received=clock.seconds(), source="smtp",
              sender="a@b.example", recipients=["info@initech.example"], subject="billing",
              group="support", raw=b"Subject: billing\r\n\r\nhi\r\n")  # fmt: skip
    desk.announce()
    await state.set_operator("initech", "bert", "available", {"support": 1}, clock.seconds())
    await state.set_operator("initech", "anna", "break", {"support": 3}, clock.seconds())
    # Support's best level is anna's 3 until 30 s: bert (level 1) waits.
    assert await desk.next_for("initech", "bert") is None
    clock.advance(30)
    email = await desk.next_for("initech", "bert")
    assert email is not None and email.operator == "bert"
    # The hold is a lease: bert comes back to calls when it runs out unless renewed.
    assert [i.state for i in await state.operators("initech", "support")] == \
        ["break", "on_call"]  # fmt: skip
    clock.advance(hold - 1)
    assert await desk.next_for("initech", "bert") == email  # renews
    clock.advance(hold - 1)
    infos = {i.operator: i.state for i in await state.operators("initech", "support")}
    assert infos["bert"] == "on_call"
    clock.advance(2)
    infos = {i.operator: i.state for i in await state.operators("initech", "support")}
    assert infos["bert"] == "available"
    with pytest.raises(ConflictError, match="in the hands of 'bert', not 'anna'"):
        await desk.done("initech", email.id, "anna")
    await desk.done("initech", email.id, "bert")
    assert [(e.kind, e.at - 1_700_000_000) for e in events] == [
        ("queued", 0), ("offered", 30), ("answered", 30),
        ("ended", 30 + 2 * (hold - 1) + 2),
    ]


@pytest_twisted.ensureDeferred
async def test_a_busy_or_closed_database_is_503_with_retry_after(
    config: Config, state: MemoryState, start: Callable[[], Engine]
) -> None:
    engine = start()
    store = engine.service.store
    await send(config, message("first", to="sales@initech.example"))
    await login(state, "anna", {"sales": 3, "support": 3})
    taken = (await engine.get("email?operator=anna"))[1]["email"]
    store.close()
    store.busy_timeout = 0.05
    store.open(reactor.seconds())
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another engine writing, past the busy timeout
    try:
        status, headers, body = await engine.call("POST", f"email/{taken['id']}/done?operator=anna")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert (status, body) == (503, {"error": "the e-mail database is busy or failing; try again"})
    assert headers.getRawHeaders(b"retry-after") == [b"1"]
    assert [i.state for i in await state.operators("initech", "sales")] == ["on_call"]

    store.close()  # closed (stopping): the same answer on every path, the thread's too
    for method, path in (("GET", "email"), ("GET", f"email/{taken['id']}"),
                         ("POST", f"email/{taken['id']}/release?operator=anna")):  # fmt: skip
        status, headers, _ = await engine.call(method, path)
        assert (status, headers.getRawHeaders(b"retry-after")) == (503, [b"1"]), path
    store.open(reactor.seconds())
    status, done = await engine.post(f"email/{taken['id']}/done?operator=anna")
    assert (status, done["state"]) == (200, "done")


@pytest_twisted.ensureDeferred
async def test_the_same_bytes_are_kept_once_whatever_their_message_id(
    config: Config, start: Callable[[], Engine]
) -> None:
    engine = start()
    await send(config, message("no id"))  # no Message-ID at all
    await send(config, message("no id"))  # the same, retried after a lost 250
    await send(config, message("genuine", message_id="<1@client.example>"))
    await send(config, message("forged", message_id="<1@client.example>"))  # someone else's id
    assert [e.kind for e in engine.events] == ["queued"] * 3
    store = engine.service.store
    assert [e.subject for e in store.waiting("initech", ["sales"])] == \
        ["no id", "genuine", "forged"]  # fmt: skip
    assert [e.message_id for e in store.waiting("initech", ["sales"])] == \
        [None, "<1@client.example>", "<1@client.example>"]  # fmt: skip


def test_the_store_migrates_to_dedupe_by_sha256(tmp_path: Path) -> None:
    path = tmp_path / "email.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, 1.0, mailstore.MIGRATIONS[:1])
    same, other = b"Subject: hi\r\n\r\nhello\r\n", b"Subject: yo\r\n\r\nyo\r\n"
    rows = [  # customer, message_id, raw, state, operator; the second was kept twice by v1
        ("initech", None, same, "done", None),
        ("initech", None, same, "assigned", "anna"),
        ("initech", "<x@client.example>", other, "waiting", None),
        ("globex", None, same, "waiting", None),
    ]
    for customer, message_id, raw, state, operator in rows:
        conn.execute(
            "INSERT INTO emails (customer, message_id, received, source, sender, recipients,"
            " subject, grp, raw, state, operator, announced)"
            " VALUES (?, ?, 1, 'smtp', 'a@b.example', '[]', 's', 'sales', ?, ?, ?, 1)",
            (customer, message_id, raw, state, operator),
        )
    conn.close()

    store = MailStore(path)
    store.open(2.0)
    try:
        with store._db() as db:
            assert schema_version(db) == 2
            digests = db.execute("SELECT id, customer, digest FROM emails ORDER BY id").fetchall()
            indexes = {row[1] for row in db.execute("PRAGMA index_list(emails)")}
        sha = hashlib.sha256(same).hexdigest()
        # Nothing is lost: the copy v1 kept twice stays (it is in anna's hands), set apart.
        assert digests == [(1, "initech", sha), (2, "initech", f"{sha}:2"),
                           (3, "initech", hashlib.sha256(other).hexdigest()),
                           (4, "globex", sha)]  # fmt: skip
        assert {"emails_digest", "emails_waiting", "emails_assigned",
                "emails_unannounced"} <= indexes  # fmt: skip
        assigned = store.assigned_to("initech", "anna")
        assert assigned is not None and assigned.id == 2

        def add(customer: str, raw: bytes, message_id: str | None = None) -> int | None:
            return store.add(customer, message_id=message_id, received=3.0, source="imap",
                             sender="a@b.example", recipients=[], subject="s", group="sales",
                             raw=raw)  # fmt: skip

        assert add("initech", same) is None and add("globex", same) is None
        assert add("initech", b"Subject: new\r\n\r\n", "<x@client.example>") == 5
        assert add("acme", same) == 6  # per customer
        assert [e.id for e in store.unannounced()] == [5, 6]
    finally:
        store.close()


class _Pausing:
    """A store connection that runs ``between`` once, right after unannounced()'s SELECT."""

    def __init__(self, conn: sqlite3.Connection, between: Callable[[], None]) -> None:
        self.conn = conn
        self.between: Callable[[], None] | None = between

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        cursor = self.conn.execute(sql, *args)
        if sql.startswith("SELECT") and "announced = 0" in sql and self.between is not None:
            between, self.between = self.between, None
            between()
        return cursor

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def test_two_engines_never_both_report_an_arrival(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = MailStore(tmp_path / "email.sqlite")
    second = MailStore(tmp_path / "email.sqlite", busy_timeout=0.05)
    first.open(1.0)
    second.open(1.0)
    try:
        for subject in ("one", "two"):
            first.add("initech", message_id=None, received=1.0, source="smtp",
                      sender="a@b.example", recipients=[], subject=subject, group="sales",
                      raw=subject.encode())  # fmt: skip
        # The second engine asks between the first one's read and its marking them reported.
        second_saw: list[object] = []

        def meanwhile() -> None:
            try:
                second_saw.extend(second.unannounced())
            except sqlite3.OperationalError as exc:
                second_saw.append(str(exc))

        assert first._conn is not None
        monkeypatch.setattr(first, "_conn", _Pausing(first._conn, meanwhile))
        assert [e.subject for e in first.unannounced()] == ["one", "two"]
        assert second_saw == ["database is locked"]  # it waited its turn
        assert second.unannounced() == []
    finally:
        first.close()
        second.close()


def test_a_closed_store_says_so(tmp_path: Path) -> None:
    store = MailStore(tmp_path / "email.sqlite")
    with pytest.raises(StoreClosedError, match="is not open"):
        store.queues("initech")


def test_a_broken_email_database_stops_the_start_plainly(config: Config) -> None:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    (config.data_dir / "email.sqlite").write_bytes(b"this is not a database\n" * 100)
    runtime = AcmRuntime(reactor, config, MemoryState(reactor))
    try:
        with pytest.raises(AcmStartError, match=r"cannot use the e-mail database .*email\.sqlite"):
            runtime.start()
    finally:
        runtime.email.stop()
        runtime.directory.close()
        runtime.stats.close()


def test_the_intake_takes_at_most_max_sessions(config: Config, tmp_path: Path) -> None:
    acm = config.customers["initech"].acm
    assert acm is not None and acm.email is not None
    store = MailStore(tmp_path / "email.sqlite")
    store.open(time.time())
    handler = SmtpHandler({"initech": acm.email}, store, time.time, lambda: None)
    intake = smtp_intake("127.0.0.1", port_of(config), handler, max_sessions=2)
    sessions: list[smtplib.SMTP] = []
    try:
        sessions += [smtplib.SMTP("127.0.0.1", port_of(config), timeout=5) for _ in range(2)]
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            smtplib.SMTP("127.0.0.1", port_of(config), timeout=5)
        assert refused.value.smtp_code == 421  # "try again later" to a sending server
        assert intake.sessions.count == 2 and intake.sessions.refused == 1
        sessions.pop().quit()
        deadline = time.monotonic() + 5
        while intake.sessions.count > 1 and time.monotonic() < deadline:
            time.sleep(0.01)  # the intake's own thread sees the session go
        with smtplib.SMTP("127.0.0.1", port_of(config), timeout=5) as client:
            client.send_message(message("after the rush"))
        assert [e.subject for e in store.unannounced()] == ["after the rush"]
    finally:
        for session in sessions:
            session.close()
        intake.stop()
        store.close()


@pytest_twisted.ensureDeferred
async def test_the_next_email_reads_each_group_s_oldest_not_the_queue(
    clock_desk: ClockDesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, state, store, desk = (clock_desk.clock, clock_desk.state, clock_desk.store,
                                 clock_desk.desk)  # fmt: skip
    for n in range(50):  # a long support queue, then one sales e-mail
        store.add("initech", message_id=None, received=clock.seconds() + n, source="smtp",
                  sender="a@b.example", recipients=[], subject=f"support {n}", group="support",
                  raw=b"support %d" % n)  # fmt: skip
    store.add("initech", message_id=None, received=clock.seconds() + 60, source="smtp",
              sender="a@b.example", recipients=[], subject="sales", group="sales",
              raw=b"sales")  # fmt: skip
    monkeypatch.setattr(store, "waiting", None)  # never the whole queue
    statements: list[str] = []
    assert store._conn is not None
    store._conn.set_trace_callback(statements.append)

    await state.set_operator("initech", "anna", "break", {"sales": 3, "support": 3},
                             clock.seconds())  # fmt: skip
    await state.set_operator("initech", "bert", "available", {"support": 1}, clock.seconds())
    clock.advance(60)
    # Support's tier lets level 1 in after 30 s: bert gets its oldest.
    first = await desk.next_for("initech", "bert")
    assert first is not None and first.subject == "support 0"
    reads = [s for s in statements if s.startswith("SELECT") and "FROM emails" in s]
    assert reads and all("LIMIT 1" in s or " id = " in s for s in reads), reads

    # Oldest first across groups: anna (both groups) gets support 1 before the newer sales.
    await state.set_operator("initech", "anna", "available", {"sales": 3, "support": 3},
                             clock.seconds())  # fmt: skip
    second = await desk.next_for("initech", "anna")
    assert second is not None and second.subject == "support 1"
    await desk.done("initech", first.id, "bert")
    await desk.done("initech", second.id, "anna")
