"""REGISTER in B2BUA mode (engine/calls/registrar.py), through the stack, on a task.Clock.

A softphone outside the configured peers registers with digest
authentication; its bindings land in the shared state (memory here; the
Redis backend passes the same contract, tests/test_state_registrations_contract.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import pytest
from acmdirkit import write_acme
from twisted.internet.task import Clock

from engine.acm.directory import AcmDirectory, ConflictError
from engine.acm.model import AcmSettings, Operator, Softphone
from engine.calls.b2bua import B2bua
from engine.calls.context import CallContext
from engine.calls.registrar import (
    Account,
    Registrar,
    accounts_of,
    live_accounts,
    registered_contacts,
)
from engine.config import load_config
from engine.router import Router
from engine.serve import _registrar
from engine.sip.digest import Credentials, ha1, request_digest
from engine.sip.message import Response
from engine.sip.parser import parse_datagram
from engine.sip.peers import PeerFilter
from engine.sip.stack import SipStack
from engine.state.memory import MemoryState
from routing_trees.treeset import load_directory
from sipkit import FakeTransport

PHONE = ("203.0.113.9", 40123)  # the NAT's public side: not a configured peer
ENGINE = "sip:192.0.2.1:5060"
T0 = 1_700_000_000.0
ACM = {
    "acme": AcmSettings(MappingProxyType({}), MappingProxyType({
        "anna": Operator("anna", (), "1234", softphone=Softphone("anna", MappingProxyType({
            "MD5": ha1("anna", "acme", "secret"),
            "SHA-256": ha1("anna", "acme", "secret", "SHA-256")}))),
        "bert": Operator("bert", ("+32470001105",), "1234", softphone=Softphone(
            "bert", MappingProxyType({"MD5": ha1("bert", "acme", "pw")}))),
        "carla": Operator("carla", ("+32470001106",), "1234"),
    })),
}  # fmt: skip


def b2bua(stack: SipStack, trees: Path, registrar: Registrar | None = None) -> FakeTransport:
    """A B2BUA with no trees on ``stack``; the transport it answers through."""
    transport = FakeTransport()
    ctx = CallContext(stack=stack, transport=transport, local=("192.0.2.1", 5060),
                      trunk=("127.0.0.1", 5080), trunk_name="127.0.0.1:5080")  # fmt: skip
    router = Router(load_directory(trees), mode_of=lambda _c: "normal")
    stack.tu = B2bua(ctx, router, registrar=registrar)
    return transport


class Phone:
    """A softphone: sends REGISTERs from PHONE and answers challenges."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.state = MemoryState(self.clock)
        self.stack = SipStack(self.clock, None, peers=PeerFilter(["127.0.0.0/8"]))  # type: ignore[arg-type]
        self.acm = dict(ACM)  # what the directory has now: tests change it under the registrar
        self.audited: list[tuple[str | None, ...]] = []
        self.registrar = Registrar(self.clock, self.state, live_accounts(lambda: self.acm,
                                                                         self.acm.get),
                                   min_expires=60, max_expires=3600,
                                   audit=lambda *entry: self.audited.append(entry))  # fmt: skip
        registrar = self.registrar
        self.transport = b2bua(self.stack, tmp_path, registrar)
        self.stack.open_methods = frozenset({"REGISTER"})
        self.cseq = 0

    def send(self, method: str = "REGISTER", user: str = "anna", headers: str = "",
             source: tuple[str, int] = PHONE) -> Response:  # fmt: skip
        self.cseq += 1
        data = (
            f"{method} {ENGINE} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK-{self.cseq};rport\r\n"
            f"Max-Forwards: 70\r\n"
            f"From: <sip:{user}@192.0.2.1>;tag=ph\r\n"
            f"To: <sip:{user}@192.0.2.1>\r\n"
            f"Call-ID: reg-1@10.0.0.5\r\n"
            f"CSeq: {self.cseq} {method}\r\n"
            f"{headers}Content-Length: 0\r\n\r\n"
        ).encode()
        self.transport.clear()
        self.stack.receive_datagram(data, self.transport, source)
        (sent, addr), = self.transport.sent
        assert addr == source  # rport: answered where it came from
        response = parse_datagram(sent)
        assert isinstance(response, Response)
        return response

    def register(self, headers: str = "", *, user: str = "anna", password: str = "secret",
                 algorithm: str = "MD5", username: str | None = None,
                 source: tuple[str, int] = PHONE) -> Response:  # fmt: skip
        """REGISTER, and again with credentials for the challenge of ``algorithm``."""
        first = self.send(user=user, headers=headers, source=source)
        assert first.status == 401, first
        return self.send(user=user, headers=headers + self.authorization(
            first, password, algorithm, username or user), source=source)  # fmt: skip

    def authorization(self, challenge: Response, password: str = "secret",
                      algorithm: str = "MD5", user: str = "anna", nc: int = 1) -> str:  # fmt: skip
        value = next(v for v in challenge.headers["www-authenticate"] if f"={algorithm}," in v)
        params = dict(p.strip().split("=", 1) for p in value[len("Digest "):].split(","))
        realm, nonce = params["realm"].strip('"'), params["nonce"].strip('"')
        c = Credentials(user, realm, nonce, ENGINE, "", algorithm, "auth", f"{nc:08x}", "cn")
        response = request_digest(c, "REGISTER", ha1(user, realm, password, algorithm))
        return (f'Authorization: Digest username="{user}", realm="{realm}", nonce="{nonce}", '
                f'uri="{ENGINE}", response="{response}", algorithm={algorithm}, qop=auth, '
                f'nc={nc:08x}, cnonce="cn"\r\n')  # fmt: skip

    def contacts(self, operator: str = "anna") -> list[tuple[str, tuple[str, int]]]:
        found: list[tuple[str, tuple[str, int]]] = []
        registered_contacts(self.state, "acme", operator).addCallback(found.extend)
        return found


