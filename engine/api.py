"""The engine's HTTP face: health and the OpenAPI document (contract.md, "HTTP").

``GET /api/health`` answers 200 ``{"status": "ok"}`` once the engine takes
calls (its SIP ports are open) and 503 ``{"status": "starting"}`` before.
The rest of the API will live under ``/api/v1/``, described at
``/api/openapi.json``.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import Site

__all__ = ["OPENAPI", "build_site"]

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "VMS engine API", "version": "0.1.0"},
    "paths": {
        "/api/health": {
            "get": {
                "summary": "Whether the engine takes calls",
                "responses": {
                    "200": {
                        "description": "The engine takes calls",
                        "content": {"application/json": {"schema": {
                            "type": "object",
                            "properties": {"status": {"const": "ok"}},
                            "required": ["status"],
                        }}},
                    },
                    "503": {"description": "Still starting"},
                },
            }
        }
    },
}  # fmt: skip


class _Json(Resource):
    isLeaf = True  # noqa: N815 - Twisted's name

    def __init__(self, body: Any) -> None:
        super().__init__()
        self.data = json.dumps(body).encode()

    def render_GET(self, request: Any) -> bytes:  # noqa: N802 - Twisted's name
        request.setHeader(b"content-type", b"application/json")
        return self.data


class _Health(Resource):
    isLeaf = True  # noqa: N815 - Twisted's name

    def __init__(self, ready: Any) -> None:
        super().__init__()
        self.ready = ready

    def render_GET(self, request: Any) -> bytes:  # noqa: N802
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        if self.ready():
            return b'{"status": "ok"}'
        request.setResponseCode(503)
        return b'{"status": "starting"}'


def build_site(ready: Any) -> Site:
    """The HTTP site; ``ready()`` says whether the engine takes calls."""
    root = Resource()
    api = Resource()
    root.putChild(b"api", api)
    api.putChild(b"health", _Health(ready))
    api.putChild(b"openapi.json", _Json(OPENAPI))
    site = Site(root)
    site.displayTracebacks = False
    return site
