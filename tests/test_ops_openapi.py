"""The OpenAPI description at /v2/openapi.json, checked against the running server.

The property-based run uses schemathesis. The served document lists only
the routes this build registers. For each of its operations the run
generates valid and invalid requests and sends them to a real `faxgate
serve` child process. No response may be a 5xx, and every response must
match the documented status codes, content types and schemas.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import types
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from faxgate.api.app import create_app
from faxgate.api.openapi import (
    OPERATIONS,
    build_document,
    registered_routes,
    route_key,
    undocumented_routes,
)
from faxgate.service import Service
from tests.conftest import REPO, ApiClient, ServerProcess, make_config

# Examples per operation and generation mode. The run grows with the
# number of routes: the 10 operations of auth, faxboxes and operations
# endpoints took about 10 s on a 2-core machine.
MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Generated documents and callbacks must never leave this machine: every
# "url" property is pinned to a closed port on loopback.
LOCAL_URL = "http://127.0.0.1:9/document.pdf"


async def test_openapi_documents_every_route(tmp_path: Path) -> None:
    service = Service(make_config(tmp_path / "data"))
    app = create_app(service.context)

    assert undocumented_routes(app) == []


async def test_openapi_lists_only_registered(api: ApiClient, service: Service) -> None:
    status, document = await api.request("GET", "/v2/openapi.json")
    assert status == 200
    assert document["openapi"] == "3.1.0"

    scheme = document["components"]["securitySchemes"]["authToken"]
    assert scheme == {"type": "apiKey", "in": "header", "name": "X-Auth-Token"}

    served = {
        route_key(method, path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    app = create_app(service.context)
    assert served == registered_routes(app)
    assert route_key("get", "/v2/accounts/{account_id}/faxboxes") in served
    assert route_key("get", "/metrics") in served
    # Entries for routes this build lacks stay out of the served document.
    documented = {route_key(op.method, op.path) for op in OPERATIONS}
    assert len(documented) >= len(served)


async def test_openapi_operations_need_token(api: ApiClient) -> None:
    _status, document = await api.request("GET", "/v2/openapi.json")

    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            secured = "security" in operation
            assert secured == path.startswith("/v2/accounts/"), (method, path)
            if secured:
                assert "401" in operation["responses"], (method, path)


async def test_openapi_uses_handler_schemas(api: ApiClient) -> None:
    from faxgate.api.faxboxes import FAXBOX_SCHEMA

    _status, document = await api.request("GET", "/v2/openapi.json")
    create = document["paths"]["/v2/accounts/{account_id}/faxboxes"]["put"]
    body = create["requestBody"]["content"]["application/json"]["schema"]

    assert body["properties"]["data"] == FAXBOX_SCHEMA
    patch = document["paths"]["/v2/accounts/{account_id}/faxboxes/{faxbox_id}"]["patch"]
    patch_data = patch["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert "required" not in patch_data["data"]


async def test_openapi_documents_attachment_formats(api: ApiClient) -> None:
    _status, document = await api.request("GET", "/v2/openapi.json")
    faxes = "/v2/accounts/{account_id}/faxes"
    expected = {"outbox": ["pdf", "tiff", "original"], "inbox": ["pdf", "tiff"]}

    for folder, formats in expected.items():
        operation = document["paths"][f"{faxes}/{folder}/{{fax_id}}/attachment"]["get"]
        (parameter,) = [item for item in operation["parameters"] if item["name"] == "format"]
        assert parameter["in"] == "query"
        assert parameter["schema"]["enum"] == formats


async def test_served_document_is_valid(api: ApiClient) -> None:
    _status, document = await api.request("GET", "/v2/openapi.json")

    schemathesis.openapi.from_dict(document, config=SchemathesisConfig()).validate()


async def handler(request: web.Request) -> web.Response:
    return web.Response()


def test_full_table_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    # The table also describes routes of modules that this build lacks.
    # Registering every route on a bare app builds the whole table, which
    # is then checked against the OpenAPI 3.1 meta-schema. A stand-in
    # module provides the outgoing job schema, which lives in the module
    # of the faxes routes.
    stand_in = types.ModuleType("faxgate.api.submissions")
    stand_in.OUTGOING_SCHEMA = {  # type: ignore[attr-defined]
        "type": "object", "properties": {"to_number": {"type": "string"}},
    }
    monkeypatch.setitem(sys.modules, "faxgate.api.submissions", stand_in)
    app = web.Application()
    for operation in OPERATIONS:
        app.router.add_route(operation.method.upper(), operation.path, handler)

    document = build_document(app)
    schemathesis.openapi.from_dict(document, config=SchemathesisConfig()).validate()
    operations = sum(len(methods) for methods in document["paths"].values())
    assert operations == len(OPERATIONS)
    upload = document["paths"]["/v2/accounts/{account_id}/faxes"]["put"]["requestBody"]
    assert set(upload["content"]) == {
        "application/json", "multipart/mixed", "application/pdf", "image/*",
    }


@dataclass
class RunningApi:
    base_url: str
    account_id: str
    token: str
    faxbox_id: str


def _request(method: str, url: str, body: Any, token: str = "") -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["X-Auth-Token"] = token
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method=method, headers=headers
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _create_account(data_dir: Path) -> str:
    """Create an account with `faxgate account create`, which shares the server's store."""
    result = subprocess.run(
        [sys.executable, "-m", "faxgate.cli", "account", "create", "schema"],
        cwd=REPO,
        env={**os.environ, "FAXGATE_STORAGE_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    api_key: str = json.loads(result.stdout)["api_key"]
    return api_key


@pytest.fixture(scope="module")
def running_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    data_dir = tmp_path_factory.mktemp("openapi") / "data"
    server = ServerProcess(data_dir, env={"FAXGATE_LOG_LEVEL": "WARNING"})
    server.start()
    try:
        base = server.http_url
        api_key = _create_account(data_dir)
        login = _request("PUT", base + "/v2/api_auth", {"data": {"api_key": api_key}})
        token = login["auth_token"]
        account_id = login["data"]["account_id"]
        faxbox = _request(
            "PUT", f"{base}/v2/accounts/{account_id}/faxboxes", {"data": {"name": "Seed"}}, token
        )
        yield RunningApi(base, account_id, token, faxbox["data"]["id"])
    finally:
        server.signal(signal.SIGTERM)
        exit_code = server.wait()
        output = server.output()
    assert exit_code == 0, output
    assert "Traceback" not in output, output


def _pin_urls(node: Any) -> None:
    """Replace the schema of every property named "url" with LOCAL_URL, in place."""
    if isinstance(node, dict):
        properties = node.get("properties")
        if isinstance(properties, dict) and "url" in properties:
            properties["url"] = {"const": LOCAL_URL}
        for value in node.values():
            _pin_urls(value)
    elif isinstance(node, list):
        for item in node:
            _pin_urls(item)


def _load_schema(running: RunningApi) -> Any:
    with urllib.request.urlopen(running.base_url + "/v2/openapi.json", timeout=10) as response:
        document = json.load(response)
    _pin_urls(document)
    return schemathesis.openapi.from_dict(document, config=SchemathesisConfig())


def _has_inputs(operation: Any) -> bool:
    raw = operation.definition.raw
    return bool(raw.get("parameters")) or "requestBody" in raw


def _run_operation(
    running: RunningApi, operation: Any, mode: GenerationMode, path_parameters: dict[str, str]
) -> dict[int, int]:
    """Send MAX_EXAMPLES generated requests; return how often each status code came back."""
    statuses: dict[int, int] = {}
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

    @given(case=strategy)
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        response = case.call(base_url=running.base_url, headers={"X-Auth-Token": running.token})
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        case.validate_response(response, checks=CHECKS)

    check()
    return statuses


def test_api_conforms_to_openapi(running_api: RunningApi) -> None:
    schema = _load_schema(running_api)
    failures: list[str] = []
    answered: dict[str, dict[int, int]] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    # Known ids first, so that GET, POST and PATCH see the seed faxbox
    # before DELETE removes it; then ids as generated (mostly unknown).
    ordered = sorted(operations, key=lambda op: op.method.lower() == "delete")
    for operation in ordered:
        fixed = {"account_id": running_api.account_id, "faxbox_id": running_api.faxbox_id}
        names = {p["name"] for p in operation.definition.raw.get("parameters", [])}
        runs = [(GenerationMode.POSITIVE, {k: v for k, v in fixed.items() if k in names})]
        if "faxbox_id" in names:
            runs.append((GenerationMode.POSITIVE, {"account_id": running_api.account_id}))
        if _has_inputs(operation):
            runs.append((GenerationMode.NEGATIVE, {}))
        for mode, path_parameters in runs:
            label = f"{operation.label} {mode.value} {sorted(path_parameters)}"
            try:
                answered[label] = _run_operation(running_api, operation, mode, path_parameters)
            except Exception as exc:
                failures.append(f"{label}:\n{exc}")

    assert failures == []
    assert len(answered) >= len(operations)
    created = answered["PUT /v2/accounts/{account_id}/faxboxes positive ['account_id']"]
    assert created.get(201, 0) > 0, created
    patched = answered[
        "PATCH /v2/accounts/{account_id}/faxboxes/{faxbox_id} positive "
        "['account_id', 'faxbox_id']"
    ]
    assert patched.get(200, 0) > 0, patched
