"""Notification templates: plain files that an operator can edit.

Each notification has a text template `<name>.txt` and an HTML template
`<name>.html`. The text template's first line is `Subject: ...`; the lines
after it (a blank line between is optional) are the plain-text body. Both use
`string.Template` placeholders (`$to_number` or `${to_number}`). A placeholder
without a value stays in the output as written, so a typo shows in the mail
and never stops it. Values are HTML-escaped in HTML templates, except
`$first_page_image`, which is an `<img>` element or empty.

Files in the configured folder override the built-in ones
(faxgate/notify/templates) one by one.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from faxgate.errors import ConfigError
from faxgate.logs import EventLogger
from faxgate.notify.errors import TemplateError

log = EventLogger("faxgate.notify")

OUTBOUND_SUCCESS = "outbound_success"
OUTBOUND_FAILURE = "outbound_failure"
INBOUND = "inbound"
SMTP_FAILURE = "smtp_failure"
TEMPLATE_NAMES = (OUTBOUND_SUCCESS, OUTBOUND_FAILURE, INBOUND, SMTP_FAILURE)

# Values inserted into HTML templates without escaping.
RAW_HTML_VALUES = ("first_page_image",)

_SUBJECT_LINE = re.compile(r"^Subject:[ \t]*(.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class RenderedTemplate:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class _Source:
    subject: str
    text: str
    html: str


def parse_text_template(text: str, origin: str) -> tuple[str, str]:
    """Split a text template into its subject line and body; TemplateError if malformed."""
    first, _, body = text.partition("\n")
    match = _SUBJECT_LINE.match(first.rstrip("\r"))
    if match is None:
        raise TemplateError(f"{origin}: the first line must be 'Subject: ...', got {first!r}")
    if not match.group(1).strip():
        raise TemplateError(f"{origin}: the subject line is empty")
    body = body.replace("\r\n", "\n")
    if body.startswith("\n"):
        body = body[1:]
    return match.group(1).strip(), body


class Templates:
    """The template set: the operator's folder first, the built-in files second."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def check(self) -> None:
        """Raise ConfigError if the folder is missing or any template in it is invalid."""
        if self.directory is None:
            return
        if not self.directory.is_dir():
            raise ConfigError(f"notify.templates_dir: folder {self.directory} not found")
        for name in TEMPLATE_NAMES:
            try:
                self._load_custom(name)
            except TemplateError as exc:
                raise ConfigError(f"notify.templates_dir: {exc.message}") from exc

    def render(self, name: str, values: Mapping[str, str]) -> RenderedTemplate:
        """Fill the template `name` with `values`.

        A custom template that has become invalid while faxgate runs is
        replaced by the built-in one, with a warning, so the notification
        still goes out.
        """
        try:
            source = self._load_custom(name) or self._load_builtin(name)
        except TemplateError as exc:
            log.warning("notify.template_invalid", template=name, error=exc.message)
            source = self._load_builtin(name)

        text_values = dict(values)
        html_values = {
            key: value if key in RAW_HTML_VALUES else html.escape(value)
            for key, value in values.items()
        }
        subject = Template(source.subject).safe_substitute(text_values)
        return RenderedTemplate(
            # Values may contain line breaks, which a header must not.
            subject=" ".join(subject.split()),
            text=Template(source.text).safe_substitute(text_values),
            html=Template(source.html).safe_substitute(html_values),
        )

    def _load_custom(self, name: str) -> _Source | None:
        """Return the operator's version of `name`, or None when the folder has neither file."""
        if self.directory is None:
            return None
        text_path = self.directory / f"{name}.txt"
        html_path = self.directory / f"{name}.html"
        if not text_path.is_file() and not html_path.is_file():
            return None
        builtin = self._load_builtin(name)
        subject, text = builtin.subject, builtin.text
        if text_path.is_file():
            subject, text = parse_text_template(_read(text_path), str(text_path))
        page = _read(html_path) if html_path.is_file() else builtin.html
        return _Source(subject, text, page)

    def _load_builtin(self, name: str) -> _Source:
        folder = resources.files("faxgate.notify") / "templates"
        text_file = folder / f"{name}.txt"
        subject, text = parse_text_template(text_file.read_text(encoding="utf-8"), str(text_file))
        page = (folder / f"{name}.html").read_text(encoding="utf-8")
        return _Source(subject, text, page)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{path}: cannot read the template: {exc}") from exc
