"""GET /v2/openapi.json: an OpenAPI 3.1 description of the REST API.

The description is built from OPERATIONS, one entry per route, and the
JSON Schemas the handlers validate with. Only entries whose route the
running application has registered are served, so the table may describe
routes of modules that a build does not include yet. A new route needs one
entry here; tests/test_ops_openapi.py fails for a route without one.

Request schemas may be given as SchemaRef("module", "NAME"), which is
imported only when the route exists, so this module does not import the
handler modules of routes that are absent.
"""

from __future__ import annotations

import copy
import importlib
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from faxgate import __version__

Schema = dict[str, Any]

OPENAPI_VERSION = "3.1.0"
AUTH_SCHEME = "authToken"
HEX_ID = "^[0-9a-f]{32}$"


@dataclass(frozen=True)
class SchemaRef:
    """A JSON Schema defined as the global `name` of `module`, imported when first needed."""

    module: str
    name: str

    def resolve(self) -> Schema:
        value = getattr(importlib.import_module(self.module), self.name)
        if not isinstance(value, dict):
            raise TypeError(f"{self.module}.{self.name} is not a JSON Schema object")
        return copy.deepcopy(value)


SchemaSource = Schema | SchemaRef


@dataclass(frozen=True)
class Operation:
    """One route of the API and what it takes and returns.

    `data` is the JSON Schema of the success envelope's `data`; None means
    the route responds with `content` (media type -> schema) instead of the
    Kazoo envelope. `request` is the JSON Schema of the request envelope's
    `data`, and `uploads` adds the document media types of fax uploads.
    `action` names the action of a body {"action": ..., "data": {...}}.
    `query` lists the route's own query parameters.
    """

    method: str
    path: str
    summary: str
    tag: str
    data: SchemaSource | None = None
    status: int = 200
    request: SchemaSource | None = None
    uploads: bool = False
    action: str = ""
    listing: bool = False
    month_scoped: bool = False
    content: dict[str, Schema] = field(default_factory=dict)
    errors: tuple[int, ...] = ()
    description: str = ""
    query: tuple[Schema, ...] = ()

    @property
    def has_body(self) -> bool:
        return self.request is not None or bool(self.action)


# Path parameters by name, wherever they occur.
PATH_PARAMETERS: dict[str, Schema] = {
    "account_id": {"type": "string", "pattern": HEX_ID},
    "faxbox_id": {"type": "string", "pattern": HEX_ID},
    # Outgoing jobs use the 32-hex id; finished faxes also YYYYMM-<32 hex>.
    "fax_id": {"type": "string", "pattern": "^([0-9]{6}-)?[0-9a-f]{32}$"},
    "smtplog_id": {"type": "string", "pattern": "^([0-9]{6}-)?[0-9a-f]{32}$"},
}

