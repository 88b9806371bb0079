"""Trunks: where calls leave and enter faxgate.

`faxgate.trunks.base` defines the interface and loads no fax library;
`faxgate.trunks.loopback` is the embedded trunk that answers calls itself.
"""
