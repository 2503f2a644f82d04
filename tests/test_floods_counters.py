"""``GET /api/counters``: the flood limits' refusals and the SIP layer's totals, over real HTTP."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import pytest_twisted
from twisted.internet.task import Clock

from apikit import Api
from engine.api import OPENAPI
from engine.floods import FloodGuard, FloodSettings, RateLimit
from engine.sip.stack import SipStack
from sipkit import PEER, FakeTransport, RecordingTU, request_bytes

pytestmark = pytest.mark.filterwarnings("ignore:Using readBody with a transport")

SRC = "192.0.2.10"


@pytest_twisted.ensureDeferred
async def test_counters_show_flood_refusals_per_kind_and_the_sip_totals(
    make_api: Callable[..., Api],
) -> None:
    clock = Clock()
    floods = FloodGuard(clock, FloodSettings(per_number=RateLimit(1, 1),
                                             per_source=RateLimit(1, 2)))  # fmt: skip
    stack = SipStack(clock, RecordingTU())  # type: ignore[arg-type]
    api = make_api(counters={"sip": stack, "floods": floods})
    status, headers, body = await api.call("GET", "/api/counters")
    assert status == 200 and headers.getRawHeaders("cache-control") == ["no-store"]
    assert body["floods"] == {"admitted": 0, "refused_number": 0, "refused_source": 0,
                              "evicted_numbers": 0, "evicted_sources": 0}  # fmt: skip
    assert body["sip"]["requests"] == 0
    # Read at each request: what happened since shows at once.
    assert floods.admit("+3225551234", None, SRC) is None
    assert floods.admit("+3225551234", None, SRC) is not None  # the number's bucket
    assert floods.admit("+3225559999", None, SRC) is None
    assert floods.admit(None, None, SRC) is not None  # the source's bucket
    stack.receive_datagram(request_bytes("OPTIONS"), FakeTransport(), PEER)  # type: ignore[arg-type]
    stack.receive_datagram(b"not SIP at all", FakeTransport(), PEER)  # type: ignore[arg-type]
    _, _, body = await api.call("GET", "/api/counters")
    floods_seen = body["floods"]
    assert (floods_seen["admitted"], floods_seen["refused_number"],
            floods_seen["refused_source"]) == (2, 1, 1)  # fmt: skip
    assert (body["sip"]["requests"], body["sip"]["malformed"]) == (1, 1)


@pytest_twisted.ensureDeferred
async def test_counters_need_no_token_and_are_documented(make_api: Callable[..., Api]) -> None:
    api = make_api()  # no customers, no store: /api/v1 answers 503, the counters still answer
    assert (await api.call("GET", "/api/counters"))[::2] == (200, {})
    operation = OPENAPI["paths"]["/api/counters"]["get"]
    assert operation["security"] == [] and "refused_source" in operation["description"]
