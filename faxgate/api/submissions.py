"""Reading and checking a new outgoing fax job: body formats, fields and faxbox defaults.

A job arrives as JSON (`{"data": {...}}` with `document.url`), as a
multipart body (a JSON part and document parts, faxed in order), or as a
raw PDF or TIFF body with the job fields in the query string.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from yarl import URL

from faxgate.api.validation import InvalidRequestError, envelope_data, read_envelope, validate
from faxgate.config import Config, check_timezone
from faxgate.errors import FetchError, ValidationError
from faxgate.fetch import AddressGuard
from faxgate.numbers import InvalidNumberError, normalize_number

_SEND_TO = {
    "oneOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}},
    ]
}

OUTGOING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["to_number", "from_number"],
    "properties": {
        "to_number": {"type": "string", "minLength": 1, "maxLength": 35},
        "from_number": {"type": "string", "minLength": 1, "maxLength": 35},
        "to_name": {"type": "string", "maxLength": 128},
        "from_name": {"type": "string", "maxLength": 128},
        "retries": {"type": "integer", "minimum": 0, "maximum": 4},
        "document": {
            "type": "object",
            "required": ["url"],
            "properties": {
                "url": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 2048,
                    "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#]+",
                },
                "method": {"type": "string", "enum": ["get", "post"]},
                "content": {"type": "string", "maxLength": 256},
                "content_type": {"type": "string", "maxLength": 255},
                "host": {"type": "string", "maxLength": 255},
                "referer": {"type": "string", "maxLength": 2048},
            },
        },
        "notifications": {
            "type": "object",
            "properties": {
                "email": {"type": "object", "properties": {"send_to": _SEND_TO}},
                "sms": {"type": "object", "properties": {"send_to": _SEND_TO}},
            },
        },
        "fax_timezone": {"type": "string", "minLength": 1},
        "faxbox_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
    },
}

# Job fields a resubmitted fax copies from the original.
JOB_FIELDS = (*OUTGOING_SCHEMA["properties"], "fax_identity_number", "fax_header")

# Job fields that a raw document upload takes from the query string.
_QUERY_FIELDS = ("to_number", "from_number", "to_name", "from_name", "retries",
                 "fax_timezone", "faxbox_id")
# Raw bodies: PDF and every image type (a phone photo of a page, a scan).
_RAW_DOCUMENT_TYPES = ("application/pdf", "image/tiff")
_MULTIPART_TYPES = ("multipart/mixed", "multipart/form-data")


@dataclass
class Upload:
    """A document part of the request, as the client sent it."""

    data: bytes
    filename: str | None
    content_type: str | None


@dataclass
class Submission:
    fields: dict[str, Any]
    uploads: list[Upload] = field(default_factory=list)


@dataclass
class JobFields:
    """A checked job: the E.164 numbers, retries and the document to store."""

    to_number: str
    from_number: str
    retries: int
    faxbox_id: str | None
    doc: dict[str, Any]


async def read_submission(request: web.Request, max_bytes: int) -> Submission:
    """Read a create request in any of the accepted body formats."""
    content_type = request.content_type.lower()
    if content_type in _MULTIPART_TYPES:
        return await _read_multipart(request, max_bytes)
    if content_type in _RAW_DOCUMENT_TYPES or content_type.startswith("image/"):
        data = await request.read()
        return Submission(_query_fields(request), [Upload(data, None, content_type)])
    if content_type in ("application/json", "application/octet-stream", "text/plain", ""):
        return Submission(await read_envelope(request))
    raise web.HTTPUnsupportedMediaType(
        text=(
            f"Content-Type {content_type} is not accepted; send application/json, "
            "multipart/mixed, multipart/form-data, application/pdf or an image type"
        )
    )


def _query_fields(request: web.Request) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in _QUERY_FIELDS:
        value = request.query.get(name)
        if value is None:
            continue
        fields[name] = int(value) if name == "retries" and value.lstrip("-").isdigit() else value
    return fields


async def _read_multipart(request: web.Request, max_bytes: int) -> Submission:
    try:
        return await _read_parts(request, max_bytes)
    except (ValueError, HttpProcessingError) as exc:
        raise InvalidRequestError(f"the multipart body is malformed: {exc}") from exc


async def _read_parts(request: web.Request, max_bytes: int) -> Submission:
    reader = await request.multipart()
    fields: dict[str, Any] | None = None
    uploads: list[Upload] = []
    remaining = max_bytes
    while True:
        part = await reader.next()
        if part is None:
            break
        if isinstance(part, MultipartReader):
            raise InvalidRequestError("nested multipart bodies are not accepted")
        data = await _read_part(part, remaining, max_bytes)
        remaining -= len(data)
        if fields is None and _is_json_part(part):
            fields = _json_part(data)
        else:
            part_type = part.headers.get(hdrs.CONTENT_TYPE)
            uploads.append(Upload(data, part.filename, part_type))
    if fields is None:
        raise InvalidRequestError(
            'the multipart body has no JSON part; add an application/json part {"data": {...}}'
        )
    return Submission(fields, uploads)


def _is_json_part(part: BodyPartReader) -> bool:
    declared = part.headers.get(hdrs.CONTENT_TYPE, "").split(";", 1)[0].strip().lower()
    if declared == "application/json":
        return True
    return not declared and part.filename is None and part.name in ("data", "json")


def _json_part(data: bytes) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(f"the JSON part is not valid JSON: {exc}") from exc
    return envelope_data(body)


async def _read_part(part: BodyPartReader, remaining: int, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await part.read_chunk()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > remaining:
            raise web.HTTPRequestEntityTooLarge(
                max_size=max_bytes,
                actual_size=max_bytes - remaining + size,
                text=f"the upload is larger than the limit of {max_bytes} bytes",
            )
        chunks.append(chunk)


def apply_faxbox_defaults(fields: dict[str, Any], faxbox: dict[str, Any]) -> dict[str, Any]:
    """Fill what the job leaves out from the faxbox: sender, identity, time zone, retries."""
    filled = copy.deepcopy(fields)
    defaults = {
        "from_name": faxbox.get("caller_name"),
        "from_number": faxbox.get("caller_id"),
        "retries": faxbox.get("retries"),
        "fax_timezone": faxbox.get("fax_timezone"),
        "fax_identity_number": faxbox.get("fax_identity"),
        "fax_header": faxbox.get("fax_header"),
    }
    for key, value in defaults.items():
        if value not in (None, "") and filled.get(key) in (None, ""):
            filled[key] = value
    if faxbox.get("id"):
        filled["faxbox_id"] = faxbox["id"]
    return filled


def check_job_fields(
    fields: dict[str, Any],
    region: str,
    config: Config,
    has_uploads: bool,
    guard: AddressGuard,
) -> JobFields:
    """Validate the fields of a new job and return them in stored form.

    Raises ValidationError in Kazoo's shape for the schema's failures and
    for numbers that are not valid in `region` or as E.164. It also covers an
    unknown time zone and a job with no document. A document URL must be
    http(s) and must not name an address that faxgate does not fetch from.
    """
    fields = copy.deepcopy(fields)
    document = fields.get("document")
    if isinstance(document, dict) and isinstance(document.get("method"), str):
        document["method"] = document["method"].lower()
    validate(OUTGOING_SCHEMA, fields)

    errors: dict[str, dict[str, dict[str, Any]]] = {}
    numbers: dict[str, str] = {}
    for name in ("to_number", "from_number"):
        try:
            numbers[name] = normalize_number(fields[name], region)
        except InvalidNumberError as exc:
            errors[name] = {"format": {"message": exc.message, "cause": fields[name]}}

    timezone = fields.get("fax_timezone")
    if timezone is not None and not check_timezone(timezone):
        errors["fax_timezone"] = {
            "enum": {"message": "Value is not a known IANA time zone", "cause": timezone}
        }

    url_error = _document_error(fields.get("document"), has_uploads, guard)
    if url_error:
        errors["document.url"] = url_error
    if errors:
        raise ValidationError(errors)

    doc = {**fields, **numbers}
    retries = int(fields.get("retries", config.worker.default_retries))
    doc["retries"] = retries
    return JobFields(
        to_number=numbers["to_number"],
        from_number=numbers["from_number"],
        retries=retries,
        faxbox_id=fields.get("faxbox_id"),
        doc=doc,
    )


def _document_error(
    document: Any, has_uploads: bool, guard: AddressGuard
) -> dict[str, dict[str, Any]] | None:
    if has_uploads:
        return None
    if not isinstance(document, dict) or not document.get("url"):
        return {
            "required": {
                "message": "Field is required but missing: send document.url or upload a document"
            }
        }
    url = str(document["url"])
    try:
        guard.check_url(URL(url))
    except ValueError as exc:
        return {"format": {"message": f"Value is not a valid URL: {exc}", "cause": url}}
    except FetchError as exc:
        return {exc.code: {"message": exc.message, "cause": url}}
    return None