@pytest.fixture
def phone(tmp_path: Path) -> Phone:
    return Phone(tmp_path)


def test_a_first_register_is_challenged_with_sha256_then_md5_in_the_customer_realm(
    phone: Phone,
) -> None:
    first = phone.send(headers="Contact: <sip:anna@10.0.0.5:5062>\r\n")
    assert first.status == 401
    sha, md5 = first.headers["www-authenticate"]
    assert sha.startswith('Digest realm="acme"') and "algorithm=SHA-256" in sha
    assert "algorithm=MD5" in md5
    only_md5 = phone.send(user="bert")
    assert [v.split("algorithm=")[1][:3] for v in only_md5.headers["www-authenticate"]] == ["MD5"]
    assert phone.contacts() == []


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_register_stores_the_binding_with_the_nat_address_and_lists_it(
    phone: Phone, algorithm: str
) -> None:
    ok = phone.register("Contact: <sip:anna@10.0.0.5:5062;transport=udp>\r\nExpires: 600\r\n",
                        algorithm=algorithm)  # fmt: skip
    assert ok.status == 200
    assert ok.headers["contact"] == ["<sip:anna@10.0.0.5:5062;transport=udp>;expires=600"]
    assert phone.contacts() == [("sip:anna@10.0.0.5:5062;transport=udp", PHONE)]
    assert phone.contacts("bert") == [] and phone.contacts("carla") == []


def test_expiry_per_contact_clamped_to_the_maximum_and_ending_on_the_clock(phone: Phone) -> None:
    ok = phone.register("Contact: <sip:anna@10.0.0.5:5062>;expires=120, "
                        "<sip:anna@10.0.0.6>\r\nExpires: 7200\r\n")  # fmt: skip
    assert sorted(ok.headers["contact"]) == ["<sip:anna@10.0.0.5:5062>;expires=120",
                                             "<sip:anna@10.0.0.6>;expires=3600"]  # fmt: skip
    phone.clock.advance(120)
    assert [c for c, _ in phone.contacts()] == ["sip:anna@10.0.0.6"]
    phone.clock.advance(3480)
    assert phone.contacts() == []