_LISTING_PARAMETERS: list[Schema] = [
    {"name": "page_size", "in": "query", "description": "Rows per page (default 50).",
     "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
    {"name": "start_key", "in": "query",
     "description": "The next_start_key of the previous page.",
     "schema": {"type": "string", "pattern": "^k[0-9]+$"}},
    {"name": "paginate", "in": "query", "description": "false returns every row.",
     "schema": {"type": "boolean"}},
    {"name": "ascending", "in": "query", "description": "Oldest first; default is newest first.",
     "schema": {"type": "boolean"}},
]
_MONTH_PARAMETERS: list[Schema] = [
    {"name": name, "in": "query", "description": f"Rows created {word} this Gregorian second.",
     "schema": {"type": "integer", "minimum": 0}}
    for name, word in (("created_from", "at or after"), ("created_to", "at or before"))
]

# Kazoo's fields of every response, success or error.
_ENVELOPE_PROPERTIES: Schema = {
    "auth_token": {"type": "string"},
    "request_id": {"type": "string"},
    "revision": {"type": "string"},
    "timestamp": {"type": "string"},
    "version": {"type": "string"},
    "node": {"type": "string"},
}
ERROR_ENVELOPE: Schema = {
    "type": "object",
    "required": ["status", "error", "message", "data", "request_id"],
    "properties": {
        **_ENVELOPE_PROPERTIES,
        "status": {"const": "error"},
        "error": {"type": "string", "pattern": "^[45][0-9][0-9]$"},
        "message": {"type": "string"},
        "data": {"type": "object"},
    },
}

_SEND_TO: Schema = {
    "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
}
_TX_RESULT: Schema = {
    "type": "object",
    "properties": {
        "success": {"type": "boolean"},
        "error_message": {"type": "string"},
        "pages_sent": {"type": "integer"},
        "time_elapsed": {"type": "number"},
        "fax_speed": {"type": "integer"},
        "fax_error_correction": {"type": "boolean"},
        "fax_receiver_id": {"type": "string"},
        "fax_bad_rows": {"type": "integer"},
    },
}
_GREGORIAN = {"type": "integer", "description": "Gregorian seconds (Unix time + 62167219200)"}
JOB_VIEW: Schema = {
    "type": "object",
    "required": ["id", "status"],
    "properties": {
        "id": {"type": "string"},
        "status": {"enum": ["attaching_files", "pending", "processing", "completed", "failed"]},
        "faxbox_id": {"type": ["string", "null"]},
        "to_number": {"type": "string"},
        "from_number": {"type": "string"},
        "attempts": {"type": "integer", "minimum": 0},
        "retries": {"type": "integer", "minimum": 0},
        "created": _GREGORIAN,
        "modified": _GREGORIAN,
        "delivered": _GREGORIAN,
        "progress": {"type": "string"},
        "tx_result": _TX_RESULT,
        "notifications": {"type": "object"},
        "document": {"type": "object"},
    },
}
JOB_ROW: Schema = {
    "type": "object",
    "required": ["id", "status"],
    "properties": {
        "id": {"type": "string"},
        "faxbox_id": {"type": ["string", "null"]},
        "status": {"type": "string"},
        "to": {"type": "string"},
        "from": {"type": "string"},
        "attempts": {"type": "integer"},
        "created": _GREGORIAN,
    },
}
INBOX_VIEW: Schema = {
    "type": "object",
    "required": ["id"],
    "properties": {
        "id": {"type": "string"},
        "faxbox_id": {"type": "string"},
        "status": {"type": "string"},
        "from_number": {"type": "string"},
        "to_number": {"type": "string"},
        "created": _GREGORIAN,
    },
}
SMTPLOG_ROW: Schema = {
    "type": "object",
    "required": ["id", "from", "to", "created"],
    "properties": {
        "id": {"type": "string"},
        "from": {"type": "string"},
        "to": {"type": "string"},
        "error": {"type": "string"},
        "created": _GREGORIAN,
    },
}
SMTPLOG_ENTRY: Schema = {
    "type": "object",
    "required": ["id", "created", "errors"],
    "properties": {
        "id": {"type": "string"},
        "created": _GREGORIAN,
        "from": {"type": "string"},
        "to": {"type": "string"},
        "header_from": {"type": ["string", "null"]},
        "subject": {"type": ["string", "null"]},
        "message_id": {"type": ["string", "null"]},
        "faxbox_id": {"type": ["string", "null"]},
        "account_id": {"type": ["string", "null"]},
        "fax_id": {"type": ["string", "null"]},
        "documents": {"type": "array"},
        "errors": {"type": "array", "items": {"type": "string"}},
        "smtp_code": {"type": "integer"},
        "smtp_reply": {"type": "string"},
        "remote_ip": {"type": "string"},
        "helo": {"type": "string"},
    },
}
API_AUTH_DATA: Schema = {
    "type": "object",
    "required": ["account_id"],
    "properties": {"account_id": {"type": "string", "pattern": HEX_ID}},
}
_HEALTH_CHECK: Schema = {
    "anyOf": [
        {"type": "string"},
        {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
    ]
}
HEALTH: Schema = {
    "type": "object",
    "required": ["status", "checks", "trunks", "version"],
    "properties": {
        "status": {"enum": ["ok", "failing"]},
        "version": {"type": "string"},
        "checks": {"type": "object", "additionalProperties": _HEALTH_CHECK},
        "trunks": {"type": "object", "additionalProperties": _HEALTH_CHECK},
        "queue": {"type": "object", "additionalProperties": {"type": "integer"}},
        "queue_depth": {"type": "integer", "minimum": 0},
        "due": {"type": "integer", "minimum": 0},
        "finished": {"type": "object", "additionalProperties": {"type": "integer"}},
        "inbox": {"type": "object", "additionalProperties": {"type": "integer"}},
    },
}
_BINARY: Schema = {"type": "string", "contentMediaType": "application/octet-stream"}

FAXBOX = SchemaRef("faxgate.api.faxboxes", "FAXBOX_SCHEMA")
API_AUTH = SchemaRef("faxgate.api.auth", "API_AUTH_SCHEMA")
OUTGOING = SchemaRef("faxgate.api.submissions", "OUTGOING_SCHEMA")


def _attachment_format(*formats: str) -> Schema:
    """Return the `format` query parameter of an attachment download."""
    return {
        "name": "format",
        "in": "query",
        "description": "pdf (default) for a PDF of the fax pages, tiff for the G4 fax "
        "image, original for the documents as submitted (a ZIP when there are several).",
        "schema": {"type": "string", "enum": list(formats), "default": "pdf"},
    }


def _faxes_operations(base: str, tag: str) -> list[Operation]:
    """Return the faxes routes under `base` (an account, or a faxbox within it)."""
    return [
        Operation("put", base, "Queue an outgoing fax", tag, JOB_VIEW, 201, OUTGOING,
                  uploads=True, errors=(413, 415)),
        Operation("put", base + "/outgoing", "Queue an outgoing fax", tag, JOB_VIEW, 201,
                  OUTGOING, uploads=True, errors=(413, 415)),
        Operation("get", base + "/outgoing", "List faxes queued or being sent", tag,
                  {"type": "array", "items": JOB_ROW}, listing=True),
        Operation("get", base + "/outgoing/{fax_id}", "Get a queued fax", tag, JOB_VIEW),
        Operation("get", base + "/outbox", "List finished outgoing faxes", tag,
                  {"type": "array", "items": JOB_ROW}, listing=True, month_scoped=True),
        Operation("get", base + "/outbox/{fax_id}", "Get a finished fax", tag, JOB_VIEW),
        Operation("put", base + "/outbox/{fax_id}",
                  "Queue a copy of a finished fax, with `data` merged over its fields", tag,
                  JOB_VIEW, 201, action="resubmit"),
        Operation("delete", base + "/outbox/{fax_id}", "Delete a finished fax", tag,
                  {"type": "object"}),
        Operation("get", base + "/outbox/{fax_id}/attachment", "Download a finished fax", tag,
                  content={"application/pdf": _BINARY, "image/tiff": _BINARY,
                           "application/zip": _BINARY},
                  query=(_attachment_format("pdf", "tiff", "original"),)),
        Operation("delete", base + "/outbox/{fax_id}/attachment",
                  "Delete a finished fax's documents", tag, {"type": "object"}),
        Operation("get", base + "/inbox", "List received faxes", tag,
                  {"type": "array", "items": INBOX_VIEW}, listing=True, month_scoped=True),
        Operation("get", base + "/inbox/{fax_id}", "Get a received fax", tag, INBOX_VIEW),
        Operation("put", base + "/inbox/{fax_id}",
                  "Send a received fax on to `data.to_number`", tag, JOB_VIEW, 201,
                  action="forward"),
        Operation("delete", base + "/inbox/{fax_id}", "Delete a received fax", tag,
                  {"type": "object"}),
        Operation("get", base + "/inbox/{fax_id}/attachment", "Download a received fax", tag,
                  content={"application/pdf": _BINARY, "image/tiff": _BINARY},
                  query=(_attachment_format("pdf", "tiff"),)),
        Operation("delete", base + "/inbox/{fax_id}/attachment",
                  "Delete a received fax's documents", tag, {"type": "object"}),
        Operation("get", base + "/incoming", "List faxes being received", tag,
                  {"type": "array", "items": INBOX_VIEW}, listing=True),
        Operation("get", base + "/incoming/{fax_id}", "Get a fax being received", tag,
                  INBOX_VIEW),
        Operation("get", base + "/smtplog", "List mail that reached the SMTP gateway", tag,
                  {"type": "array", "items": SMTPLOG_ROW}, listing=True, month_scoped=True),
        Operation("get", base + "/smtplog/{smtplog_id}", "Get one smtplog entry", tag,
                  SMTPLOG_ENTRY),
    ]


_ACCOUNT = "/v2/accounts/{account_id}"
_FAXBOX_OBJECT: Schema = {
    "type": "object",
    "required": ["id", "name", "smtp_email_address"],
    "properties": {
        "id": {"type": "string", "pattern": HEX_ID},
        "smtp_email_address": {"type": "string"},
    },
}

OPERATIONS: list[Operation] = [
    Operation("put", "/v2/api_auth", "Trade an API key for an auth token", "auth",
              API_AUTH_DATA, 201, API_AUTH, errors=(401,),
              description="The token is in the response's top-level auth_token."),
    Operation("get", _ACCOUNT + "/faxboxes", "List faxboxes", "faxboxes",
              {"type": "array", "items": _FAXBOX_OBJECT}, listing=True),
    Operation("put", _ACCOUNT + "/faxboxes", "Create a faxbox", "faxboxes", _FAXBOX_OBJECT,
              201, FAXBOX),
    Operation("get", _ACCOUNT + "/faxboxes/{faxbox_id}", "Get a faxbox", "faxboxes",
              _FAXBOX_OBJECT),
    Operation("post", _ACCOUNT + "/faxboxes/{faxbox_id}", "Replace a faxbox", "faxboxes",
              _FAXBOX_OBJECT, request=FAXBOX),
    Operation("patch", _ACCOUNT + "/faxboxes/{faxbox_id}",
              "Change some fields of a faxbox (JSON merge patch: null removes a field)",
              "faxboxes", _FAXBOX_OBJECT, request=FAXBOX),
    Operation("delete", _ACCOUNT + "/faxboxes/{faxbox_id}", "Delete a faxbox", "faxboxes",
              _FAXBOX_OBJECT),
    *_faxes_operations(_ACCOUNT + "/faxes", "faxes"),
    *_faxes_operations(_ACCOUNT + "/faxboxes/{faxbox_id}/faxes", "faxes"),
    Operation("get", "/health", "State of the store, listeners, worker and trunks",
              "operations", content={"application/json": HEALTH}, errors=(503,)),
    Operation("get", "/metrics", "Prometheus metrics", "operations",
              content={"text/plain": {"type": "string"}}),
    Operation("get", "/v2/openapi.json", "This description", "operations",
              content={"application/json": {"type": "object"}}),
]


def route_key(method: str, path: str) -> tuple[str, str]:
    """Return a key that matches a route whatever its path parameters are called."""
    return method.lower(), re.sub(r"\{[^}]*\}", "{}", path)


def registered_routes(app: web.Application) -> set[tuple[str, str]]:
    """Return the (method, path) keys of the application's routes, without implicit HEADs."""
    keys = set()
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method == "HEAD":
            continue
        keys.add(route_key(route.method, resource.canonical))
    return keys


def undocumented_routes(app: web.Application) -> list[tuple[str, str]]:
    """Return the routes of `app` that OPERATIONS does not describe."""
    documented = {route_key(op.method, op.path) for op in OPERATIONS}
    return sorted(registered_routes(app) - documented)


def build_document(app: web.Application) -> Schema:
    """Build the OpenAPI document for the routes that `app` has registered."""
    registered = registered_routes(app)
    paths: dict[str, dict[str, Any]] = {}
    for operation in OPERATIONS:
        if route_key(operation.method, operation.path) in registered:
            paths.setdefault(operation.path, {})[operation.method] = _operation_object(operation)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "faxgate",
            "version": __version__,
            "description": (
                "The faxes and faxboxes REST API of Kazoo 4.3 as faxgate serves it, plus "
                "faxgate's operations endpoints. Account routes need the X-Auth-Token "
                "header from PUT /v2/api_auth; a token serves only its own account."
            ),
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                AUTH_SCHEME: {"type": "apiKey", "in": "header", "name": "X-Auth-Token"}
            },
            "schemas": {"ErrorEnvelope": ERROR_ENVELOPE},
        },
    }


