"""The faxboxes resource: /v2/accounts/{A}/faxboxes[/{FB}]."""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web
from email_validator import EmailNotValidError, validate_email

from faxgate.api.app import account_id, context, listing
from faxgate.api.envelope import success
from faxgate.api.validation import field_error, page_request, read_envelope, validate
from faxgate.config import check_timezone
from faxgate.errors import ValidationError
from faxgate.numbers import InvalidNumberError, normalize_number
from faxgate.senders import InvalidSenderPatternError, normalize_sender_pattern
from faxgate.smtp.credentials import public_faxbox, store_smtp_credentials

_SEND_TO = {
    "oneOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}},
    ]
}
_EMAIL_PROPERTIES: dict[str, Any] = {
    "send_to": _SEND_TO,
    # false leaves the fax document and its first-page image out of the mail (privacy).
    "attach_document": {"type": "boolean"},
}


def _notification(email_properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "email": {"type": "object", "properties": email_properties},
            "sms": {"type": "object", "properties": {"send_to": _SEND_TO}},
            "callback": {
                "type": "object",
                "required": ["url"],
                "properties": {
                    "url": {"type": "string", "minLength": 1, "pattern": "^https?://"},
                    "method": {"type": "string", "enum": ["post", "put"]},
                    "type": {"type": "string", "enum": ["json", "www-url-form-encoded"]},
                },
            },
        },
    }


_INBOUND_NOTIFICATION = _notification(
    # Format of the received fax attached to inbound mail; default pdf.
    {**_EMAIL_PROPERTIES, "attachment_format": {"type": "string", "enum": ["pdf", "tiff"]}}
)
_OUTBOUND_NOTIFICATION = _notification(_EMAIL_PROPERTIES)

FAXBOX_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 128},
        "caller_id": {"type": "string", "minLength": 1, "maxLength": 35},
        "caller_name": {"type": "string", "maxLength": 128},
        "fax_header": {"type": "string", "maxLength": 64},
        # T.30 limits the station id (TSI/CSI) to 20 characters.
        "fax_identity": {"type": "string", "maxLength": 20},
        "fax_timezone": {"type": "string", "minLength": 1},
        # ISO 3166 region used to read national numbers sent to this faxbox.
        "fax_region": {"type": "string", "pattern": "^[A-Za-z]{2}$"},
        "custom_smtp_email_address": {"type": "string", "maxLength": 253},
        "smtp_permission_list": {"type": "array", "items": {"type": "string", "minLength": 1}},
        # With an empty permission list, accept mail from any sender.
        "smtp_allow_all_senders": {"type": "boolean"},
        # Also check the header From address when it differs from the envelope sender.
        "smtp_check_header_from": {"type": "boolean"},
        # Fax the text of a message that has no attachment.
        "smtp_fax_text_body": {"type": "boolean"},
        # SMTP AUTH credentials: a session that logs in with them may send to
        # this faxbox without being on smtp_permission_list. The password is
        # stored as a hash and never returned.
        "smtp_auth": {
            "type": "object",
            "required": ["username"],
            "additionalProperties": False,
            "properties": {
                "username": {"type": "string", "minLength": 1, "maxLength": 128},
                "password": {"type": "string", "minLength": 8, "maxLength": 256},
            },
        },
        "retries": {"type": "integer", "minimum": 0, "maximum": 4},
        "notifications": {
            "type": "object",
            "properties": {"inbound": _INBOUND_NOTIFICATION, "outbound": _OUTBOUND_NOTIFICATION},
        },
        # Keep a failed reception (no page received) in the inbox.
        "keep_failed_receptions": {"type": "boolean"},
        "owner_id": {"type": "string"},
        "media": {
            "type": "object",
            "properties": {"fax_option": {"type": ["boolean", "string"]}},
        },
    },
}