def test_too_brief_an_interval_is_423_with_min_expires_and_changes_nothing(phone: Phone) -> None:
    brief = phone.register("Contact: <sip:anna@10.0.0.5>;expires=30\r\n")
    assert (brief.status, brief.headers["min-expires"]) == (423, ["60"])
    assert phone.contacts() == []


def test_expires_0_removes_one_contact_and_the_wildcard_removes_all(phone: Phone) -> None:
    phone.register("Contact: <sip:anna@10.0.0.5>, <sip:anna@10.0.0.6>, <sip:anna@10.0.0.7>\r\n")
    one = phone.register("Contact: <sip:anna@10.0.0.5>;expires=0\r\n")
    assert sorted(one.headers["contact"]) == ["<sip:anna@10.0.0.6>;expires=3600",
                                              "<sip:anna@10.0.0.7>;expires=3600"]  # fmt: skip
    query = phone.register()  # no Contact: the current bindings
    assert query.status == 200 and len(query.headers["contact"]) == 2
    bad = phone.register("Contact: *\r\n")
    assert (bad.status, bad.reason) == (400, "Wildcard Contact Needs Expires 0")
    gone = phone.register("Contact: *\r\nExpires: 0\r\n")
    assert gone.status == 200 and "contact" not in gone.headers
    assert phone.contacts() == []


def test_a_stale_nonce_gets_a_fresh_challenge_that_works(phone: Phone) -> None:
    contact = "Contact: <sip:anna@10.0.0.5>\r\n"
    challenge = phone.send(headers=contact)
    credentials = phone.authorization(challenge)
    assert phone.send(headers=contact + credentials).status == 200
    phone.clock.advance(301)  # the phone reuses its nonce at the next refresh
    again = phone.send(headers=contact + phone.authorization(challenge, nc=2))
    assert again.status == 401 and all(v.endswith("stale=true")
                                       for v in again.headers["www-authenticate"])  # fmt: skip
    assert phone.send(headers=contact + phone.authorization(again)).status == 200


def test_wrong_password_unknown_user_or_a_borrowed_account_is_403(phone: Phone) -> None:
    assert phone.register(password="guess").status == 403
    assert phone.register(user="zoe", password="x").status == 403
    # bert's credentials do not register anna's address of record
    assert phone.register(user="anna", username="bert", password="pw").status == 403
    assert phone.register(user="carla", password="x").status == 403  # no softphone
    assert phone.contacts() == []


def test_a_malformed_authorization_or_contact_is_400(phone: Phone) -> None:
    bad = phone.send(headers='Authorization: Digest username="anna, realm="acme"\r\n')
    assert (bad.status, bad.reason) == (400, "Malformed Authorization")
    for contact in ('"anna <sip:anna@10.0.0.5>', "*, <sip:anna@10.0.0.5>", "<sip:a@b>;expires=x"):
        headers = f"Contact: {contact}\r\nExpires: 0\r\n"
        bad = phone.send(headers=headers)  # the stack refuses what it cannot read at all
        if bad.status == 401:
            bad = phone.send(headers=headers + phone.authorization(bad))
        assert bad.status == 400, contact


def test_failures_block_the_source_for_a_while(phone: Phone) -> None:
    for _ in range(10):
        assert phone.register(password="guess").status == 403
    blocked = phone.send(headers="Contact: <sip:anna@10.0.0.5>\r\n")
    assert (blocked.status, blocked.reason) == (403, "Too Many Failed Attempts")
    phone.clock.advance(60)
    assert phone.register("Contact: <sip:anna@10.0.0.5>\r\n").status == 200


def test_other_methods_from_outside_the_peers_are_still_refused(phone: Phone) -> None:
    refused = phone.send("OPTIONS")
    assert (refused.status, refused.reason) == (403, "Not A Configured Peer")


