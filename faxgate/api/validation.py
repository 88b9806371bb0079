"""Request bodies, query parameters and JSON Schema validation in Kazoo's error shape.

Kazoo responds to a failed validation with data keyed by dotted field path,
then by the JSON Schema keyword that failed (`required`, `type`,
`minLength`, ...), then `{"message": ..., "cause"?: ...}`.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from aiohttp import web

from faxgate.errors import FaxgateError, ValidationError
from faxgate.store import PageRequest
from faxgate.store.base import decode_start_key


class InvalidRequestError(FaxgateError):
    """The request body is not a JSON object of the form {"data": {...}}."""

    code = "invalid_request"


def field_error(path: str, rule: str, message: str, cause: Any = None) -> ValidationError:
    detail: dict[str, Any] = {"message": message}
    if cause is not None:
        detail["cause"] = cause
    return ValidationError({path: {rule: detail}})


def _message(error: jsonschema.ValidationError) -> str:
    rule = error.validator
    value = error.validator_value
    messages = {
        "required": "Field is required but missing",
        "type": f"Value did not match type(s): {value}",
        "minLength": f"Value must be at least {value} characters",
        "maxLength": f"Value must be at most {value} characters",
        "minimum": f"Value must be at least {value}",
        "maximum": f"Value must be at most {value}",
        "enum": f"Value not found in enumerated list of values: {value}",
        "pattern": f"Value did not match the pattern {value}",
        "minItems": f"The list must have at least {value} items",
        "maxItems": f"The list must have at most {value} items",
        "format": f"Value is not a valid {value}",
        "additionalProperties": "Unknown field",
    }
    return messages.get(str(rule), error.message)


def validate(schema: dict[str, Any], document: Any) -> None:
    """Raise ValidationError with every failure of `document` against `schema`."""
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    errors: dict[str, dict[str, dict[str, Any]]] = {}
    for failure in validator.iter_errors(document):
        path = [str(part) for part in failure.absolute_path]
        rule = str(failure.validator)
        if rule == "required":
            present = failure.instance if isinstance(failure.instance, dict) else {}
            missing = [name for name in failure.validator_value if name not in present]
            for name in missing:
                errors.setdefault(".".join([*path, name]), {})[rule] = {
                    "message": _message(failure)
                }
            continue
        if rule in ("anyOf", "oneOf") and failure.context:
            rule = str(failure.context[0].validator)
        detail: dict[str, Any] = {"message": _message(failure)}
        if rule not in ("required", "additionalProperties"):
            detail["cause"] = failure.instance
        errors.setdefault(".".join(path) or "data", {})[rule] = detail
    if errors:
        raise ValidationError(errors)


async def read_envelope(request: web.Request) -> dict[str, Any]:
    """Return the `data` object of a JSON request body."""
    return envelope_data(await read_json_object(request))


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """Return the request body, which must be a JSON object."""
    raw = await request.read()
    if not raw.strip():
        raise InvalidRequestError("the request body is empty; send {\"data\": {...}}")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidRequestError("the request body must be a JSON object")
    return body


async def read_action(request: web.Request) -> dict[str, Any]:
    """Return the body of an action request: {"action": ..., "data": {...}}.

    Some clients put the action inside the data envelope
    ({"data": {"action": ..., ...}}); that form is accepted too.
    """
    body = await read_json_object(request)
    inner = body.get("data")
    if "action" not in body and isinstance(inner, dict) and "action" in inner:
        fields = dict(inner)
        action = fields.pop("action")
        body = {"action": action, "data": fields.get("data", fields)}
    return body


def envelope_data(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise InvalidRequestError("the request body must be a JSON object {\"data\": {...}}")
    return strip_private(body["data"])


def strip_private(document: dict[str, Any]) -> dict[str, Any]:
    """Drop fields that clients may not set: Kazoo's pvt_* and underscore fields, and id."""
    return {
        key: value
        for key, value in document.items()
        if not key.startswith(("pvt_", "_")) and key != "id"
    }


# Larger numbers do not fit SQLite's 64-bit integers; no timestamp or page comes near.
MAX_QUERY_INT = 2**53


def _query_int(request: web.Request, name: str, minimum: int | None = None) -> int | None:
    text = request.query.get(name)
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise field_error(name, "type", "Value did not match type(s): integer", text) from None
    if minimum is not None and value < minimum:
        raise field_error(name, "minimum", f"Value must be at least {minimum}", value)
    if value > MAX_QUERY_INT:
        raise field_error(name, "maximum", f"Value must be at most {MAX_QUERY_INT}", value)
    return value


def _query_bool(request: web.Request, name: str, default: bool) -> bool:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise field_error(name, "type", "Value did not match type(s): boolean", text)


def page_request(request: web.Request, max_page_size: int = 1000) -> PageRequest:
    """Read page_size, start_key, paginate, ascending, created_from and created_to."""
    page_size = _query_int(request, "page_size", minimum=1)
    if page_size is not None and page_size > max_page_size:
        raise field_error(
            "page_size", "maximum", f"Value must be at most {max_page_size}", page_size
        )
    paginate = _query_bool(request, "paginate", True)
    start_key = request.query.get("start_key") or None
    try:
        decode_start_key(start_key)
    except FaxgateError:
        raise field_error(
            "start_key", "format", "Value is not a start key issued by this server", start_key
        ) from None
    return PageRequest(
        page_size=(page_size or 50) if paginate else None,
        start_key=start_key,
        ascending=_query_bool(request, "ascending", False),
        created_from=_query_int(request, "created_from", minimum=0),
        created_to=_query_int(request, "created_to", minimum=0),
    )
