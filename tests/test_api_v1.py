"""/api/v1 over real HTTP on loopback: tokens, their limits, each endpoint, the OpenAPI document.

The site runs on the real reactor with a real mode store (SQLite in
tmp_path); requests go through twisted.web.client.Agent. The token checker's
cache, sharing and rate limit are also driven directly with a Clock.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

import engine.api_auth
from apikit import Api
from engine.acm.runtime import AcmRuntime
from engine.api_auth import TokenAuth
from engine.api_v1 import ROUTES, Handler
from engine.config import Config, Customer, SipSettings
from engine.modes.store import ModeChange, ModeStore
from engine.passwords import hash_password
from engine.state.memory import MemoryState

pytestmark = pytest.mark.filterwarnings("ignore:Using readBody with a transport")

TOKENS = {"acme": "acme-Token-1", "tiny": "tiny-Token-2", "plain": "plain-Token-3"}
HASHES = {cid: hash_password(token) for cid, token in TOKENS.items()}


def bearer(customer: str, token: str | None = None) -> str:
    return f"Bearer {customer}:{token if token is not None else TOKENS[customer]}"


def customer(cid: str, formula: str, token: str | None) -> Customer:
    return Customer(id=cid, formula=formula, options=frozenset(), numbers=("+3225551234",),
                    api_token=token)  # fmt: skip


@pytest.fixture
def config(tmp_path: Path) -> Config:
    customers = [
        customer("acme", "drs", HASHES["acme"]),
        customer("tiny", "continuity", HASHES["tiny"]),
        customer("plain", "classic", HASHES["plain"]),  # no DRS password: no DRS
        customer("closed", "drs", None),  # no token: no API
    ]
    return Config(
        file=tmp_path / "vms.yaml", sip=SipSettings(), state="memory", data_dir=tmp_path,
        trees=tmp_path, portal=("127.0.0.1", 0), drs_service_number="+3278150000",
        drs_max_days=31, customers={c.id: c for c in customers},
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ModeStore]:
    with ModeStore(tmp_path / "modes.sqlite") as opened:
        yield opened


@pytest.fixture
def api(make_api: Callable[..., Api], config: Config, store: ModeStore) -> Api:
    return make_api(config=config, store=store)


def iso_in(seconds: float) -> str:
    return datetime.fromtimestamp(time.time() + seconds, UTC).isoformat()


def parsed(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# -- the OpenAPI document --------------------------------------------------------------


@pytest.fixture
def acm_resources(config: Config) -> dict[str, tuple[tuple[str, ...], Handler]]:
    """What ``vms serve`` adds to /api/v1 when some customer has ACM (nothing opened)."""
    clock = Clock()
    return AcmRuntime(clock, config, MemoryState(clock)).resources()


@pytest_twisted.ensureDeferred
async def test_the_openapi_document_lists_every_route(
    make_api: Callable[..., Api],
    config: Config,
    store: ModeStore,
    acm_resources: dict[str, tuple[tuple[str, ...], Handler]],
) -> None:
    api = make_api(config=config, store=store, resources=acm_resources)
    status, _, document = await api.call("GET", "/api/openapi.json")
    assert status == 200
    assert document["openapi"].startswith("3.")
    routes: dict[str, tuple[str, ...]] = api.v1.routes
    assert set(ROUTES) | {"acm", "stats", "email"} <= set(routes)
    served = {name: {m.lower() for m in methods} for name, methods in routes.items()}
    prefix = "/api/v1/customers/{customer}/"
    documented: dict[str, set[str]] = {}
    for path, item in document["paths"].items():
        if path.startswith("/api/v1/"):
            assert path.startswith(prefix), path
            resource = path.removeprefix(prefix).partition("/")[0]
            documented.setdefault(resource, set()).update(set(item) - {"parameters"})
            declared = {p["name"] for p in item["parameters"] if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), path
    assert documented == served  # every resource, with every method it answers (and no more)
    scheme = document["components"]["securitySchemes"]["customerToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert document["security"] == [{"customerToken": []}]
    assert document["paths"]["/api/health"]["get"]["security"] == []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if path.startswith("/api/v1/") and method != "parameters":
                assert {"200", "401", "403", "429", "503"} <= set(operation["responses"])
    operations = [
        op["operationId"]
        for item in document["paths"].values()
        for method, op in item.items()
        if method != "parameters" and "operationId" in op
    ]
    assert len(operations) == len(set(operations))
    refs = {r.rpartition("/")[2] for r in _refs(document)}
    assert refs and refs <= set(document["components"]["schemas"])


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


@pytest_twisted.ensureDeferred
async def test_health_still_answers(api: Api) -> None:
    assert (await api.call("GET", "/api/health"))[::2] == (200, {"status": "ok"})


# -- tokens ----------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_no_token_is_401_with_a_bearer_challenge(api: Api) -> None:
    status, headers, body = await api.call("GET", "/api/v1/customers/acme/mode")
    assert status == 401
    assert headers.getRawHeaders("www-authenticate") == ['Bearer realm="vms"']
    assert "Authorization: Bearer CUSTOMER:TOKEN" in body["error"]


@pytest.mark.parametrize(
    "auth",
    [
        bearer("acme", "wrong"),
        bearer("acme", TOKENS["tiny"]),  # another customer's token
        bearer("nobody", "x"),
        bearer("closed", "anything"),  # a customer without a token
        f"Basic {TOKENS['acme']}",
        TOKENS["acme"],
        "Bearer acme-Token-1",  # no customer
        "Bearer",
    ],
)
@pytest_twisted.ensureDeferred
async def test_a_wrong_token_is_401(api: Api, auth: str) -> None:
    status, headers, body = await api.call("GET", "/api/v1/customers/acme/mode", auth)
    assert status == 401
    challenge = 'Bearer realm="vms", error="invalid_token"'
    assert headers.getRawHeaders("www-authenticate") == [challenge]
    assert body == {"error": "the API token is not valid"}


@pytest_twisted.ensureDeferred
async def test_a_token_reaches_only_its_own_customer(api: Api) -> None:
    for path in ("/api/v1/customers/tiny/mode", "/api/v1/customers/nobody/audit"):
        status, _, body = await api.call("GET", path, bearer("acme"))
        assert status == 403
        assert "does not give access to customer" in body["error"]
    status, _, _ = await api.call("PUT", "/api/v1/customers/tiny/mode", bearer("acme"),
                                  {"mode": "normal"})  # fmt: skip
    assert status == 403
    assert api.changes == []


@pytest_twisted.ensureDeferred
async def test_wrong_tokens_are_limited_per_address(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, "vms"):
        for _ in range(5):
            status, _, _ = await api.call("GET", "/api/v1/customers/acme/mode",
                                          bearer("acme", "guess-123"))  # fmt: skip
            assert status == 401
        status, headers, body = await api.call("GET", "/api/v1/customers/acme/mode",
                                               bearer("acme"))  # fmt: skip
    assert status == 429  # even the right token: nothing is checked until the wait is over
    [retry_after] = headers.getRawHeaders("retry-after")
    assert 1 <= int(retry_after) <= 60
    assert "too many tokens tried from 127.0.0.1: wait" in body["error"]
    assert "guess-123" not in caplog.text
    assert "API: a wrong token from 127.0.0.1 for customer 'acme'" in caplog.text


@pytest_twisted.ensureDeferred
async def test_scrypt_runs_off_the_reactor_thread(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[threading.Thread] = []
    real = engine.api_auth.verify_password

    def spy(token: str, stored: str) -> bool:
        threads.append(threading.current_thread())
        return real(token, stored)

    monkeypatch.setattr(engine.api_auth, "verify_password", spy)
    for _ in range(3):
        status, _, _ = await api.call("GET", "/api/v1/customers/acme/mode", bearer("acme"))
        assert status == 200
    assert len(threads) == 1  # then cached
    assert threads[0] is not threading.main_thread()


def test_verifications_are_cached_shared_and_forgotten() -> None:
    clock = Clock()
    runs: list[Deferred[bool]] = []

    def verify(token: str, stored: str) -> Deferred[bool]:
        runs.append(Deferred())
        return runs[-1]

    tokens: dict[str, str | None] = {"acme": "scrypt$hash-1"}
    auth = TokenAuth(clock, tokens, verify, cache_ttl=60)
    header = b"Bearer acme:t0ken"
    first, second = auth.check(header, "192.0.2.1"), auth.check(header, "192.0.2.2")
    assert len(runs) == 1  # one scrypt for both
    runs[0].callback(True)
    assert first.result.customer == second.result.customer == "acme"
    assert auth.check(header, "192.0.2.1").result.customer == "acme"
    assert len(runs) == 1  # cached
    clock.advance(61)
    auth.check(header, "192.0.2.1")
    assert len(runs) == 2  # expired
    runs[1].callback(True)
    tokens["acme"] = "scrypt$hash-2"  # the token was changed in the configuration
    late = auth.check(header, "192.0.2.1")
    assert len(runs) == 3
    runs[2].callback(False)
    assert late.result.status == 401


def test_checks_under_way_count_against_the_limit() -> None:
    runs: list[Deferred[bool]] = []

    def verify(token: str, stored: str) -> Deferred[bool]:
        runs.append(Deferred())
        return runs[-1]

    auth = TokenAuth(Clock(), {"acme": "h"}, verify, max_failures=3)
    same = [auth.check(b"Bearer acme:same", "192.0.2.1") for _ in range(4)]
    guesses = [auth.check(f"Bearer acme:guess{i}".encode(), "192.0.2.1") for i in range(3)]
    assert len(runs) == 3  # one for the four same tokens, two guesses; the third waits
    assert (guesses[2].result.status, guesses[2].result.retry_after) == (429, 1)
    runs[0].callback(True)
    assert [d.result.customer for d in same] == ["acme"] * 4
    auth.check(b"Bearer acme:guess9", "192.0.2.1")
    assert len(runs) == 4  # a place was free again


def test_the_limit_lifts_after_the_window() -> None:
    clock = Clock()
    auth = TokenAuth(clock, {"acme": "h"}, lambda t, s: succeed(False), max_failures=2,
                     window=60)  # fmt: skip
    assert auth.check(b"Bearer acme:a", "192.0.2.1").result.status == 401
    clock.advance(30)
    assert auth.check(b"Bearer acme:b", "192.0.2.1").result.status == 401
    blocked = auth.check(b"Bearer acme:c", "192.0.2.1").result
    assert (blocked.status, blocked.retry_after) == (429, 30)
    assert auth.check(b"Bearer acme:c", "192.0.2.9").result.status == 401  # another address
    clock.advance(30)
    assert auth.check(b"Bearer acme:d", "192.0.2.1").result.status == 401  # the first one aged


# -- the endpoints ---------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_customer_never_switched_is_normal(api: Api) -> None:
    status, _, body = await api.call("GET", "/api/v1/customers/acme/mode", bearer("acme"))
    assert (status, body) == (200, {"customer": "acme", "mode": "normal", "since": None,
                                    "until": None, "by": ""})  # fmt: skip


@pytest_twisted.ensureDeferred
async def test_drs_on_and_off(api: Api, store: ModeStore) -> None:
    before = time.time()
    status, _, body = await api.call("PUT", "/api/v1/customers/acme/mode", bearer("acme"),
                                     {"mode": "drs"})  # fmt: skip
    assert status == 200
    assert (body["customer"], body["mode"], body["by"]) == ("acme", "drs", "api")
    assert before - 1 <= parsed(body["since"]) <= time.time()
    assert abs(parsed(body["until"]) - (before + 31 * 86400)) < 5  # drs.max_days by default
    assert store.get("acme").mode == "drs"
    [change] = api.changes
    assert (change.customer, change.old.mode, change.new.mode, change.via) == (
        "acme", "normal", "drs", "api")  # fmt: skip
    assert (await api.call("GET", "/api/v1/customers/acme/mode", bearer("acme")))[2] == body

    status, _, body = await api.call("PUT", "/api/v1/customers/acme/mode", bearer("acme"),
                                     {"mode": "normal", "until": None})  # fmt: skip
    assert (status, body["mode"], body["until"]) == (200, "normal", None)
    assert [c.new.mode for c in api.changes] == ["drs", "normal"]

    status, _, body = await api.call("PUT", "/api/v1/customers/acme/mode", bearer("acme"),
                                     {"mode": "normal"})  # fmt: skip
    assert (status, body["mode"]) == (200, "normal")
    assert len(api.changes) == 2  # nothing changed, nothing reported


@pytest_twisted.ensureDeferred
async def test_continuity_with_an_end(api: Api, store: ModeStore) -> None:
    until = iso_in(7200)
    status, _, body = await api.call("PUT", "/api/v1/customers/tiny/mode", bearer("tiny"),
                                     {"mode": "continuity", "until": until})  # fmt: skip
    assert (status, body["mode"]) == (200, "continuity")
    assert abs(parsed(body["until"]) - parsed(until)) < 1
    assert store.get("tiny").until == pytest.approx(parsed(until))


@pytest.mark.parametrize(
    ("customer_id", "body", "status", "error"),
    [
        ("acme", b"{not json", 400, 'a JSON object such as {"mode": "drs"'),
        ("acme", b"\xff\xfe", 400, "a JSON object such as"),
        ("acme", ["drs"], 400, "a JSON object such as"),
        ("acme", {"until": None}, 400, "a JSON object such as"),
        ("acme", {"mode": "holiday"}, 400, 'unknown mode "holiday": use normal, drs or continuity'),
        ("acme", {"mode": "drs", "why": "fire"}, 400, "unknown field 'why'"),
        ("acme", {"mode": "drs", "until": "2020-01-01T00:00:00Z"}, 400,
         "until (2020-01-01T00:00:00Z) is in the past"),
        ("acme", {"mode": "drs", "until": "tomorrow"}, 400, "until must be an ISO 8601 time"),
        ("acme", {"mode": "drs", "until": 1893456000}, 400, "until must be an ISO 8601 time"),
        ("acme", {"mode": "drs", "until": "2099-01-01T00:00:00"}, 400,
         "until needs its time zone, e.g. '2099-01-01T00:00:00Z'"),
        ("acme", {"mode": "drs", "until": "2099-01-01T00:00:00Z"}, 400,
         "DRS lasts at most drs.max_days (31 days)"),
        ("acme", {"mode": "normal", "until": "2099-01-01T00:00:00Z"}, 400,
         "'until' applies to drs and continuity"),
        ("acme", b"x" * 5000, 413, "longer than 4096 bytes"),
        ("acme", {"mode": "continuity"}, 403,
         "customer 'acme' has the drs formula, which does not include Voice Continuity"),
        ("tiny", {"mode": "drs"}, 403, "customer 'tiny' has the continuity formula"),
        ("plain", {"mode": "drs"}, 403, "customers.plain.drs_password"),
    ],
)  # fmt: skip
@pytest_twisted.ensureDeferred
async def test_a_refused_change_says_why_and_changes_nothing(
    api: Api, store: ModeStore, customer_id: str, body: Any, status: int, error: str
) -> None:
    got, _, answer = await api.call("PUT", f"/api/v1/customers/{customer_id}/mode",
                                    bearer(customer_id), body)  # fmt: skip
    assert got == status
    assert error in answer["error"]
    assert store.get(customer_id).mode == "normal"
    assert api.changes == []
    refused = [e for e in store.audit_log(customer_id) if e.outcome == "refused"]
    assert len(refused) == (status == 403)  # a refused entitlement is audited, a typo is not


@pytest_twisted.ensureDeferred
async def test_the_audit(api: Api) -> None:
    token = bearer("acme")
    mode = "/api/v1/customers/acme/mode"
    assert (await api.call("PUT", mode, token, {"mode": "drs"}))[0] == 200
    assert (await api.call("PUT", mode, token, {"mode": "normal"}))[0] == 200
    status, _, entries = await api.call("GET", "/api/v1/customers/acme/audit", token)
    assert status == 200
    assert [(e["customer"], e["action"], e["outcome"], e["via"]) for e in entries] == [
        ("acme", "drs-activate", "ok", "api"),
        ("acme", "drs-deactivate", "ok", "api"),
    ]
    assert set(entries[0]) == {"at", "customer", "caller", "action", "outcome", "via", "detail"}
    assert abs(parsed(entries[0]["at"]) - time.time()) < 60
    status, _, last = await api.call("GET", "/api/v1/customers/acme/audit?limit=1", token)
    assert (status, last) == (200, entries[1:])
    # A bare '+' in the zone is kept as a plus, not read as a space.
    later = iso_in(3600)
    for query in (f"since={later}", f"since={later.replace('+', '%2B')}"):
        status, _, none = await api.call("GET", f"/api/v1/customers/acme/audit?{query}", token)
        assert (status, none) == (200, [])
    for query, error in (("since=yesterday", "since must be an ISO 8601 time"),
                         ("limit=0", "limit must be a whole number from 1 to 1000"),
                         ("limit=x", "limit must be")):  # fmt: skip
        status, _, body = await api.call("GET", f"/api/v1/customers/acme/audit?{query}", token)
        assert (status, body["error"].startswith(error)) == (400, True)
    status, _, other = await api.call("GET", "/api/v1/customers/tiny/audit", bearer("tiny"))
    assert (status, other) == (200, [])


@pytest_twisted.ensureDeferred
async def test_a_failing_hook_does_not_undo_the_change(
    make_api: Callable[..., Api],
    config: Config,
    store: ModeStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(change: ModeChange) -> None:
        raise RuntimeError("mailer down")

    api = make_api(config=config, store=store, on_change=broken)
    with caplog.at_level(logging.ERROR, "vms.api"):
        status, _, body = await api.call("PUT", "/api/v1/customers/acme/mode", bearer("acme"),
                                         {"mode": "drs"})  # fmt: skip
    assert (status, body["mode"]) == (200, "drs")
    assert store.get("acme").mode == "drs"
    assert "the change of acme to drs was made, but on_change failed" in caplog.text


@pytest_twisted.ensureDeferred
async def test_without_configuration_v1_is_503(make_api: Callable[..., Api]) -> None:
    api = make_api()
    status, _, body = await api.call("GET", "/api/v1/customers/acme/mode", bearer("acme"))
    assert status == 503
    assert body == {"error": "this engine runs without customers: no /api/v1"}
    assert (await api.call("GET", "/api/health"))[0] == 200


@pytest_twisted.ensureDeferred
async def test_unknown_paths_and_methods(api: Api) -> None:
    token = bearer("acme")
    for path in ("/api/v1/customers/acme", "/api/v1/customers/acme/modes", "/api/v1/x",
                 "/api/v1/customers/acme/mode/extra"):  # fmt: skip
        status, _, body = await api.call("GET", path, token)
        assert (status, body["error"]) == (404, f"no such resource: {path}")
    status, headers, body = await api.call("DELETE", "/api/v1/customers/acme/mode", token)
    assert (status, headers.getRawHeaders("allow")) == (405, ["GET, PUT"])
    status, headers, _ = await api.call("PUT", "/api/v1/customers/acme/audit", token, {})
    assert (status, headers.getRawHeaders("allow")) == (405, ["GET"])


@pytest_twisted.ensureDeferred
async def test_a_crash_is_a_logged_500(
    api: Api,
    store: ModeStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(customer: str) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store, "get", broken)
    with caplog.at_level(logging.ERROR, "vms.api"):
        status, _, body = await api.call("GET", "/api/v1/customers/acme/mode", bearer("acme"))
    assert (status, body) == (500, {"error": "the engine could not answer this request; see "
                                             "its log"})  # fmt: skip
    assert "API: GET /api/v1/customers/acme/mode failed" in caplog.text
    assert "RuntimeError: disk on fire" in caplog.text
    assert TOKENS["acme"] not in caplog.text


@pytest_twisted.ensureDeferred
async def test_a_busy_database_is_503(
    api: Api, store: ModeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def locked(customer: str) -> Any:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(store, "get", locked)
    status, headers, body = await api.call("GET", "/api/v1/customers/acme/mode", bearer("acme"))
    assert (status, headers.getRawHeaders("retry-after")) == (503, ["1"])
    assert body == {"error": "the mode database is busy or failing; try again"}
