"""Settings that a running service applies on reload (SIGHUP).

A live setting is copied into the running Config's section objects in
place. That works because the code that uses these settings reads them
from the config object each time it needs them. Everything else (hosts,
ports, the data directory, TLS files, pool sizes) is bound when the
service starts, so a change there is reported as needing a restart.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from faxgate.config import Config

# Section name -> the live keys of that section; ALL_KEYS makes every key live.
ALL_KEYS = ("*",)
LIVE_SETTINGS: dict[str, tuple[str, ...]] = {
    "log": ALL_KEYS,
    "auth": ALL_KEYS,
    "worker": ALL_KEYS,
    "fetch": ALL_KEYS,
    "loopback": ALL_KEYS,
    "smtp": (
        "max_message_size",
        "max_recipients",
        "command_timeout",
        "min_image_bytes",
        "duplicate_window",
        "subject_as_cover",
    ),
    "http": ("shutdown_timeout",),
}


@dataclass
class ReloadResult:
    """Dotted keys whose new values were applied, and those that need a restart."""

    applied: list[str] = field(default_factory=list)
    restart_required: list[str] = field(default_factory=list)


def is_live(section: str, key: str) -> bool:
    keys = LIVE_SETTINGS.get(section, ())
    return "*" in keys or key in keys


def changed_settings(current: Config, new: Config) -> list[tuple[str, str]]:
    """Return (section, key) for every setting whose value differs between the two configs."""
    changed = []
    for section_field in dataclasses.fields(Config):
        old_section = getattr(current, section_field.name)
        new_section = getattr(new, section_field.name)
        for key_field in dataclasses.fields(old_section):
            if getattr(old_section, key_field.name) != getattr(new_section, key_field.name):
                changed.append((section_field.name, key_field.name))
    return changed


def apply_live_settings(current: Config, new: Config) -> ReloadResult:
    """Copy the changed live settings of `new` into `current`, in place.

    The section objects of `current` stay the same objects, so components
    that keep a reference to a section (such as `config.worker`) see the
    new values. Changed settings that are not live stay as they were.
    """
    result = ReloadResult()
    for section, key in changed_settings(current, new):
        dotted = f"{section}.{key}"
        if not is_live(section, key):
            result.restart_required.append(dotted)
            continue
        value: Any = copy.deepcopy(getattr(getattr(new, section), key))
        setattr(getattr(current, section), key, value)
        result.applied.append(dotted)
    return result
