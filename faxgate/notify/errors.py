"""Errors of notification delivery and templates."""

from __future__ import annotations

from faxgate.errors import FaxgateError


class DeliveryError(FaxgateError):
    """A notification could not be delivered."""

    code = "delivery_failed"


class TemporaryDeliveryError(DeliveryError):
    """The smarthost or callback receiver failed for now; the notification is tried again."""

    code = "delivery_deferred"


class SessionError(TemporaryDeliveryError):
    """The SMTP session with the smarthost failed, so no message of the batch can go now."""

    code = "smarthost_unavailable"


class PermanentDeliveryError(DeliveryError):
    """The recipient or receiver rejected the notification; it is not tried again."""

    code = "delivery_rejected"


class TemplateError(FaxgateError):
    """A notification template is invalid; fix the named file."""

    code = "template_error"
