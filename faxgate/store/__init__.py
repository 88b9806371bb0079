"""The store: every read and write of faxgate's database goes through `Store`.

SQLite in WAL mode through aiosqlite is the embedded backend. A PostgreSQL
backend can implement the same methods later; no SQL lives outside this
package.
"""

from __future__ import annotations

from faxgate.store.accounts import AccountsMixin
from faxgate.store.base import InvalidStartKeyError, Page, PageRequest, StoreError
from faxgate.store.faxboxes import FaxboxDomainTakenError, FaxboxesMixin
from faxgate.store.faxes import FaxesMixin
from faxgate.store.inbox import InboxMixin
from faxgate.store.notifications import NotificationsMixin
from faxgate.store.smtplog import SmtpLogMixin
from faxgate.store.stats import StatsMixin

__all__ = [
    "FaxboxDomainTakenError",
    "InvalidStartKeyError",
    "Page",
    "PageRequest",
    "Store",
    "StoreError",
]


class Store(
    AccountsMixin,
    FaxboxesMixin,
    InboxMixin,
    FaxesMixin,
    SmtpLogMixin,
    NotificationsMixin,
    StatsMixin,
):
    """faxgate's database: accounts, faxboxes, faxes, inbox, the smtplog and notifications."""