def _resolve(source: SchemaSource) -> Schema:
    return source.resolve() if isinstance(source, SchemaRef) else copy.deepcopy(source)


def _operation_object(operation: Operation) -> Schema:
    authenticated = operation.path.startswith("/v2/accounts/")
    result: Schema = {
        "summary": operation.summary,
        "tags": [operation.tag],
        "operationId": _operation_id(operation),
        "parameters": _parameters(operation),
        "responses": _responses(operation, authenticated),
    }
    if operation.description:
        result["description"] = operation.description
    if authenticated:
        result["security"] = [{AUTH_SCHEME: []}]
    body = _request_body(operation)
    if body is not None:
        result["requestBody"] = body
    return result


def _operation_id(operation: Operation) -> str:
    words = re.sub(r"\{[^}]*\}", "id", operation.path).strip("/").replace(".", "_")
    return operation.method + "_" + re.sub(r"[^A-Za-z0-9]+", "_", words)


def _parameters(operation: Operation) -> list[Schema]:
    parameters: list[Schema] = [
        {"name": name, "in": "path", "required": True, "schema": dict(PATH_PARAMETERS[name])}
        for name in re.findall(r"\{([^}]+)\}", operation.path)
    ]
    if operation.listing:
        parameters += copy.deepcopy(_LISTING_PARAMETERS)
    if operation.month_scoped:
        parameters += copy.deepcopy(_MONTH_PARAMETERS)
    parameters += copy.deepcopy(list(operation.query))
    return parameters


