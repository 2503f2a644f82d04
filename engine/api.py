"""The engine's HTTP face (contract.md, "HTTP"): health, the OpenAPI document, /api/v1.

``GET /api/health`` answers 200 ``{"status": "ok"}`` once the engine takes
calls (its SIP ports are open) and 503 ``{"status": "starting"}`` before.
``GET /api/counters`` gives the engine's totals since it started (the SIP
layer's, the flood limits' refusals), for monitoring; like health it needs
no token: totals name no number, address or customer. The customer API
lives under ``/api/v1/`` (engine/api_v1.py), described at
``/api/openapi.json`` (engine/api_openapi.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Protocol

from twisted.web.resource import Resource
from twisted.web.server import Site

from engine.api_openapi import OPENAPI
from engine.api_v1 import V1, Handler

if TYPE_CHECKING:
    from engine.config import Config
    from engine.modes.store import ModeChange, ModeStore

__all__ = ["OPENAPI", "Counted", "build_site"]


class _Json(Resource):
    isLeaf = True  # noqa: N815 - Twisted's name

    def __init__(self, body: Any) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.data = json.dumps(body).encode()

    def render_GET(self, request: Any) -> bytes:  # noqa: N802 - Twisted's name
        request.setHeader(b"content-type", b"application/json")
        return self.data


class _Health(Resource):
    isLeaf = True  # noqa: N815 - Twisted's name

    def __init__(self, ready: Callable[[], bool]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.ready = ready

    def render_GET(self, request: Any) -> bytes:  # noqa: N802
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        if self.ready():
            return b'{"status": "ok"}'
        request.setResponseCode(503)
        return b'{"status": "starting"}'


class Counted(Protocol):
    """What keeps counters: ``SipStack`` and ``FloodGuard`` (a dataclass of counts each)."""

    @property
    def counters(self) -> Any: ...


class _Counters(Resource):
    isLeaf = True  # noqa: N815 - Twisted's name

    def __init__(self, sources: Mapping[str, Counted]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.sources = dict(sources)

    def render_GET(self, request: Any) -> bytes:  # noqa: N802
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        body = {name: asdict(source.counters) for name, source in self.sources.items()}
        return json.dumps(body).encode()


def build_site(
    ready: Callable[[], bool],
    config: Config | None = None,
    store: ModeStore | None = None,
    on_change: Callable[[ModeChange], None] | None = None,
    reactor: Any = None,
    resources: Mapping[str, tuple[tuple[str, ...], Handler]] | None = None,
    counters: Mapping[str, Counted] | None = None,
) -> Site:
    """The HTTP site; ``ready()`` says whether the engine takes calls.

    ``/api/v1`` needs ``config`` (the customers and their token hashes) and
    ``store``; without them it answers 503. ``on_change`` hears of every
    mode change made through the API, after the store has it. ``resources``
    adds more of ``/api/v1/customers/ID/``: name -> (methods, handler).
    ``counters`` are what ``/api/counters`` shows, read at each request:
    name -> its keeper (``{"sip": stack, "floods": guard}``).
    """
    if reactor is None:
        from twisted.internet import reactor as default  # noqa: PLC0415 - installed late

        reactor = default
    # Twisted's resources are untyped, and mypy cannot see that they provide IResource.
    root: Any = Resource()  # type: ignore[no-untyped-call]
    api: Any = Resource()  # type: ignore[no-untyped-call]
    root.putChild(b"api", api)
    api.putChild(b"health", _Health(ready))
    api.putChild(b"counters", _Counters(counters or {}))
    api.putChild(b"openapi.json", _Json(OPENAPI))
    v1 = V1(reactor, config, store, on_change)
    for name, (methods, handler) in (resources or {}).items():
        v1.add(name, methods, handler)
    api.putChild(b"v1", v1)
    site = Site(root)  # type: ignore[no-untyped-call]
    site.displayTracebacks = False
    return site
