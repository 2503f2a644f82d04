"""The OpenAPI document served at ``/api/openapi.json``.

Kept apart from the code that serves it so that a reader (or a client
generator) sees the whole API in one place; tests hold it against the
routes engine/api_v1.py really serves, with the ACM, statistics and e-mail
resources engine/acm/runtime.py adds (tests/test_api_v1.py).
"""

from __future__ import annotations

from typing import Any

from engine.acm.model import STRATEGIES

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
_NAME = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$"}
#: The answers every /api/v1 operation may give besides its own.
_COMMON = {
    "401": _json(_ERROR, "No token, or a wrong one (WWW-Authenticate: Bearer)"),
    "403": _json(_ERROR, "The token belongs to another customer"),
    "429": _json(_ERROR, "Too many wrong tokens from this address; see Retry-After"),
    "503": _json(_ERROR, "The engine runs without customers or mode store"),
}


def _common(unavailable: str, refused: str | None = None) -> dict[str, Any]:
    """:data:`_COMMON` with a resource's own reasons for 503 (and 403, when it has more)."""
    forbidden = "The token belongs to another customer" + (f", or {refused}" if refused else "")
    return {
        **_COMMON,
        "403": _json(_ERROR, forbidden),
        "503": _json(
            _ERROR, f"The engine runs without customers, or {unavailable}; see Retry-After"
        ),
    }


def _path(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": _NAME,
    }