def test_without_softphones_register_is_not_allowed(tmp_path: Path) -> None:
    stack = SipStack(Clock(), None)  # type: ignore[arg-type]
    transport = b2bua(stack, tmp_path)
    stack.receive_datagram(
        b"REGISTER sip:192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK-r\r\n"
        b"From: <sip:anna@192.0.2.1>;tag=a\r\nTo: <sip:anna@192.0.2.1>\r\nCall-ID: r\r\n"
        b"CSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n", transport, ("10.0.0.5", 5060))
    assert transport.statuses() == [405]


OFFICE = ("198.51.100.7", 5060)  # a customer office's NAT: every phone there shares it


def test_failures_count_per_address_and_user_so_a_forged_source_locks_no_one_else_out(
    phone: Phone,
) -> None:
    # Junk credentials "from" the office's address (UDP sources are forged at will) ...
    for _ in range(10):
        assert phone.register(password="guess", source=OFFICE).status == 403
    blocked = phone.send(source=OFFICE)
    assert (blocked.status, blocked.reason) == (403, "Too Many Failed Attempts")
    # ... lock that user at that address out, not bert behind the same NAT ...
    assert phone.register(user="bert", password="pw", source=OFFICE).status == 200
    # ... nor anna elsewhere.
    assert phone.register().status == 200


def test_an_unknown_user_is_not_counted(phone: Phone) -> None:
    for _ in range(20):
        assert phone.register(user="zoe", password="x").status == 403
    assert phone.registrar.failures.size == 0
    assert phone.register().status == 200


def test_wrong_credentials_for_a_known_account_are_audited_without_secrets(
    phone: Phone,
) -> None:
    phone.register(password="guess")
    phone.register(user="zoe", password="x")  # unknown: nothing to audit for a customer
    phone.register(user="carla", password="x")  # no softphone: unknown as an account
    phone.register(user="anna", username="bert", password="pw")
    assert phone.audited == [("acme", PHONE[0], "softphone-register", "refused", "sip",
                              "anna: wrong credentials for softphone 'anna'")]  # fmt: skip
    phone.clock.advance(10)
    phone.register(password="guess2")
    assert phone.audited[-1][-1] == ("anna: wrong credentials for softphone 'anna' "
                                     "(1 more since the last entry)")  # fmt: skip
    text = repr(phone.audited)  # no password, HA1, nonce or response
    assert "guess" not in text and ha1("anna", "acme", "secret") not in text
    assert "nonce" not in text and "response" not in text


def test_a_failing_audit_does_not_fail_the_answer(phone: Phone) -> None:
    def broken(*_entry: object) -> None:
        raise OSError("disk full")

    phone.registrar.audit = broken
    assert phone.register(password="guess").status == 403


def test_softphones_added_changed_or_deleted_at_run_time_take_effect_at_once(
    phone: Phone,
) -> None:
    assert phone.register(user="dora", password="d").status == 403  # not yet an account
    operators = dict(ACM["acme"].operators)
    operators["dora"] = Operator("dora", (), "1234", softphone=Softphone(
        "dora", MappingProxyType({"MD5": ha1("dora", "acme", "d")})))  # fmt: skip
    operators["anna"] = Operator("anna", (), "1234", softphone=Softphone(
        "anna", MappingProxyType({"MD5": ha1("anna", "acme", "new")})))  # fmt: skip
    del operators["bert"]
    phone.acm["acme"] = AcmSettings(MappingProxyType({}), MappingProxyType(operators))
    assert phone.register(user="dora", password="d").status == 200  # added
    assert phone.register(password="secret").status == 403  # changed
    assert phone.register(password="new").status == 200
    assert phone.register(user="bert", password="pw").status == 403  # deleted
    assert phone.contacts("bert") == []


def test_live_accounts_are_rebuilt_only_when_the_settings_change() -> None:
    acm = dict(ACM)
    accounts = live_accounts(lambda: acm, acm.get)
    first = accounts()
    assert accounts() is first and set(first) == {"anna", "bert"}
    acm["acme"] = AcmSettings(MappingProxyType({}), MappingProxyType({}))
    assert accounts() == {}
    acm["other"] = ACM["acme"]
    assert accounts()["anna"] == Account("other", "anna", ACM["acme"].operators["anna"]
                                         .softphone.ha1)  # type: ignore[union-attr]  # fmt: skip


