"""A client of faxgate's own REST API, used by `faxgate send` and `faxgate status`.

It speaks the same protocol as any Kazoo client: PUT /v2/api_auth for a
token, then account routes with X-Auth-Token. Documents are uploaded as
multipart/mixed with a JSON part {"data": {...}} and one part per file.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from faxgate.errors import FaxgateError
from faxgate.service import RUNTIME_FILE, read_runtime_file

FINISHED = ("completed", "failed")
# Bytes read from a document file at a time while uploading it.
UPLOAD_CHUNK = 256 * 1024

Progress = Callable[[str], None]


class ApiClientError(FaxgateError):
    """The faxgate API could not be reached or refused the request."""

    code = "api_client_error"


class ServerNotRunningError(ApiClientError):
    """No faxgate server responds at the given address."""

    code = "server_not_running"


def resolve_api_url(url: str | None, data_dir: Path) -> str:
    """Return the API base URL: `url` if given, else the one a running server wrote.

    A server bound to all addresses (0.0.0.0 or ::) is reached on loopback.
    """
    if url:
        return url.rstrip("/")
    runtime = read_runtime_file(data_dir)
    if runtime is None or not runtime.get("http_url"):
        raise ServerNotRunningError(
            f"no running faxgate found: {data_dir / RUNTIME_FILE} is missing; "
            "start `faxgate serve` with this configuration or pass --url"
        )
    return _loopback_for_wildcard(str(runtime["http_url"]))


def _loopback_for_wildcard(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    replacement = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host)
    if replacement is None:
        return url.rstrip("/")
    netloc = replacement + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")).rstrip("/")


@dataclass
class Document:
    path: Path
    content_type: str
    size: int


def document_for(path: Path) -> Document:
    """Describe a file to upload; raise ApiClientError when it is missing or not a file."""
    if not path.is_file():
        raise ApiClientError(f"{path}: no such file")
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return Document(path, content_type, path.stat().st_size)


async def _file_chunks(
    document: Document, sent: list[int], total: int, progress: Progress
) -> AsyncIterator[bytes]:
    """Yield the file in chunks and report the upload's progress in tenths."""
    with document.path.open("rb") as handle:
        while chunk := handle.read(UPLOAD_CHUNK):
            before = sent[0] * 10 // total
            sent[0] += len(chunk)
            after = sent[0] * 10 // total
            if after > before:
                progress(f"uploading: {sent[0] * 100 // total}% of {_size(total)}")
            yield chunk


def _size(count: int) -> str:
    if count >= 1024 * 1024:
        return f"{count / (1024 * 1024):.1f} MB"
    if count >= 1024:
        return f"{count / 1024:.1f} kB"
    return f"{count} bytes"


