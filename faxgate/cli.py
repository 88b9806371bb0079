"""The `faxgate` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from faxgate.client import (
    ApiClientError,
    FaxgateClient,
    ServerNotRunningError,
    document_for,
    resolve_api_url,
)
from faxgate.config import Config, load_config
from faxgate.errors import ConfigError
from faxgate.logs import EventLogger, configure_logging
from faxgate.service import Service
from faxgate.store import Store

log = EventLogger("faxgate.cli")

DEMO_NUMBER = "+12125550100"


def _load(args: argparse.Namespace) -> Config:
    path = args.config or os.environ.get("FAXGATE_CONFIG")
    return load_config(Path(path) if path else None)


# Exit status of `faxgate status` when no server responds (as LSB init scripts use it).
EXIT_NOT_RUNNING = 3


async def _serve(config: Config, args: argparse.Namespace) -> int:
    service = Service(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    reloads: set[asyncio.Task[Any]] = set()
    started = asyncio.Event()

    async def reload_when_started() -> None:
        # A SIGHUP during start-up waits, so that systemd never hears
        # READY=1 from a reload before the listeners are up.
        await started.wait()
        await service.reload_from(lambda: _load(args))

    def request_reload() -> None:
        log.info("config.reload_requested", signal="SIGHUP")
        task = asyncio.create_task(reload_when_started(), name="config.reload")
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, request_reload)

    await service.start()
    started.set()
    try:
        if config.demo.enabled:
            await _create_demo(service)
        await stop.wait()
    finally:
        for task in list(reloads):
            await task
        await service.stop()
    return 0


async def _create_demo(service: Service) -> None:
    """Create a demo account and faxbox on an empty store and print how to use them."""
    store = service.store
    if await store.count_accounts() > 0:
        return
    account, api_key = await store.create_account("demo")
    faxbox = await store.create_faxbox(
        account["id"],
        {
            "name": "Demo faxbox",
            "caller_id": DEMO_NUMBER,
            "fax_identity": DEMO_NUMBER,
            "smtp_permission_list": [],
            "smtp_allow_all_senders": True,
            "smtp_fax_text_body": True,
        },
        service.config.smtp.default_domain,
    )
    domain = faxbox["smtp_email_address"]
    http = service.http_url
    smtp_port = service.smtp_port or service.config.smtp.port
    # A "+" in a query string reads as a space, so it is sent percent-encoded.
    number_query = DEMO_NUMBER.replace("+", "%2B")
    print(
        f"""
faxgate demo account created (shown once; keep the API key):
  account_id: {account["id"]}
  api_key:    {api_key}
  faxbox:     {faxbox["id"]}, mail domain {domain}

Send a fax by email (any PDF), to the demo faxbox's own number:
  swaks --server {service.config.smtp.host}:{smtp_port} --from you@example.com \\
        --to '{DEMO_NUMBER.lstrip("+")}@{domain}' --attach document.pdf

Or over the REST API:
  TOKEN=$(curl -s -X PUT {http}/v2/api_auth -d '{{"data":{{"api_key":"{api_key}"}}}}' \\
          | python3 -c 'import json,sys; print(json.load(sys.stdin)["auth_token"])')
  curl -s -H "X-Auth-Token: $TOKEN" {http}/v2/accounts/{account["id"]}/faxboxes
  curl -s -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/pdf' \\
       --data-binary @document.pdf -X PUT \\
       '{http}/v2/accounts/{account["id"]}/faxes?to_number={number_query}&from_number={number_query}'

Or with the faxgate command:
  FAXGATE_API_KEY={api_key} .venv/bin/faxgate --config config/faxgate.toml \\
       send --faxbox {faxbox["id"]} --to {DEMO_NUMBER} --wait document.pdf