def _request_body(operation: Operation) -> Schema | None:
    if operation.action:
        schema = {
            "type": "object",
            "required": ["action", "data"],
            "properties": {"action": {"const": operation.action}, "data": {"type": "object"}},
        }
        return {"required": True, "content": {"application/json": {"schema": schema}}}
    if operation.request is None:
        return None
    data = _resolve(operation.request)
    if operation.method == "patch":
        data = _merge_patch_schema(data)
    content: Schema = {
        "application/json": {
            "schema": {"type": "object", "required": ["data"], "properties": {"data": data}}
        }
    }
    if operation.uploads:
        content["multipart/mixed"] = {"schema": {"type": "string", "description": (
            "A JSON part with {\"data\": {...}} and one or more document parts")}}
        content["application/pdf"] = {"schema": _BINARY}
        content["image/*"] = {"schema": _BINARY}
    return {"required": True, "content": content}


def _merge_patch_schema(schema: Schema) -> Schema:
    """Return `schema` for a JSON merge patch: nothing required, and null allowed to remove."""
    patched = {key: value for key, value in schema.items() if key != "required"}
    patched["properties"] = {
        name: {"anyOf": [definition, {"type": "null"}]}
        for name, definition in schema.get("properties", {}).items()
    }
    return patched


def _responses(operation: Operation, authenticated: bool) -> Schema:
    responses: Schema = {str(operation.status): _success_response(operation)}
    errors = set(operation.errors)
    if authenticated:
        # Another account's id gets the same 404 as an unknown one.
        errors |= {401, 404}
    if "{" in operation.path:
        errors.add(404)
    if operation.has_body or operation.listing or operation.month_scoped:
        errors.add(400)
    if operation.has_body:
        errors.add(413)
    for status in sorted(errors):
        responses[str(status)] = _error_response(operation, status)
    return responses