class FaxgateClient:
    """Requests to one faxgate server over an aiohttp session."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url
        self.token = ""
        self.account_id = ""

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """Send a request and return the status code and the decoded JSON body."""
        all_headers = dict(headers or {})
        if self.token:
            all_headers["X-Auth-Token"] = self.token
        url = self.base_url + path
        try:
            async with self.session.request(
                method, url, json=json_body, data=data, headers=all_headers
            ) as response:
                raw = await response.read()
                status = response.status
        except aiohttp.ClientConnectionError as exc:
            raise ServerNotRunningError(f"cannot reach faxgate at {self.base_url}: {exc}") from exc
        try:
            return status, json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiClientError(
                f"{method} {path} returned status {status} with a body that is not JSON"
            ) from exc

    async def authenticate(self, api_key: str) -> str:
        """Get an auth token for `api_key`; return the account id it belongs to."""
        status, body = await self.request(
            "PUT", "/v2/api_auth", json_body={"data": {"api_key": api_key}}
        )
        if status != 201:
            raise ApiClientError(f"authentication failed ({status}): {_error_text(body)}")
        self.token = str(body["auth_token"])
        self.account_id = str(body["data"]["account_id"])
        return self.account_id

    async def sole_faxbox(self) -> str:
        """Return the id of the account's only faxbox; raise when it has none or several."""
        status, body = await self.request(
            "GET", f"/v2/accounts/{self.account_id}/faxboxes?paginate=false"
        )
        if status != 200:
            raise ApiClientError(f"listing faxboxes failed ({status}): {_error_text(body)}")
        faxboxes = body["data"]
        if len(faxboxes) != 1:
            raise ApiClientError(
                f"the account has {len(faxboxes)} faxboxes, so the sender is not known:"
                " pass --faxbox ID or --from NUMBER"
            )
        return str(faxboxes[0]["id"])

    async def submit_fax(
        self, fields: dict[str, Any], documents: list[Document], progress: Progress
    ) -> dict[str, Any]:
        """Upload `documents` as a new outgoing fax with job `fields`; return the job."""
        total = max(1, sum(document.size for document in documents))
        sent = [0]
        with aiohttp.MultipartWriter("mixed") as body:
            body.append_json({"data": fields})
            for document in documents:
                part = body.append(
                    _file_chunks(document, sent, total, progress),
                    {"Content-Type": document.content_type},
                )
                part.set_content_disposition("attachment", filename=document.path.name)
            status, answer = await self.request(
                "PUT", f"/v2/accounts/{self.account_id}/faxes", data=body
            )
        if status not in (200, 201):
            raise ApiClientError(f"the fax was not queued ({status}): {_error_text(answer)}")
        job: dict[str, Any] = answer["data"]
        return job

    async def get_fax(self, fax_id: str) -> dict[str, Any]:
        """Return a fax from the queue (outgoing) or, once finished, from the outbox."""
        for folder in ("outgoing", "outbox"):
            status, body = await self.request(
                "GET", f"/v2/accounts/{self.account_id}/faxes/{folder}/{fax_id}"
            )
            if status == 200:
                fax: dict[str, Any] = body["data"]
                return fax
            if status != 404:
                raise ApiClientError(f"reading fax {fax_id} failed ({status}): "
                                     f"{_error_text(body)}")
        raise ApiClientError(f"fax {fax_id} is neither queued nor in the outbox")

    async def wait_for_fax(
        self, fax_id: str, progress: Progress, interval: float, max_wait: float
    ) -> dict[str, Any]:
        """Poll the fax until it is completed or failed, reporting each change of state.

        Raises ApiClientError after `max_wait` seconds; the fax stays queued.
        """
        deadline = time.monotonic() + max_wait
        last_line = ""
        while True:
            fax = await self.get_fax(fax_id)
            line = describe_fax(fax)
            if line != last_line:
                progress(line)
                last_line = line
            if fax.get("status") in FINISHED:
                return fax
            if time.monotonic() >= deadline:
                raise ApiClientError(
                    f"fax {fax_id} did not finish within {max_wait:g} s; it is still queued, "
                    f"see GET /v2/accounts/{self.account_id}/faxes/outgoing/{fax_id}"
                )
            await asyncio.sleep(interval)

    async def health(self) -> tuple[int, dict[str, Any]]:
        return await self.request("GET", "/health")


def describe_fax(fax: dict[str, Any]) -> str:
    """Return one progress line: status, progress text, attempts and the result."""
    parts = [f"fax {fax.get('id')}: {fax.get('status')}"]
    if fax.get("progress"):
        parts.append(str(fax["progress"]))
    if fax.get("attempts"):
        parts.append(f"attempt {fax['attempts']} of {fax.get('retries', '?')}")
    result = fax.get("tx_result") or {}
    if fax.get("status") in FINISHED and result:
        parts.append(f"{result.get('pages_sent', 0)} pages sent")
        if result.get("error_message"):
            parts.append(str(result["error_message"]))
    return ", ".join(parts)


def _error_text(body: Any) -> str:
    if not isinstance(body, dict):
        return str(body)
    message = str(body.get("message", ""))
    data = body.get("data")
    return f"{message} {json.dumps(data)}" if data else message
