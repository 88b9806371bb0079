"""Configuration: a TOML file, overridden key by key from the environment.

Every scalar key `key` of section `[section]` can be overridden with the
environment variable `FAXGATE_<SECTION>_<KEY>` (upper case). List values
are given in the environment as JSON (`["a", "b"]`) or comma-separated text.
A bad value raises ConfigError naming the key and the problem.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import tomllib
import types
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import phonenumbers

from faxgate.errors import ConfigError

ENV_PREFIX = "FAXGATE_"

PAPER_SIZE_CHOICES = ("auto", "letter", "a4")
# Regions whose business letters are on US Letter paper, so documents.paper_size
# "auto" lays out text on Letter there and on A4 elsewhere. The list is the
# US-Letter paperSize territories that Unicode Technical Standard #35 (LDML)
# part 6, section "Measurement System Data", shows for CLDR's supplemental data.
# NOTE: that list is the standard's example; it was not checked against the
# current CLDR data files.
LETTER_REGIONS = frozenset(
    {"BZ", "CA", "CL", "CO", "CR", "GT", "MX", "NI", "PA", "PH", "PR", "SV", "US", "VE"}
)


@dataclass
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    # Address that people and notifications use to reach the API, e.g.
    # "https://fax.example.com". Empty means http://HOST:PORT.
    public_url: str = ""
    max_upload_bytes: int = 50 * 1024 * 1024
    # Seconds that in-flight requests get to finish on shutdown.
    shutdown_timeout: float = 10.0


@dataclass
class SmtpConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 2525
    # The name this server gives in its greeting and EHLO reply.
    hostname: str = "faxgate.localhost"
    # Generated faxbox addresses are <8 hex>.<default_domain>.
    default_domain: str = "fax.localhost"
    max_message_size: int = 30 * 1024 * 1024
    max_recipients: int = 50
    max_sessions: int = 100
    # Seconds a client may stay silent before the server closes the session.
    command_timeout: float = 300.0
    max_line_length: int = 998
    tls_cert: str = ""
    tls_key: str = ""
    require_tls: bool = False
    # Inline images smaller than this many bytes are treated as logos and skipped.
    min_image_bytes: int = 8 * 1024
    # A second delivery of the same Message-ID to the same recipient within
    # this many seconds is accepted but not faxed again.
    duplicate_window: float = 24 * 3600.0
    # Use the message subject as a cover note on the first page.
    subject_as_cover: bool = False
    # Lines of a message that end in a bare LF instead of CRLF: "normalize"
    # stores them with CRLF, "reject" replies to the message with 500 5.5.2.
    bare_lf: str = "normalize"
    # Seconds that open mail transactions get to finish on shutdown.
    shutdown_timeout: float = 10.0


@dataclass
class StorageConfig:
    data_dir: str = "./var"


@dataclass
class AuthConfig:
    # Seconds an auth token stays valid after PUT /v2/api_auth.
    token_ttl: int = 3600


@dataclass
class FaxConfig:
    # Region used to read national numbers when the faxbox names none (ISO 3166 code).
    default_region: str = "US"
    # Resolution of rendered documents: "fine" (196 lpi) or "standard" (98 lpi).
    resolution: str = "fine"
    trunk: str = "loopback"
    # Calls the trunk carries at once.
    channels: int = 4
    # Station id (TSI) sent when the faxbox sets none.
    station_id: str = "faxgate"
    header_template: str = ""


@dataclass
class WorkerConfig:
    # Jobs the worker runs at once (fetching, rendering or calling).
    max_calls: int = 4
    per_account_max_calls: int = 10
    # Seconds before a failed attempt is tried again. The delay doubles with
    # each failed attempt, up to retry_delay_max; an attempt that ended busy
    # starts from busy_retry_delay instead.
    retry_delay: float = 300.0
    retry_delay_max: float = 3600.0
    busy_retry_delay: float = 120.0
    # Attempts of a job that names no `retries` and has no faxbox that does.
    default_retries: int = 3
    # Seconds a worker owns a claimed job; a job of a dead worker becomes due
    # again when its lease ends. A running worker renews its leases every
    # third of this.
    lease: float = 600.0
    # Maximum seconds between two looks for due jobs.
    poll_interval: float = 1.0
    # Seconds that calls in progress get to finish on shutdown before they
    # are cut off; jobs not yet calling are handed back at once.
    shutdown_timeout: float = 60.0


@dataclass
class FetchConfig:
    timeout: float = 30.0
    max_bytes: int = 50 * 1024 * 1024
    max_redirects: int = 5
    # Networks (CIDR) that document fetches and callbacks may reach even though
    # they are loopback, private, link-local or otherwise reserved.
    allow_networks: list[str] = field(default_factory=list)


@dataclass
class DocumentsConfig:
    timeout: float = 120.0
    memory_mb: int = 1024
    max_pages: int = 200
    max_page_length_mm: float = 1000.0
    min_page_length_mm: float = 25.4
    max_image_pixels: int = 100_000_000
    workers: int = 2
    # Paper that plain text and HTML are laid out on: "letter", "a4", or
    # "auto" (Letter when fax.default_region is in LETTER_REGIONS, else A4).
    paper_size: str = "auto"


@dataclass
class LoopbackConfig:
    # Far-end behaviour per destination pattern; see config/faxgate.toml.
    rules: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class NotifyConfig:
    # Host that relays notification mail; empty sends no mail (callbacks still go).
    smarthost: str = ""
    port: int = 25
    # "none", "starttls" or "tls" (implicit TLS).
    security: str = "starttls"
    # PEM file of CA certificates that the smarthost's certificate must chain
    # to; empty uses the system's CA store.
    ca_file: str = ""
    username: str = ""
    password: str = ""
    sender: str = "faxgate@localhost"
    # Seconds before a failed delivery is tried again; the delay doubles per
    # attempt up to retry_delay_max.
    retry_delay: float = 60.0
    retry_delay_max: float = 3600.0
    # Seconds after which a notification that still fails is given up and
    # marked failed.
    max_age: float = 5 * 24 * 3600.0
    # Seconds an SMTP step or a callback request may take.
    timeout: float = 60.0
    # Larger fax documents are not attached to notification mail.
    max_attachment_bytes: int = 10 * 1024 * 1024
    # Folder of editable templates. A relative path is taken from the folder
    # of the configuration file (else the working directory). A template
    # missing there comes from the built-in set; empty uses only the built-in set.
    templates_dir: str = ""


@dataclass
class DemoConfig:
    # On the first start with an empty store, create a demo account and
    # faxbox and print its API key and example commands once.
    enabled: bool = False


@dataclass
class LogConfig:
    level: str = "INFO"
    # "text" for key=value lines, "json" for one JSON object per line.
    format: str = "text"


@dataclass
class Config:
    http: HttpConfig = field(default_factory=HttpConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    fax: FaxConfig = field(default_factory=FaxConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    fetch: FetchConfig = field(default_factory=FetchConfig)
    documents: DocumentsConfig = field(default_factory=DocumentsConfig)
    loopback: LoopbackConfig = field(default_factory=LoopbackConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    log: LogConfig = field(default_factory=LogConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)

    @property
    def data_dir(self) -> Path:
        return Path(self.storage.data_dir)


def load_config(
    path: Path | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Read the TOML file at `path` (if given), apply environment overrides and validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path} not found") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc

    config = Config()
    known_sections = {f.name for f in dataclasses.fields(Config)}
    for name in raw:
        if name not in known_sections:
            raise ConfigError(f"{name}: unknown section; known sections: {sorted(known_sections)}")

    for section_field in dataclasses.fields(Config):
        section = getattr(config, section_field.name)
        table = raw.get(section_field.name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{section_field.name}: expected a table")
        _apply_table(section_field.name, section, table)
        _apply_environment(
            section_field.name, section, environ if environ is not None else os.environ
        )

    _validate(config)
    _resolve_templates_dir(config, path)
    return config


def _resolve_templates_dir(config: Config, path: Path | None) -> None:
    templates_dir = config.notify.templates_dir
    if templates_dir and path is not None and not Path(templates_dir).is_absolute():
        config.notify.templates_dir = str(path.resolve().parent / templates_dir)


def _apply_table(section_name: str, section: Any, table: dict[str, Any]) -> None:
    hints = get_type_hints(type(section))
    for key, value in table.items():
        if key not in hints:
            raise ConfigError(f"{section_name}.{key}: unknown key")
        setattr(section, key, _coerce(f"{section_name}.{key}", hints[key], value))


def _apply_environment(section_name: str, section: Any, environ: Mapping[str, str]) -> None:
    hints = get_type_hints(type(section))
    for key, hint in hints.items():
        variable = f"{ENV_PREFIX}{section_name.upper()}_{key.upper()}"
        if variable in environ:
            value = _parse_environment_value(variable, hint, environ[variable])
            setattr(section, key, _coerce(f"{section_name}.{key} (from {variable})", hint, value))


def _parse_environment_value(variable: str, hint: Any, text: str) -> Any:
    if get_origin(hint) is not list:
        return text
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{variable}: not a valid JSON list: {exc}") from exc
    return [item.strip() for item in stripped.split(",") if item.strip()]


def _coerce(key: str, hint: Any, value: Any) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        hint = next(arg for arg in get_args(hint) if arg is not type(None))
        origin = get_origin(hint)
    if hint is bool:
        return _coerce_bool(key, value)
    if hint is int:
        return _coerce_number(key, value, int)
    if hint is float:
        return float(_coerce_number(key, value, float))
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_hint,) = get_args(hint)
        if item_hint is str:
            return [_coerce(f"{key}[{i}]", str, item) for i, item in enumerate(value)]
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise ConfigError(f"{key}[{i}]: expected a table, got {item!r}")
        return value
    raise ConfigError(f"{key}: unsupported setting type {hint!r}")


def _coerce_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{key}: expected true or false, got {value!r}")


def _coerce_number(key: str, value: Any, kind: type[int] | type[float]) -> int | float:
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if isinstance(value, int | float) and not (kind is int and isinstance(value, float)):
        return value
    if isinstance(value, str):
        try:
            return kind(value.strip())
        except ValueError:
            pass
    expected = "an integer" if kind is int else "a number"
    raise ConfigError(f"{key}: expected {expected}, got {value!r}")


def _require(condition: bool, key: str, problem: str) -> None:
    if not condition:
        raise ConfigError(f"{key}: {problem}")


def _validate(config: Config) -> None:
    _validate_limits(config)
    _validate_choices(config)
    _validate_smtp(config.smtp)
    _validate_fetch(config.fetch)


def _validate_limits(config: Config) -> None:
    for name, port in (("http.port", config.http.port), ("smtp.port", config.smtp.port)):
        _require(0 <= port <= 65535, name, f"must be a port number from 0 to 65535, got {port}")
    for key, value in (
        ("http.max_upload_bytes", config.http.max_upload_bytes),
        ("smtp.max_message_size", config.smtp.max_message_size),
        ("smtp.max_recipients", config.smtp.max_recipients),
        ("smtp.max_sessions", config.smtp.max_sessions),
        ("auth.token_ttl", config.auth.token_ttl),
        ("fax.channels", config.fax.channels),
        ("worker.max_calls", config.worker.max_calls),
        ("worker.per_account_max_calls", config.worker.per_account_max_calls),
        ("documents.max_pages", config.documents.max_pages),
        ("documents.workers", config.documents.workers),
        ("documents.memory_mb", config.documents.memory_mb),
        ("fetch.max_bytes", config.fetch.max_bytes),
    ):
        _require(value > 0, key, f"must be greater than 0, got {value}")
    for key, seconds in (
        ("worker.retry_delay", config.worker.retry_delay),
        ("worker.busy_retry_delay", config.worker.busy_retry_delay),
        ("worker.lease", config.worker.lease),
        ("worker.retry_delay_max", config.worker.retry_delay_max),
        ("worker.shutdown_timeout", config.worker.shutdown_timeout),
        ("fetch.timeout", config.fetch.timeout),
        ("smtp.shutdown_timeout", config.smtp.shutdown_timeout),
        ("smtp.duplicate_window", config.smtp.duplicate_window),
        ("documents.timeout", config.documents.timeout),
    ):
        _require(seconds >= 0, key, f"must not be negative, got {seconds}")
    _require(
        config.documents.min_page_length_mm >= 0,
        "documents.min_page_length_mm",
        f"must not be negative, got {config.documents.min_page_length_mm}",
    )
    _require(config.worker.lease > 0, "worker.lease", "must be greater than 0")
    _require(config.worker.poll_interval > 0, "worker.poll_interval", "must be greater than 0")
    _require(
        1 <= config.worker.default_retries <= 4,
        "worker.default_retries",
        f"must be from 1 to 4, got {config.worker.default_retries}",
    )
    _require(config.smtp.command_timeout > 0, "smtp.command_timeout", "must be greater than 0")


def _validate_choices(config: Config) -> None:
    _require(
        config.fax.resolution in ("fine", "standard"),
        "fax.resolution",
        f"must be 'fine' or 'standard', got {config.fax.resolution!r}",
    )
    _require(
        config.fax.default_region.upper() in phonenumbers.SUPPORTED_REGIONS,
        "fax.default_region",
        f"unknown region {config.fax.default_region!r}; use an ISO 3166 code such as 'US' or 'DE'",
    )
    config.fax.default_region = config.fax.default_region.upper()
    _require(
        config.documents.paper_size.lower() in PAPER_SIZE_CHOICES,
        "documents.paper_size",
        f"must be 'auto', 'letter' or 'a4', got {config.documents.paper_size!r}",
    )
    config.documents.paper_size = config.documents.paper_size.lower()
    _require(
        config.notify.security in ("none", "starttls", "tls"),
        "notify.security",
        f"must be 'none', 'starttls' or 'tls', got {config.notify.security!r}",
    )
    _validate_notify(config.notify)
    _require(
        config.log.format in ("text", "json"),
        "log.format",
        f"must be 'text' or 'json', got {config.log.format!r}",
    )
    _require(
        config.log.level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR"),
        "log.level",
        f"must be DEBUG, INFO, WARNING or ERROR, got {config.log.level!r}",
    )


def _validate_smtp(smtp: SmtpConfig) -> None:
    _require(
        bool(smtp.tls_cert) == bool(smtp.tls_key),
        "smtp.tls_cert",
        "tls_cert and tls_key must be set together",
    )
    _require(
        not smtp.require_tls or bool(smtp.tls_cert),
        "smtp.require_tls",
        "requires smtp.tls_cert and smtp.tls_key",
    )
    _require(
        smtp.bare_lf in ("normalize", "reject"),
        "smtp.bare_lf",
        f"must be 'normalize' or 'reject', got {smtp.bare_lf!r}",
    )
    _require(
        smtp.max_line_length >= 78,
        "smtp.max_line_length",
        f"must be at least 78 (RFC 5322 asks writers to keep lines that short), "
        f"got {smtp.max_line_length}",
    )
    _require(bool(smtp.default_domain), "smtp.default_domain", "must not be empty")
    smtp.default_domain = smtp.default_domain.lower()


def _validate_fetch(fetch: FetchConfig) -> None:
    for index, network in enumerate(fetch.allow_networks):
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as exc:
            raise ConfigError(f"fetch.allow_networks[{index}]: {exc}") from exc


def _validate_notify(notify: NotifyConfig) -> None:
    _require(
        0 < notify.port <= 65535,
        "notify.port",
        f"must be a port number from 1 to 65535, got {notify.port}",
    )
    for key, seconds in (
        ("notify.retry_delay", notify.retry_delay),
        ("notify.max_age", notify.max_age),
        ("notify.timeout", notify.timeout),
    ):
        _require(seconds > 0, key, f"must be greater than 0, got {seconds}")
    _require(
        notify.retry_delay_max >= notify.retry_delay,
        "notify.retry_delay_max",
        f"must be at least notify.retry_delay ({notify.retry_delay}), got {notify.retry_delay_max}",
    )
    _require(
        notify.max_attachment_bytes >= 0,
        "notify.max_attachment_bytes",
        f"must not be negative, got {notify.max_attachment_bytes}",
    )
    _require(
        bool(notify.username) or not notify.password,
        "notify.password",
        "is set but notify.username is empty; set both or neither",
    )
    _, sender = parseaddr(notify.sender)
    _require(
        "@" in sender,
        "notify.sender",
        f"must be a mail address such as faxgate@example.com, got {notify.sender!r}",
    )


def text_paper_size(config: Config) -> str:
    """Return the paper ("letter" or "a4") that documents.paper_size selects for text."""
    if config.documents.paper_size != "auto":
        return config.documents.paper_size
    return "letter" if config.fax.default_region.upper() in LETTER_REGIONS else "a4"


def check_timezone(name: str) -> bool:
    """Return whether `name` is a time zone known to the IANA database."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True
