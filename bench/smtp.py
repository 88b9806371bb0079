"""Benchmark the SMTP gateway: accepted messages per second against a plain aiosmtpd sink.

Usage: python bench/smtp.py [--messages N] [--connections M]

Each server runs in its own child process on 127.0.0.1; this process sends N
messages, each with a one-page PDF, over M parallel connections with
aiosmtplib and prints the accepted messages per second of both servers and
their ratio. The faxgate server does the full DATA path: parse and review
the message, write it to disk with fsync, and commit the message, the job
and the smtplog entry to SQLite (synchronous=FULL) before it replies 250.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import Any

import aiosmtplib

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SENDER = "bench@example.com"


def one_page_pdf() -> bytes:
    import io

    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(612, 792)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def build_message(index: int, pdf: bytes) -> bytes:
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = SENDER
    message["To"] = "fax@bench.example.com"
    message["Subject"] = f"bench {index}"
    message["Message-ID"] = f"<bench-{index}-{time.time_ns()}@example.com>"
    message.set_content("Please fax the attached page.")
    message.add_attachment(pdf, maintype="application", subtype="pdf", filename="page.pdf")
    return message.as_bytes()


# Child process: one server.


async def serve_faxgate(ready: Path, data_dir: Path) -> None:
    from faxgate.config import load_config
    from faxgate.logs import configure_logging
    from faxgate.service import Service

    configure_logging("WARNING")
    config = load_config(None, environ={})
    config.storage.data_dir = str(data_dir)
    config.http.port = 0
    config.smtp.port = 0
    service = Service(config)
    await service.start()
    account, _key = await service.store.create_account("bench")
    faxbox = await service.store.create_faxbox(
        account["id"],
        {"name": "bench", "smtp_permission_list": [], "smtp_allow_all_senders": True},
        config.smtp.default_domain,
    )
    recipient = f"+12125550123@{faxbox['smtp_email_address']}"
    await _announce_and_wait(ready, service.smtp_port or 0, recipient)
    await service.stop()


class SinkHandler:
    """Accepts every message and keeps nothing: the baseline."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


async def serve_sink(ready: Path) -> None:
    from aiosmtpd.smtp import SMTP

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(SinkHandler(), enable_SMTPUTF8=True, decode_data=False, loop=loop),
        "127.0.0.1",
        0,
    )
    port = server.sockets[0].getsockname()[1]
    await _announce_and_wait(ready, port, "+12125550123@sink.example.com")
    server.close()


async def _announce_and_wait(ready: Path, port: int, recipient: str) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await asyncio.to_thread(_write_ready, ready, {"port": port, "recipient": recipient})
    await stop.wait()


def _write_ready(ready: Path, info: dict[str, Any]) -> None:
    partial = ready.with_suffix(".partial")
    partial.write_text(json.dumps(info))
    partial.replace(ready)


# Parent process: the load.


async def send_batch(port: int, recipient: str, messages: list[bytes]) -> int:
    accepted = 0
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60)
    await client.connect()
    for raw in messages:
        errors, _reply = await client.sendmail(SENDER, [recipient], raw)
        accepted += 0 if errors else 1
    await client.quit()
    return accepted


async def run_load(port: int, recipient: str, count: int, connections: int) -> tuple[int, float]:
    pdf = one_page_pdf()
    messages = [build_message(index, pdf) for index in range(count)]
    batches = [messages[start::connections] for start in range(connections)]
    started = time.perf_counter()
    results = await asyncio.gather(*(send_batch(port, recipient, batch) for batch in batches))
    return sum(results), time.perf_counter() - started


def measure(kind: str, count: int, connections: int, folder: Path) -> float:
    ready = folder / f"{kind}.ready"
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--ready", str(ready),
         "--data-dir", str(folder / "data")],
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if child.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the {kind} server did not start")
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        accepted, seconds = asyncio.run(run_load(info["port"], info["recipient"], count,
                                                 connections))
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(60)
    rate = accepted / seconds
    print(f"{kind:8} accepted {accepted}/{count} messages in {seconds:.2f} s: {rate:.1f} msg/s")
    if accepted != count:
        raise SystemExit(f"the {kind} server rejected {count - accepted} of {count} messages")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400, help="messages to send (default 400)")
    parser.add_argument("--connections", type=int, default=8,
                        help="parallel SMTP connections (default 8)")
    parser.add_argument("--serve", choices=["faxgate", "sink"], help=argparse.SUPPRESS)
    parser.add_argument("--ready", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve == "faxgate":
        asyncio.run(serve_faxgate(args.ready, args.data_dir))
        return
    if args.serve == "sink":
        asyncio.run(serve_sink(args.ready))
        return

    print(f"{args.messages} messages with a one-page PDF over {args.connections} connections")
    with tempfile.TemporaryDirectory() as folder:
        sink = measure("sink", args.messages, args.connections, Path(folder))
        faxgate = measure("faxgate", args.messages, args.connections, Path(folder))
    print(f"faxgate / sink: {faxgate / sink:.2f}")


if __name__ == "__main__":
    main()
