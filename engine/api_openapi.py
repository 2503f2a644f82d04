"""The OpenAPI document served at ``/api/openapi.json``.

Kept apart from the code that serves it so that a reader (or a client
generator) sees the whole API in one place; tests hold it against the
routes engine/api_v1.py really serves.
"""

from __future__ import annotations

from typing import Any

__all__ = ["OPENAPI"]


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_ERROR = _ref("Error")
_STAMP = {"type": ["string", "null"], "format": "date-time"}
_CUSTOMER = {
    "name": "customer",
    "in": "path",
    "required": True,
    "description": "The customer's id in the configuration (customers.ID)",
    "schema": {"type": "string"},
}
#: The answers every /api/v1 operation may give besides its own.
_COMMON = {
    "401": _json(_ERROR, "No token, or a wrong one (WWW-Authenticate: Bearer)"),
    "403": _json(_ERROR, "The token belongs to another customer"),
    "429": _json(_ERROR, "Too many wrong tokens from this address; see Retry-After"),
    "503": _json(_ERROR, "The engine runs without customers or mode store"),
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "VMS engine API",
        "version": "1.0.0",
        "description": "DRS and Voice Continuity modes of a customer, and their audit log.",
    },
    "paths": {
        "/api/health": {
            "get": {
                "summary": "Whether the engine takes calls",
                "security": [],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"status": {"const": "ok"}},
                            "required": ["status"],
                        },
                        "The engine takes calls",
                    ),
                    "503": {"description": "Still starting"},
                },
            }
        },
        "/api/v1/customers/{customer}/mode": {
            "parameters": [_CUSTOMER],
            "get": {
                "operationId": "getMode",
                "summary": "The customer's routing mode",
                "responses": {"200": _json(_ref("ModeState"), "The mode in force"), **_COMMON},
            },
            "put": {
                "operationId": "setMode",
                "summary": "Switch DRS or Voice Continuity on or off",
                "description": (
                    "Takes effect in every engine within a second, is audited and e-mailed to "
                    "the customer's contacts. DRS ends by itself after drs.max_days at the "
                    "latest; without 'until' it lasts that long. Voice Continuity lasts until "
                    "'until', or until switched off."
                ),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("ModeRequest")}},
                },
                "responses": {
                    "200": _json(_ref("ModeState"), "The mode now in force"),
                    "400": _json(_ERROR, "Not JSON, an unknown mode, or a bad 'until'"),
                    "413": _json(_ERROR, "A body over 4096 bytes"),
                    **_COMMON,
                    "403": _json(
                        _ERROR,
                        "The token belongs to another customer, or the customer's formula "
                        "does not include this mode",
                    ),
                },
            },
        },
        "/api/v1/customers/{customer}/audit": {
            "parameters": [_CUSTOMER],
            "get": {
                "operationId": "getAudit",
                "summary": "Mode changes and attempts, oldest first",
                "parameters": [
                    {
                        "name": "since",
                        "in": "query",
                        "required": False,
                        "description": "Only entries at or after this time (ISO 8601 with zone)",
                        "schema": {"type": "string", "format": "date-time"},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "description": "At most this many entries, the most recent ones",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": 1000,
                            "default": 1000,
                        },
                    },
                ],
                "responses": {
                    "200": _json({"type": "array", "items": _ref("AuditEntry")}, "The entries"),
                    "400": _json(_ERROR, "A bad 'since' or 'limit'"),
                    **_COMMON,
                },
            },
        },
    },
    "security": [{"customerToken": []}],
    "components": {
        "securitySchemes": {
            "customerToken": {
                "type": "http",
                "scheme": "bearer",
                "description": (
                    "'Authorization: Bearer CUSTOMER:TOKEN': the customer's id, a colon and "
                    "its API token (the configuration holds its scrypt hash, customers.ID."
                    "api_token, from 'vms passwd'). A token reaches only its own customer."
                ),
            }
        },
        "schemas": {
            "ModeState": {
                "type": "object",
                "properties": {
                    "customer": {"type": "string"},
                    "mode": {"enum": ["normal", "drs", "continuity"]},
                    "since": {**_STAMP, "description": "When this mode began (UTC)"},
                    "until": {**_STAMP, "description": "When it ends by itself, or null"},
                    "by": {"type": "string", "description": "Who or what set it"},
                },
                "required": ["customer", "mode", "since", "until", "by"],
            },
            "ModeRequest": {
                "type": "object",
                "properties": {
                    "mode": {"enum": ["normal", "drs", "continuity"]},
                    "until": {
                        **_STAMP,
                        "description": "A time in the future with its zone; null: no end "
                        "(for DRS: drs.max_days from now). Not allowed with 'normal'.",
                    },
                },
                "required": ["mode"],
                "additionalProperties": False,
            },
            "AuditEntry": {
                "type": "object",
                "properties": {
                    "at": {"type": "string", "format": "date-time"},
                    "customer": {"type": ["string", "null"]},
                    "caller": {"type": ["string", "null"]},
                    "action": {"type": "string"},
                    "outcome": {"type": "string"},
                    "via": {"type": "string"},
                    "detail": {"type": "string"},
                },
                "required": ["at", "customer", "caller", "action", "outcome", "via", "detail"],
            },
            "Error": {
                "type": "object",
                "properties": {"error": {"type": "string", "description": "One sentence"}},
                "required": ["error"],
            },
        },
    },
}