def _query(
    name: str,
    description: str,
    schema: dict[str, Any],
    required: bool = False,
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


# -- /acm ----------------------------------------------------------------------------

_ACM_COMMON = _common(
    "the ACM database or the shared state is busy or failing",
    "the customer's formula or options do not include ACM",
)
_OPERATOR = _path("operator", "The operator's name (customers.ID.acm.operators)")
_GROUP = _path("group", "The group's name (customers.ID.acm.groups)")
_BAD_BODY = "A body that is not JSON, over 16384 bytes, or "
#: POST acm/operators/NAME/ACTION -> its summary.
_PRESENCE = {
    "login": "Log the operator in: available in each of their groups",
    "logout": "Log the operator out",
    "break": "Put the operator on break, with a reason",
    "resume": "Bring the operator back from a break: available again",
}


def _presence(action: str, summary: str) -> dict[str, Any]:
    body = (
        _body(_ref("BreakRequest"))
        if action == "break"
        else _body({"type": "object", "maxProperties": 0}, required=False)
    )
    conflict = "The operator is in a call's hands (reserved, ringing or on a call)"
    if action == "resume":
        conflict += ", or is not on break"
    return {
        "parameters": [_CUSTOMER, _OPERATOR],
        "post": {
            "operationId": f"{action}Operator",
            "summary": summary,
            "description": "Audited; the engines see the change at once. Answers the "
            "operator's presence after the change.",
            "requestBody": body,
            "responses": {
                "200": _json(_ref("Operator"), "The operator now"),
                "400": _json(
                    _ERROR,
                    _BAD_BODY
                    + (
                        "a missing or empty 'reason'"
                        if action == "break"
                        else "a body other than empty or {}"
                    ),
                ),
                "404": _json(_ERROR, "No such operator"),
                "409": _json(_ERROR, conflict),
                **_ACM_COMMON,
            },
        },
    }


_ACM_PATHS: dict[str, Any] = {
    "/api/v1/customers/{customer}/acm": {
        "parameters": [_CUSTOMER],
        "get": {
            "operationId": "getAcm",
            "summary": "The customer's groups, operators (with their presence) and supervisors",
            "responses": {"200": _json(_ref("Acm"), "Everything, names sorted"), **_ACM_COMMON},
        },
    },
    "/api/v1/customers/{customer}/acm/supervisors": {
        "parameters": [_CUSTOMER],
        "put": {
            "operationId": "putSupervisors",
            "summary": "Replace the list of supervisors",
            "requestBody": _body({"type": "array", "items": _NAME, "uniqueItems": True}),
            "responses": {
                "200": _json(_ref("Supervisors"), "The supervisors now"),
                "400": _json(_ERROR, _BAD_BODY + "not a list of distinct names"),
                **_ACM_COMMON,
            },
        },
    },
    "/api/v1/customers/{customer}/acm/groups/{group}": {
        "parameters": [_CUSTOMER, _GROUP],
        "get": {
            "operationId": "getGroup",
            "summary": "One group, with its operators' levels",
            "responses": {
                "200": _json(_ref("Group"), "The group"),
                "404": _json(_ERROR, "No such group"),
                **_ACM_COMMON,
            },
        },
        "put": {
            "operationId": "putGroup",
            "summary": "Create or replace a group (its members are set on the operators)",
            "description": "Validated as the configuration file is; audited. Fields left out "
            "take their defaults.",
            "requestBody": _body(_ref("GroupRequest")),
            "responses": {
                "200": _json(_ref("Group"), "The group now"),
                "400": _json(_ERROR, _BAD_BODY + "a group the configuration would refuse"),
                **_ACM_COMMON,
            },
        },
        "delete": {
            "operationId": "deleteGroup",
            "summary": "Delete a group that has no operators left",
            "responses": {
                "200": _json(_ref("Deleted"), "The group is gone"),
                "404": _json(_ERROR, "No such group"),
                "409": _json(
                    _ERROR,
                    "The group still has operators, or the settings would be invalid "
                    "without it (e.g. e-mail routing names it)",
                ),
                **_ACM_COMMON,
            },
        },
    },
    "/api/v1/customers/{customer}/acm/operators/{operator}": {
        "parameters": [_CUSTOMER, _OPERATOR],
        "get": {
            "operationId": "getOperator",
            "summary": "One operator and their presence (never the PIN or a softphone's HA1)",
            "responses": {
                "200": _json(_ref("Operator"), "The operator"),
                "404": _json(_ERROR, "No such operator"),
                **_ACM_COMMON,
            },
        },
        "put": {
            "operationId": "putOperator",
            "summary": "Create or replace an operator",
            "description": "Validated as the configuration file is; audited. The PIN is "
            "hashed before it is stored; left out, the operator's PIN is kept. A present "
            "operator's new groups and levels apply at once (in a call: from the next one).",
            "requestBody": _body(_ref("OperatorRequest")),
            "responses": {
                "200": _json(_ref("Operator"), "The operator now"),
                "400": _json(_ERROR, _BAD_BODY + "an operator the configuration would refuse"),
                "409": _json(
                    _ERROR, "The softphone user is taken (users are unique across customers)"
                ),
                **_ACM_COMMON,
            },
        },
        "delete": {
            "operationId": "deleteOperator",
            "summary": "Delete an operator, logging them out first",
            "responses": {
                "200": _json(_ref("Deleted"), "The operator is gone"),
                "404": _json(_ERROR, "No such operator"),
                "409": _json(
                    _ERROR,
                    "The operator is in a call's hands, or the settings "
                    "would be invalid without them",
                ),
                **_ACM_COMMON,
            },
        },
    },
    **{
        f"/api/v1/customers/{{customer}}/acm/operators/{{operator}}/{action}": _presence(
            action, summary
        )
        for action, summary in _PRESENCE.items()
    },
}

# -- /stats and /email ---------------------------------------------------------------

_STATS_PATHS: dict[str, Any] = {
    "/api/v1/customers/{customer}/stats": {
        "parameters": [_CUSTOMER],
        "get": {
            "operationId": "getStats",
            "summary": "The customer's ACM statistics over a window (as `vms stats --json`)",
            "description": "A window of at most 92 days. When it reaches now, the contacts "
            "waiting and the oldest wait are every engine's, live.",
            "parameters": [
                _query(
                    "since",
                    "The window's start (ISO 8601 with zone); default: 00:00 UTC "
                    "of the window's end",
                    {"type": "string", "format": "date-time"},
                ),
                _query(
                    "until",
                    "The window's end (ISO 8601 with zone); default: now",
                    {"type": "string", "format": "date-time"},
                ),
                _query(
                    "group",
                    "Only these groups: one name, or several separated by commas",
                    {"type": "string"},
                ),
            ],
            "responses": {
                "200": _json(_ref("Stats"), "The figures"),
                "400": _json(
                    _ERROR,
                    "An unknown parameter or group, a bad 'since' or 'until', "
                    "since not before until, or a window over 92 days",
                ),
                "404": _json(_ERROR, "The customer has no ACM"),
                **_common("the statistics database is busy or failing"),
            },
        },
    },
}

_EMAIL_COMMON = _common("the e-mail database or the shared state is busy or failing")
_EMAIL_ID = {
    "name": "email",
    "in": "path",
    "required": True,
    "description": "The e-mail's id",
    "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
}
_NO_EMAIL = "The customer has no e-mail routing, or no such e-mail (or a malformed id)"


def _end_email(action: str, summary: str) -> dict[str, Any]:
    return {
        "parameters": [_CUSTOMER, _EMAIL_ID],
        "post": {
            "operationId": f"{action}Email",
            "summary": summary,
            "parameters": [
                _query("operator", "The operator who has the e-mail", _NAME, required=True)
            ],
            "responses": {
                "200": _json(_ref("EmailSummary"), "The e-mail now"),
                "400": _json(_ERROR, "No 'operator'"),
                "404": _json(_ERROR, _NO_EMAIL),
                "409": _json(
                    _ERROR,
                    "The e-mail is not in this operator's hands (or changed hands meanwhile)",
                ),
                **_EMAIL_COMMON,
            },
        },
    }


_EMAIL_PATHS: dict[str, Any] = {
    "/api/v1/customers/{customer}/email": {
        "parameters": [_CUSTOMER],
        "get": {
            "operationId": "getEmail",
            "summary": "Each group's e-mail queue; with 'operator', the e-mail they handle now",
            "description": "With 'operator': the e-mail in the operator's hands, or the next "
            "one for them (asking again renews their hold and gives the same one); "
            '{"email": null} when none waits for them.',
            "parameters": [
                _query("operator", "The operator asking for their e-mail", _NAME),
            ],
            "responses": {
                "200": _json(
                    {"oneOf": [_ref("EmailQueues"), _ref("NextEmail")]},
                    "Without 'operator': the queues; with it: their e-mail",
                ),
                "404": _json(_ERROR, "The customer has no e-mail routing, or no such operator"),
                "409": _json(_ERROR, "The operator is not available"),
                **_EMAIL_COMMON,
            },
        },
    },
    "/api/v1/customers/{customer}/email/{email}": {
        "parameters": [_CUSTOMER, _EMAIL_ID],
        "get": {
            "operationId": "getOneEmail",
            "summary": "One e-mail with its text and its attachments' names",
            "responses": {
                "200": _json(_ref("EmailText"), "The e-mail"),
                "404": _json(_ERROR, _NO_EMAIL),
                **_EMAIL_COMMON,
            },
        },
    },
    "/api/v1/customers/{customer}/email/{email}/done": _end_email(
        "done", "The operator has handled the e-mail; they are free for calls again"
    ),
    "/api/v1/customers/{customer}/email/{email}/release": _end_email(
        "release", "The operator gives the e-mail back unhandled: it waits again, in its place"
    ),
}

# -- schemas -------------------------------------------------------------------------

_SECONDS = {"type": "number", "description": "Seconds"}
_LEVEL = {"type": "integer", "minimum": 1, "maximum": 9}
_STATES = ["logged_out", "available", "reserved", "ringing", "on_call", "wrap_up", "break"]
_E164 = {"type": "string", "description": "A phone number; answered in E.164"}
_HA1 = {"type": "string", "description": "From `vms passwd --digest USER CUSTOMER`"}
_TIER = {
    "type": "object",
    "properties": {"after": {"type": "number", "minimum": 0}, "min_level": _LEVEL},
    "required": ["after", "min_level"],
    "additionalProperties": False,
}
_GROUP_FIELDS: dict[str, Any] = {
    "strategy": {"enum": list(STRATEGIES)},
    "ring_timeout": {**_SECONDS, "minimum": 1},
    "wrap_up": {**_SECONDS, "minimum": 0},
    "max_wait": {**_SECONDS, "minimum": 1},
    "auto_break_after": {"type": "integer", "minimum": 0, "maximum": 100},
    "service_level": {**_SECONDS, "minimum": 1},
    "announce_every": {**_SECONDS, "minimum": 5},
    "tiers": {
        "type": "array",
        "items": _TIER,
        "description": "Each later and at a lower min_level than the one before",
    },
}

_ACM_SCHEMAS: dict[str, Any] = {
    "Acm": {
        "type": "object",
        "properties": {
            "customer": {"type": "string"},
            "groups": {"type": "object", "additionalProperties": _ref("Group")},
            "operators": {"type": "object", "additionalProperties": _ref("Operator")},
            "supervisors": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["customer", "groups", "operators", "supervisors"],
    },
    "Group": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            **_GROUP_FIELDS,
            "operators": {
                "type": "object",
                "additionalProperties": _LEVEL,
                "description": "Its operators and their levels in it",
            },
        },
        "required": ["name", *_GROUP_FIELDS, "operators"],
    },
    "GroupRequest": {
        "type": "object",
        "properties": _GROUP_FIELDS,
        "additionalProperties": False,
    },
    "Operator": {
        "type": "object",
        "properties": {
            "customer": {"type": "string"},
            "operator": {"type": "string"},
            "state": {"enum": _STATES},
            "groups": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {"level": _LEVEL, "state": {"enum": _STATES}},
                    "required": ["level", "state"],
                },
            },
            "reason": {"type": "string", "description": "A break's reason, when just set"},
            "since": {**_STAMP, "description": "When the operator was last free for work"},
            "numbers": {"type": "array", "items": _E164},
            "softphone": {
                "type": "object",
                "properties": {"user": {"type": "string"}},
                "required": ["user"],
            },
        },
        "required": ["customer", "operator", "state", "groups", "since", "numbers"],
    },
    "OperatorRequest": {
        "type": "object",
        "description": "Numbers, a softphone, or both.",
        "properties": {
            "numbers": {"type": "array", "items": _E164},
            "pin": {
                "type": "string",
                "pattern": "^[0-9]{4,8}$",
                "description": "Keyed on a phone; required for a new operator",
            },
            "groups": {
                "type": "object",
                "additionalProperties": _LEVEL,
                "description": "Group name -> the operator's level in it",
            },
            "softphone": {
                "type": "object",
                "properties": {
                    "user": _NAME,
                    "ha1": {**_HA1, "pattern": "^[0-9a-fA-F]{32}$"},
                    "ha1_sha256": {**_HA1, "pattern": "^[0-9a-fA-F]{64}$"},
                },
                "required": ["user"],
                "additionalProperties": False,
            },
            "id": {
                "type": "string",
                "pattern": "^[0-9]{1,8}$",
                "description": "The operator number keyed at the feature number",
            },
        },
        "required": ["groups"],
        "additionalProperties": False,
    },
    "BreakRequest": {
        "type": "object",
        "properties": {"reason": {"type": "string", "minLength": 1}},
        "required": ["reason"],
        "additionalProperties": False,
    },
    "Supervisors": {
        "type": "object",
        "properties": {"supervisors": {"type": "array", "items": {"type": "string"}}},
        "required": ["supervisors"],
    },
    "Deleted": {
        "type": "object",
        "properties": {"deleted": {"type": "string", "description": "The name deleted"}},
        "required": ["deleted"],
    },
}