def _normalize(fields: dict[str, Any], default_region: str, default_domain: str) -> dict[str, Any]:
    """Validate what JSON Schema cannot and return the fields in stored form."""
    validate(FAXBOX_SCHEMA, fields)
    doc = copy.deepcopy(fields)
    errors: dict[str, dict[str, dict[str, Any]]] = {}
    region = str(doc.get("fax_region") or default_region).upper()
    if "fax_region" in doc:
        doc["fax_region"] = region

    if doc.get("caller_id"):
        try:
            doc["caller_id"] = normalize_number(doc["caller_id"], region)
        except InvalidNumberError as exc:
            errors["caller_id"] = {"format": {"message": exc.message, "cause": fields["caller_id"]}}

    timezone = doc.get("fax_timezone")
    if timezone is not None and not check_timezone(timezone):
        errors["fax_timezone"] = {
            "enum": {"message": "Value is not a known IANA time zone", "cause": timezone}
        }

    custom = doc.get("custom_smtp_email_address")
    if custom:
        try:
            doc["custom_smtp_email_address"] = _normalize_domain(custom, default_domain)
        except ValueError as exc:
            errors["custom_smtp_email_address"] = {"format": {"message": str(exc), "cause": custom}}

    patterns = []
    for index, entry in enumerate(doc.get("smtp_permission_list", [])):
        try:
            patterns.append(normalize_sender_pattern(entry))
        except InvalidSenderPatternError as exc:
            errors[f"smtp_permission_list.{index}"] = {
                "format": {"message": exc.message, "cause": entry}
            }
    if "smtp_permission_list" in doc:
        doc["smtp_permission_list"] = patterns

    if errors:
        raise ValidationError(errors)
    return doc


def _normalize_domain(value: str, default_domain: str) -> str:
    try:
        checked = validate_email(f"fax@{value.strip()}", check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"Value is not a valid mail domain: {exc}") from exc
    domain = checked.ascii_domain.lower()
    if domain == default_domain or domain.endswith("." + default_domain):
        raise ValueError(f"Domains under {default_domain} are reserved for generated addresses")
    return domain


async def list_faxboxes(request: web.Request) -> web.Response:
    page = await context(request).store.list_faxboxes(account_id(request), page_request(request))
    page.rows = [public_faxbox(row) for row in page.rows]
    return listing(request, page)


async def create_faxbox(request: web.Request) -> web.Response:
    ctx = context(request)
    fields = _normalize(
        await read_envelope(request), ctx.config.fax.default_region, ctx.config.smtp.default_domain
    )
    fields = await store_smtp_credentials(fields, None)
    doc = await ctx.store.create_faxbox(account_id(request), fields, ctx.config.smtp.default_domain)
    return success(request, public_faxbox(doc), status=201)


async def get_faxbox(request: web.Request) -> web.Response:
    doc = await context(request).store.get_faxbox(
        account_id(request), request.match_info["faxbox_id"]
    )
    return success(request, public_faxbox(doc))


async def replace_faxbox(request: web.Request) -> web.Response:
    ctx = context(request)
    faxbox_id = request.match_info["faxbox_id"]
    current = await ctx.store.get_faxbox(account_id(request), faxbox_id)
    fields = _normalize(
        await read_envelope(request), ctx.config.fax.default_region, ctx.config.smtp.default_domain
    )
    fields = await store_smtp_credentials(fields, current)
    doc = await ctx.store.replace_faxbox(account_id(request), faxbox_id, fields)
    return success(request, public_faxbox(doc))


async def patch_faxbox(request: web.Request) -> web.Response:
    ctx = context(request)
    faxbox_id = request.match_info["faxbox_id"]
    current = await ctx.store.get_faxbox(account_id(request), faxbox_id)
    patch = await read_envelope(request)
    merged = _merge(
        {k: v for k, v in current.items() if k not in ("id", "smtp_email_address")}, patch
    )
    fields = _normalize(merged, ctx.config.fax.default_region, ctx.config.smtp.default_domain)
    fields = await store_smtp_credentials(fields, current)
    doc = await ctx.store.replace_faxbox(account_id(request), faxbox_id, fields)
    return success(request, public_faxbox(doc))


async def delete_faxbox(request: web.Request) -> web.Response:
    doc = await context(request).store.delete_faxbox(
        account_id(request), request.match_info["faxbox_id"]
    )
    return success(request, public_faxbox(doc))


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Merge `patch` into `base` recursively; a null value removes the key (RFC 7396)."""
    merged = dict(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def faxbox_id_error(value: str) -> ValidationError:
    return field_error("faxbox_id", "exists", "no faxbox with this id in the account", value)


def register(app: web.Application) -> None:
    base = "/v2/accounts/{account_id}/faxboxes"
    app.router.add_get(base, list_faxboxes)
    app.router.add_put(base, create_faxbox)
    app.router.add_get(base + "/{faxbox_id}", get_faxbox)
    app.router.add_post(base + "/{faxbox_id}", replace_faxbox)
    app.router.add_patch(base + "/{faxbox_id}", patch_faxbox)
    app.router.add_delete(base + "/{faxbox_id}", delete_faxbox)