def _success_response(operation: Operation) -> Schema:
    if operation.data is None:
        return {
            "description": operation.summary,
            "content": {media: {"schema": schema} for media, schema in operation.content.items()},
        }
    properties: Schema = {
        **_ENVELOPE_PROPERTIES,
        "status": {"const": "success"},
        "data": _resolve(operation.data),
    }
    if operation.listing:
        properties.update(
            page_size={"type": "integer", "minimum": 0},
            start_key={"type": "string"},
            next_start_key={"type": "string"},
        )
    schema = {"type": "object", "required": ["status", "data", "request_id"],
              "properties": properties}
    return {"description": "Success", "content": {"application/json": {"schema": schema}}}


def _error_response(operation: Operation, status: int) -> Schema:
    if operation.data is None and status == 503:
        return {"description": "A check is failing", "content": {
            media: {"schema": schema} for media, schema in operation.content.items()}}
    descriptions = {
        400: "Invalid request; data names each invalid field and the failed rule",
        401: "Missing, invalid or expired X-Auth-Token, or an invalid API key",
        404: "No such id in this account (message bad_identifier)",
        413: "The request body is larger than http.max_upload_bytes",
        415: "The Content-Type is not accepted",
    }
    return {
        "description": descriptions.get(status, "Error"),
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}},
    }


class _DocumentCache:
    """The document of one application, built on the first request.

    The router is frozen once the application serves, so a document built
    then stays true.
    """

    def __init__(self) -> None:
        self.document: Schema | None = None


_DOCUMENT_CACHE = web.AppKey("openapi_document", _DocumentCache)


async def get_openapi(request: web.Request) -> web.Response:
    cache = request.app[_DOCUMENT_CACHE]
    if cache.document is None:
        cache.document = build_document(request.app)
    return web.json_response(cache.document)


def register(app: web.Application) -> None:
    app[_DOCUMENT_CACHE] = _DocumentCache()
    app.router.add_get("/v2/openapi.json", get_openapi)