_MAYBE = {"type": ["number", "null"]}
_QUEUE_FIELDS: dict[str, Any] = {
    "group": {"type": "string", "description": "Empty: the channel's total"},
    "channel": {"enum": ["call", "email"]},
    **{
        key: {"type": "integer"}
        for key in (
            "offered",
            "answered",
            "abandoned",
            "timeout",
            "no_agents",
            "waiting",
            "answered_in_target",
            "abandoned_in_target",
            "handled",
        )
    },
    "service_level": {**_MAYBE, "description": "Percent; null when none is decided yet"},
    "average_speed_of_answer": _MAYBE,
    "longest_wait": {"type": "number"},
    "oldest_waiting": _MAYBE,
    "talk_time": {"type": "number"},
    "wrap_up_time": {"type": "number"},
    "average_handling_time": _MAYBE,
}
_OPERATOR_FIGURES: dict[str, Any] = {
    "operator": {"type": "string"},
    "handled": {"type": "integer"},
    "no_answers": {"type": "integer"},
    **{
        key: {"type": "number"}
        for key in (
            "talk_time",
            "wrap_up_time",
            "idle_time",
            "ringing_time",
            "break_time",
            "logged_in_time",
        )
    },
}
_STAFFING: dict[str, Any] = {
    "group": {"type": "string"},
    "offered_per_hour": {"type": "number"},
    "average_handling_time": _MAYBE,
    "target_seconds": {"type": "number"},
    "target_share": {"type": "number"},
    "needed": {"type": ["integer", "null"], "description": "Erlang C's operators"},
    "observed": {"type": "number"},
}


