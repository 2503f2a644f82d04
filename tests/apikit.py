"""The HTTP API over real loopback: serve ``build_site`` on a free port, call it with Agent.

``make_api`` is a fixture, available to every test through ``pytest_plugins``
in tests/conftest.py; the reactor is imported only when a test runs, after
pytest-twisted has installed it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, succeed
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from engine.api import build_site
from engine.modes.store import ModeChange

__all__ = ["Api", "make_api"]


@dataclass
class Api:
    """A served site: its URL, and the mode changes its ``on_change`` heard of."""

    url: str
    changes: list[ModeChange]
    site: Any = None

    async def call(
        self, method: str, path: str, auth: str | None = None, body: Any = None
    ) -> tuple[int, Headers, Any]:
        headers = Headers({"authorization": [auth]} if auth is not None else {})
        producer = None
        if body is not None:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            producer = _Bytes(raw)
            headers.addRawHeader("content-type", "application/json")
        from twisted.internet import reactor

        response = await Agent(reactor).request(
            method.encode(), (self.url + path).encode(), headers, producer
        )
        data = await readBody(response)
        return response.code, response.headers, json.loads(data) if data else None

    @property
    def v1(self) -> Any:
        """The /api/v1 resource, to plug more resources into (``V1.add``)."""
        return self.site.resource.children[b"api"].children[b"v1"]


@implementer(IBodyProducer)
class _Bytes:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.length = len(data)

    def startProducing(self, consumer: Any) -> Deferred[None]:
        consumer.write(self.data)
        return succeed(None)

    def pauseProducing(self) -> None: ...

    def stopProducing(self) -> None: ...


@pytest.fixture
def make_api() -> Iterator[Callable[..., Api]]:
    """Serves build_site(ready, **site_args) on a free loopback port until the test ends."""
    from twisted.internet import reactor

    ports = []

    def make(**site_args: Any) -> Api:
        changes: list[ModeChange] = []
        site_args.setdefault("on_change", changes.append)
        site = build_site(lambda: True, **site_args)
        ports.append(reactor.listenTCP(0, site, interface="127.0.0.1"))
        return Api(f"http://127.0.0.1:{ports[-1].getHost().port}", changes, site)

    yield make
    for port in ports:
        pytest_twisted.blockon(port.stopListening())
