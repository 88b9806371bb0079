"""Fax notifications: result and inbound mail through a smarthost, SMTP failure notices
and signed callbacks, queued in the store and retried until delivered.

The fax layers call `Notifier.fax_finished`, `Notifier.fax_received` and
`Notifier.smtp_failure`; the service starts the notifier as a component.
"""

from faxgate.notify.guard import AddressGuard, NetworkAddressGuard, address_allowed
from faxgate.notify.notifier import (
    INBOUND_RECEIVED,
    OUTBOUND_COMPLETED,
    OUTBOUND_FAILED,
    SMTP_FAILED,
    Notifier,
)

__all__ = [
    "INBOUND_RECEIVED",
    "OUTBOUND_COMPLETED",
    "OUTBOUND_FAILED",
    "SMTP_FAILED",
    "AddressGuard",
    "NetworkAddressGuard",
    "Notifier",
    "address_allowed",
]