def _figures(fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": fields, "required": list(fields)}


_STATS_SCHEMAS: dict[str, Any] = {
    "Stats": {
        "type": "object",
        "description": "Times in seconds, to the millisecond.",
        "properties": {
            "customer": {"type": "string"},
            "since": {"type": "string", "format": "date-time"},
            "until": {"type": "string", "format": "date-time"},
            "queues": {"type": "array", "items": _ref("QueueFigures")},
            "channels": {"type": "array", "items": _ref("QueueFigures")},
            "operators": {"type": "array", "items": _ref("OperatorFigures")},
            "staffing": {"type": "array", "items": _ref("Staffing")},
            "service_target": {"type": "number"},
        },
        "required": [
            "customer",
            "since",
            "until",
            "queues",
            "channels",
            "operators",
            "staffing",
            "service_target",
        ],
    },
    "QueueFigures": _figures(_QUEUE_FIELDS),
    "OperatorFigures": _figures(_OPERATOR_FIGURES),
    "Staffing": _figures(_STAFFING),
}

_SUMMARY: dict[str, Any] = {
    "id": {"type": "integer"},
    "group": {"type": "string"},
    "from": {"type": "string"},
    "to": {"type": "array", "items": {"type": "string"}},
    "subject": {"type": "string"},
    "received": {"type": "string", "format": "date-time"},
    "state": {"enum": ["waiting", "assigned", "done"]},
    "operator": {"type": ["string", "null"]},
    "assigned": _STAMP,
    "done": _STAMP,
}

_EMAIL_SCHEMAS: dict[str, Any] = {
    "EmailSummary": {"type": "object", "properties": _SUMMARY, "required": list(_SUMMARY)},
    "EmailText": {
        "type": "object",
        "properties": {
            **_SUMMARY,
            "text": {
                "type": "string",
                "description": "Its plain text (or HTML), at most 100000 characters",
            },
            "attachments": {"type": "array", "items": {"type": "string"}},
        },
        "required": [*_SUMMARY, "text", "attachments"],
    },
    "NextEmail": {
        "type": "object",
        "properties": {"email": {"oneOf": [_ref("EmailSummary"), {"type": "null"}]}},
        "required": ["email"],
    },
    "EmailQueues": {
        "type": "object",
        "properties": {
            "groups": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {
                        "waiting": {"type": "integer"},
                        "oldest": _STAMP,
                        "assigned": {"type": "integer"},
                    },
                    "required": ["waiting", "oldest", "assigned"],
                },
            }
        },
        "required": ["groups"],
    },
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "VMS engine API",
        "version": "1.0.0",
        "description": (
            "DRS and Voice Continuity modes of a customer, and their audit log; its Agent "
            "Contact Management (operators, groups, supervisors, presence), statistics and "
            "e-mail desk. A method a resource does not answer at all is 405 with Allow; an "
            "unknown path below a resource is 404. Every refusal is an Error."
        ),
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
        "/api/counters": {
            "get": {
                "summary": "The engine's totals since it started, for monitoring",
                "description": (
                    "sip: what the SIP layer saw (requests, responses, retransmissions, "
                    "malformed, refused, forbidden, overload_rejected); floods: new INVITEs "
                    "admitted, refused by the per-number limit (refused_number) or the "
                    "per-source limit (refused_source), and buckets evicted. Totals only: no "
                    "number, address or customer."
                ),
                "security": [],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "additionalProperties": {
                                "type": "object",
                                "additionalProperties": {"type": "integer", "minimum": 0},
                            },
                        },
                        "Counters by part of the engine",
                    ),
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
        **_ACM_PATHS,
        **_STATS_PATHS,
        **_EMAIL_PATHS,
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
            **_ACM_SCHEMAS,
            **_STATS_SCHEMAS,
            **_EMAIL_SCHEMAS,
            "Error": {
                "type": "object",
                "properties": {"error": {"type": "string", "description": "One sentence"}},
                "required": ["error"],
            },
        },
    },
}