The fax goes to the demo faxbox's own number, so it also arrives in its inbox.
""",
        flush=True,
    )


async def _with_store(
    config: Config, action: str, argument: str | None, smtplog_limit: int = 50
) -> Any:
    store = Store(config.data_dir / "faxgate.sqlite3")
    await store.open()
    try:
        if action == "account-create":
            account, api_key = await store.create_account(argument or "")
            return {
                "account_id": account["id"],
                "api_key": api_key,
                "callback_secret": await store.get_callback_secret(account["id"]),
            }
        if action in ("callback-secret-show", "callback-secret-rotate"):
            if action == "callback-secret-rotate":
                secret = await store.rotate_callback_secret(argument or "")
            else:
                secret = await store.get_callback_secret(argument or "")
            if secret is None:
                raise ConfigError(f"account {argument} not found")
            return {"account_id": argument, "callback_secret": secret}
        if action == "account-list":
            return await store.list_accounts()
        if action == "smtplog":
            return await store.list_smtplog_entries(argument, limit=smtplog_limit)
        if action == "apikey-rotate":
            new_key = await store.rotate_api_key(argument or "")
            if new_key is None:
                raise ConfigError(f"account {argument} not found")
            return {"account_id": argument, "api_key": new_key}
        raise ValueError(action)
    finally:
        await store.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faxgate",
        description="Fax server: email-to-fax gateway, Kazoo-compatible faxes API and fax engine.",
    )
    parser.add_argument(
        "--config",
        help="TOML configuration file (default: $FAXGATE_CONFIG, else built-in defaults)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("serve", help="run the HTTP API, SMTP listener and fax worker")
    commands.add_parser("check-config", help="validate the configuration and print it as JSON")

    account = commands.add_parser("account", help="manage accounts").add_subparsers(
        dest="account_command", required=True
    )
    create = account.add_parser("create", help="create an account and print its API key as JSON")
    create.add_argument("name", help="account name")
    account.add_parser("list", help="list accounts as JSON")
    secret = account.add_parser(
        "callback-secret",
        help="print the key that signs the account's callbacks (X-Faxgate-Signature)",
    )
    secret.add_argument("account_id", help="32-hex account id")
    secret.add_argument(
        "--rotate", action="store_true", help="replace the key first; the old one stops working"
    )

    apikey = commands.add_parser("apikey", help="manage API keys").add_subparsers(
        dest="apikey_command", required=True
    )
    rotate = apikey.add_parser("rotate", help="replace an account's API key and print the new one")
    rotate.add_argument("account_id", help="32-hex account id")

    smtplog = commands.add_parser(
        "smtplog", help="print the newest smtplog entries as JSON, newest first"
    )
    scope = smtplog.add_mutually_exclusive_group(required=True)
    scope.add_argument(
        "--system",
        action="store_true",
        help="the system log: mail refused before a faxbox was known (unknown domains, <>)",
    )
    scope.add_argument("--account", help="the entries of this account (32-hex id)")
    smtplog.add_argument("--limit", type=int, default=50, help="entries to print (default 50)")
    send = commands.add_parser(
        "send",
        help="fax files through a running server's API",
        description=(
            "Upload FILEs as one outgoing fax with PUT /v2/accounts/{account}/faxes. "
            "The API key comes from --api-key or $FAXGATE_API_KEY; the server address "
            "from --url or the runtime file of the server using this configuration."
        ),
    )
    send.add_argument("--to", required=True, metavar="NUMBER", help="destination fax number")
    send.add_argument(
        "--from", dest="from_number", metavar="NUMBER",
        help="sender's fax number (default: the caller_id of --faxbox, or of the"
        " account's only faxbox)",
    )
    send.add_argument(
        "--faxbox", metavar="ID",
        help="faxbox whose settings the fax uses (default: the account's only faxbox,"
        " unless --from is given)",
    )
    send.add_argument("--retries", type=int, metavar="N", help="total call attempts, 0 to 4")
    send.add_argument("--wait", action="store_true", help="print progress until the fax is done")
    send.add_argument(
        "--timeout", type=float, default=900.0, metavar="SECONDS",
        help="with --wait: give up waiting after this many seconds (default: 900)",
    )
    send.add_argument(
        "--interval", type=float, default=1.0, metavar="SECONDS",
        help="with --wait: seconds between two looks at the fax (default: 1)",
    )
    _add_server_options(send, api_key=True)
    send.add_argument("files", nargs="+", metavar="FILE", help="documents to fax, in order")

    status = commands.add_parser(
        "status",
        help="show a running server's health, queue and trunk channels",
        description="Read GET /health of the running server. Exit status: 0 healthy, "
        "1 a check is failing, 3 no server responds.",
    )
    status.add_argument("--json", action="store_true", help="print the /health answer as JSON")
    _add_server_options(status, api_key=False)
    return parser


def _add_server_options(parser: argparse.ArgumentParser, api_key: bool) -> None:
    parser.add_argument(
        "--url", metavar="URL",
        help="API base URL, e.g. http://127.0.0.1:8000 (default: from the runtime file)",
    )
    if api_key:
        parser.add_argument(
            "--api-key", metavar="KEY",
            help="account API key (default: $FAXGATE_API_KEY; the option is visible in ps)",
        )


def _print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def _send(config: Config, args: argparse.Namespace) -> int:
    api_key = args.api_key or os.environ.get("FAXGATE_API_KEY", "")
    if not api_key:
        raise ApiClientError("no API key: pass --api-key or set FAXGATE_API_KEY")
    documents = [document_for(Path(name)) for name in args.files]
    fields: dict[str, Any] = {"to_number": args.to}
    if args.from_number:
        fields["from_number"] = args.from_number
    if args.faxbox:
        fields["faxbox_id"] = args.faxbox
    if args.retries is not None:
        fields["retries"] = args.retries

    base_url = resolve_api_url(args.url, config.data_dir)
    async with aiohttp.ClientSession() as session:
        client = FaxgateClient(session, base_url)
        await client.authenticate(api_key)
        if "from_number" not in fields and "faxbox_id" not in fields:
            fields["faxbox_id"] = await client.sole_faxbox()
            _print_progress(f"sending from faxbox {fields['faxbox_id']}")
        job = await client.submit_fax(fields, documents, _print_progress)
        _print_progress(f"queued fax {job['id']} to {args.to}")
        if not args.wait:
            print(json.dumps(job, indent=2))
            return 0
        final = await client.wait_for_fax(str(job["id"]), _print_progress, args.interval,
                                          args.timeout)
    print(json.dumps(final, indent=2))
    return 0 if final.get("status") == "completed" else 1


async def _status(config: Config, args: argparse.Namespace) -> int:
    base_url = resolve_api_url(args.url, config.data_dir)
    async with aiohttp.ClientSession() as session:
        code, health = await FaxgateClient(session, base_url).health()
    if args.json:
        print(json.dumps(health, indent=2))
    else:
        print(format_status(base_url, health))
    return 0 if code == 200 else 1


def format_status(base_url: str, health: dict[str, Any]) -> str:
    """Render a /health answer as the lines `faxgate status` prints."""
    lines = [f"faxgate {health.get('version', '?')} at {base_url}: {health.get('status')}"]
    for name, check in health.get("checks", {}).items():
        lines.append(f"  {name:<10} {_check_text(check)}")
    if "queue" in health:
        queue = ", ".join(f"{state} {count}" for state, count in health["queue"].items())
        lines.append(f"queue: {health.get('queue_depth', 0)} jobs ({queue}), "
                     f"{health.get('due', 0)} due now")
        finished = ", ".join(f"{state} {count}" for state, count in health["finished"].items())
        lines.append(f"finished: {finished}")
    trunks = health.get("trunks", {})
    if not trunks:
        lines.append("trunks: none registered")
    for name, trunk in trunks.items():
        lines.append(
            f"trunk {name}: {trunk.get('status')}, {trunk.get('channels_in_use', '?')} of "
            f"{trunk.get('channels_total', '?')} channels in use"
        )
    return "\n".join(lines)


def _check_text(check: Any) -> str:
    if not isinstance(check, dict):
        return str(check)
    # Nested values (the worker's trunk status) have their own line below.
    details = ", ".join(
        f"{key} {value}"
        for key, value in check.items()
        if key != "status" and not isinstance(value, dict | list)
    )
    return f"{check.get('status')} ({details})" if details else str(check.get("status"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = _load(args)
    except ConfigError as exc:
        print(f"faxgate: invalid configuration: {exc.message}", file=sys.stderr)
        return 2
    configure_logging(config.log.level, config.log.format)

    if args.command == "serve":
        try:
            return asyncio.run(_serve(config, args))
        except ConfigError as exc:
            print(f"faxgate: invalid configuration: {exc.message}", file=sys.stderr)
            return 2
    if args.command in ("send", "status"):
        return _run_client_command(config, args)
    if args.command == "check-config":
        from dataclasses import asdict

        settings = asdict(config)
        if settings["notify"]["password"]:
            settings["notify"]["password"] = "***"
        print(json.dumps(settings, indent=2, default=str))
        return 0

    if args.command == "smtplog":
        entries = asyncio.run(
            _with_store(config, "smtplog", None if args.system else args.account, args.limit)
        )
        print(json.dumps(entries, indent=2, ensure_ascii=False))
        return 0

    secret_action = "callback-secret-rotate" if getattr(args, "rotate", False) else (
        "callback-secret-show"
    )
    action = {
        ("account", "create"): ("account-create", getattr(args, "name", None)),
        ("account", "list"): ("account-list", None),
        ("account", "callback-secret"): (secret_action, getattr(args, "account_id", None)),
        ("apikey", "rotate"): ("apikey-rotate", getattr(args, "account_id", None)),
    }[(args.command, getattr(args, "account_command", None) or args.apikey_command)]
    try:
        result = asyncio.run(_with_store(config, *action))
    except ConfigError as exc:
        print(f"faxgate: {exc.message}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


def _run_client_command(config: Config, args: argparse.Namespace) -> int:
    command = _send if args.command == "send" else _status
    try:
        return asyncio.run(command(config, args))
    except ServerNotRunningError as exc:
        print(f"faxgate: {exc.message}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    except ApiClientError as exc:
        print(f"faxgate: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
