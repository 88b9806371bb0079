"""faxgate: an email-to-fax gateway and Kazoo-compatible faxes API with its own fax engine."""

__version__ = "0.1.0"
