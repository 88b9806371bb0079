"""Service manager notifications (sd_notify) for `Type=notify` units.

systemd passes the path of a datagram socket in NOTIFY_SOCKET; a service
reports its state by sending newline-separated `KEY=VALUE` assignments to
it (see sd_notify(3)). A path that starts with "@" names a socket in the
Linux abstract namespace. Without NOTIFY_SOCKET, every call does nothing,
so the same code runs under systemd, in a container and in tests.
"""

from __future__ import annotations

import os
import socket
import time

from faxgate.logs import EventLogger

log = EventLogger("faxgate.systemd")


def notify(*assignments: str) -> bool:
    """Send `assignments` (such as "READY=1") to the service manager.

    Returns True when a message was sent, False when no manager listens.
    A failed send is logged and not raised, because the service works
    without its manager's bookkeeping.
    """
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    message = "\n".join(assignments).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message)
    except OSError as exc:
        log.error("systemd.notify_failed", socket=address.lstrip("\0"), error=exc)
        return False
    return True


def notify_ready(status: str = "") -> bool:
    """Tell the manager that start-up (or a reload) has finished."""
    return notify("READY=1", *_status(status))


def notify_reloading(status: str = "") -> bool:
    # MONOTONIC_USEC lets systemd 253 and later match this message to the
    # reload it requested (Type=notify-reload); older versions ignore it.
    monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}", *_status(status))


def notify_stopping(status: str = "") -> bool:
    return notify("STOPPING=1", *_status(status))


def _status(text: str) -> list[str]:
    return [f"STATUS={text}"] if text else []
