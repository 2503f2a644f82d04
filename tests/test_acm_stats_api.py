"""``GET /api/v1/customers/ID/stats``: the scripted day over real HTTP, live waits, refusals."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from acmdaykit import ACM, DAY_EVENTS, SINCE, UNTIL, at, clock_at, stats_store, write_config
from twisted.internet.task import Clock

import engine.api_stats
from apikit import Api
from engine.acm.report import as_json, compute
from engine.acm.stats import StatsStore
from engine.api_stats import stats_handler
from engine.config import load_config
from engine.passwords import hash_password
from engine.state.memory import MemoryState

pytestmark = pytest.mark.filterwarnings("ignore:Using readBody with a transport")

TOKENS = {"acme": "acme-Stats-1", "initech": "initech-Stats-2"}
AUTH = {cid: f"Bearer {cid}:{token}" for cid, token in TOKENS.items()}
HASHES = {cid: hash_password(token) for cid, token in TOKENS.items()}
DAY = "since=2026-12-01T09:00:00Z&until=2026-12-01T17:00:00Z"


@pytest.fixture
def clock() -> Clock:
    """The engine's clock: the end of the scripted day."""
    return clock_at("17:00:00")


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[StatsStore]:
    opened = stats_store(tmp_path / "var", clock, DAY_EVENTS)
    yield opened
    opened.close()


@pytest.fixture
def serve(
    make_api: Callable[..., Api], tmp_path: Path, store: StatsStore, clock: Clock
) -> Callable[..., Api]:
    """The API with ``stats`` plugged in; ``queues``: the shared state for live waits."""
    config = load_config(write_config(tmp_path, HASHES["acme"], HASHES["initech"]))

    def with_queues(queues: Any = None) -> Api:
        api = make_api(config=config)
        handler = stats_handler(lambda c: config.customers[c].acm, store, clock, queues)
        api.v1.add("stats", ("GET",), handler)
        return api

    return with_queues


@pytest_twisted.ensureDeferred
async def test_the_day_as_json(serve: Callable[..., Api]) -> None:
    status, _, body = await serve().call("GET", f"/api/v1/customers/acme/stats?{DAY}",
                                         AUTH["acme"])  # fmt: skip
    assert status == 200
    assert body == as_json(compute(DAY_EVENTS, "acme", ACM, SINCE, UNTIL))
    assert body["staffing"][0]["needed"] == 1


@pytest_twisted.ensureDeferred
async def test_live_waits_come_from_the_shared_state(
    serve: Callable[..., Api], clock: Clock
) -> None:
    queues = MemoryState(clock)
    for call_id, when in (("x1", "16:59:30"), ("x2", "16:59:50")):
        await queues.enqueue("acme", "sales", call_id, 0, at(when))
    status, _, body = await serve(queues).call(
        "GET", "/api/v1/customers/acme/stats?group=sales", AUTH["acme"]
    )
    assert status == 200
    assert (body["since"], body["until"]) == ("2026-12-01T00:00:00Z", "2026-12-01T17:00:00Z")
    sales = body["queues"][0]
    assert (sales["group"], sales["waiting"], sales["oldest_waiting"]) == ("sales", 2, 30.0)
    assert body["channels"][0]["waiting"] == 2


@pytest_twisted.ensureDeferred
async def test_another_customers_token_is_403(serve: Callable[..., Api]) -> None:
    status, _, body = await serve().call("GET", "/api/v1/customers/acme/stats",
                                         AUTH["initech"])  # fmt: skip
    assert (status, body) == (403, {"error": "this token does not give access to customer "
                                             "'acme'"})  # fmt: skip


@pytest_twisted.ensureDeferred
async def test_refusals(serve: Callable[..., Api]) -> None:
    api = serve()
    for query, status, message in [
        ("since=yesterday", 400, "since must be an ISO 8601 time such as 2026-12-23T10:00:00Z"),
        ("since=2026-12-01T09:00:00", 400, "since needs its time zone, e.g. "
                                           "'2026-12-01T09:00:00Z' for UTC"),
        ("since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z", 400,
         "since (2026-12-02T00:00:00Z) must come before until (2026-12-01T00:00:00Z)"),
        ("group=sales,nope", 400, "unknown group 'nope' (groups: sales, support)"),
        ("from=2026-12-01T00:00:00Z", 400, "unknown parameter 'from': use since, until and group"),
    ]:  # fmt: skip
        got = await api.call("GET", f"/api/v1/customers/acme/stats?{query}", AUTH["acme"])
        assert (got[0], got[2]) == (status, {"error": message}), query
    got = await api.call("GET", "/api/v1/customers/initech/stats", AUTH["initech"])
    assert (got[0], got[2]) == (404, {"error": "customer 'initech' has no ACM, so it has no "
                                               "statistics"})  # fmt: skip
    got = await api.call("GET", "/api/v1/customers/acme/stats/sales", AUTH["acme"])
    assert got[0] == 404
    got = await api.call("POST", "/api/v1/customers/acme/stats", AUTH["acme"])
    assert got[0] == 405


@pytest_twisted.ensureDeferred
async def test_a_window_is_at_most_92_days(serve: Callable[..., Api]) -> None:
    got = await serve().call("GET", "/api/v1/customers/acme/stats?since=1970-01-01T00:00:00Z",
                             AUTH["acme"])  # fmt: skip
    assert (got[0], got[2]) == (400, {"error": (
        "the window from 1970-01-01T00:00:00Z to 2026-12-01T17:00:00Z is 20788.7 days; "
        "statistics cover at most 92 days at a time, so ask for shorter windows")})  # fmt: skip
    got = await serve().call("GET", "/api/v1/customers/acme/stats?since=2026-09-01T00:00:00Z"
                             "&until=2026-12-01T17:00:00Z", AUTH["acme"])  # fmt: skip
    assert got[0] == 200  # 91.7 days


@pytest_twisted.ensureDeferred
async def test_the_report_is_read_and_computed_off_the_reactor(
    serve: Callable[..., Api], store: StatsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[threading.Thread] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread())
        return compute(*args, **kwargs)

    monkeypatch.setattr(engine.api_stats, "compute", spy)
    half = len(DAY_EVENTS) // 2
    store.flush()  # the fixture's events, committed
    store.record(DAY_EVENTS[half])  # recorded twice: pending once more, not yet committed
    status, _, body = await serve().call("GET", f"/api/v1/customers/acme/stats?{DAY}",
                                         AUTH["acme"])  # fmt: skip
    assert status == 200
    assert threads and threads[0] is not threading.main_thread()
    events = [*DAY_EVENTS, DAY_EVENTS[half]]
    assert body == as_json(compute(events, "acme", ACM, SINCE, UNTIL))


@pytest_twisted.ensureDeferred
async def test_an_unreadable_database_is_503(
    serve: Callable[..., Api], store: StatsStore, tmp_path: Path
) -> None:
    api = serve()
    store.path.rename(tmp_path / "moved.sqlite")  # the engine's connection stays open
    status, headers, body = await api.call("GET", f"/api/v1/customers/acme/stats?{DAY}",
                                           AUTH["acme"])  # fmt: skip
    assert (status, body) == (503, {"error": "the statistics database is busy or failing; "
                                             "try again"})  # fmt: skip
    assert headers.getRawHeaders("retry-after") == ["1"]