def test_a_user_two_customers_claim_belongs_to_neither(caplog: pytest.LogCaptureFixture) -> None:
    found = accounts_of({"acme": ACM["acme"], "other": ACM["acme"]})
    assert found == {}
    assert "softphone user 'anna' is claimed by customers acme, other" in caplog.text


CONFIG = """\
    acm:
      groups: {{sales: {{}}}}
      operators:
        anna: {{pin: "1234", groups: {{sales: 1}}, softphone: {{user: anna, ha1: "{anna}"}}}}
  globex:
    formula: classic
    options: [acm]
    numbers: ["+3225551235"]
    acm:
      groups: {{desk: {{}}}}
      operators:
        gina: {{numbers: ["+32470001107"], pin: "1234", groups: {{desk: 1}}}}
"""


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[AcmDirectory]:
    path = write_acme(tmp_path, CONFIG.format(anna=ha1("anna", "acme", "secret")))
    clock = Clock()
    with AcmDirectory.in_data_dir(load_config(path), clock) as opened:
        yield opened


def test_the_api_keeps_softphone_users_unique_across_customers(
    directory: AcmDirectory,
) -> None:
    phone = {"user": "anna", "ha1": ha1("anna", "globex", "x")}
    gina = {"numbers": ["+32470001107"], "groups": {"desk": 1}, "softphone": phone}
    with pytest.raises(ConflictError) as refused:
        directory.put_operator("globex", "gina", gina, "api", dry_run=True)
    assert str(refused.value) == ("softphone user 'anna' is taken by another customer's "
                                  "softphone (softphone users are unique across customers); "
                                  "choose another")  # fmt: skip
    with pytest.raises(ConflictError, match="would belong to operators anna, carla"):
        directory.put_operator("acme", "carla", {"pin": "1111", "groups": {"sales": 1},
                                                 "softphone": phone}, "api")  # fmt: skip
    # An operator keeps its own user through a change; another user is free.
    anna = {"pin": "1234", "groups": {"sales": 2},
            "softphone": {"user": "anna", "ha1": ha1("anna", "acme", "new")}}  # fmt: skip
    directory.put_operator("acme", "anna", anna, "api")
    directory.put_operator("globex", "gina", {**gina, "softphone": {**phone, "user": "gina"}},
                           "api")  # fmt: skip


def test_the_registrar_sees_the_directorys_changes(directory: AcmDirectory) -> None:
    accounts = live_accounts(lambda: directory.config.customers, directory.settings)
    assert set(accounts()) == {"anna"}
    phone = {"user": "gina", "ha1": ha1("gina", "globex", "x")}
    directory.put_operator("globex", "gina", {"numbers": ["+32470001107"],
                                              "groups": {"desk": 1}, "softphone": phone},
                           "api")  # fmt: skip
    assert accounts()["gina"] == Account("globex", "gina", {"MD5": ha1("gina", "globex", "x")})
    directory.delete_operator("acme", "anna", "api")
    assert set(accounts()) == {"gina"}  # a deleted operator no longer registers


def test_serve_opens_register_with_acm_even_before_any_softphone(directory: AcmDirectory) -> None:
    directory.delete_operator("acme", "anna", "api")
    stack = SipStack(Clock(), None)  # type: ignore[arg-type]
    registrar = _registrar(Clock(), directory.config, stack, MemoryState(Clock()), directory)
    assert registrar is not None and stack.open_methods == frozenset({"REGISTER"})
    assert registrar.accounts() == {}
    phone = {"user": "gina", "ha1": ha1("gina", "globex", "x")}
    directory.put_operator("globex", "gina", {"numbers": ["+32470001107"],
                                              "groups": {"desk": 1}, "softphone": phone},
                           "api")  # fmt: skip
    assert set(registrar.accounts()) == {"gina"}
