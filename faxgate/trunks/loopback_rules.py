"""Rules that decide how the loopback trunk's simulated far end behaves.

Each rule matches dialled numbers with a shell-style wildcard pattern
(`fnmatch.fnmatchcase` over the whole number, so "+1555000*" matches
"+15550001234" and "*" matches everything). The first matching rule wins;
a number that no rule matches is answered by a clean fax machine with ECM.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Final

from faxgate.errors import ConfigError
from faxgate.trunks.base import validate_station_id

BEHAVIOUR_ANSWER: Final = "answer"
"""A fax machine answers and receives the whole document."""
BEHAVIOUR_BUSY: Final = "busy"
"""The line is busy."""
BEHAVIOUR_NO_ANSWER: Final = "no_answer"
"""The phone rings until the caller gives up."""
BEHAVIOUR_VOICE: Final = "voice"
"""A person answers: speech, no fax tones."""
BEHAVIOUR_HANGUP: Final = "hangup"
"""A fax machine answers and hangs up after confirming `pages_before_hangup` pages."""

BEHAVIOURS: Final = (BEHAVIOUR_ANSWER, BEHAVIOUR_BUSY, BEHAVIOUR_NO_ANSWER,
                     BEHAVIOUR_VOICE, BEHAVIOUR_HANGUP)
_FAX_BEHAVIOURS: Final = frozenset({BEHAVIOUR_ANSWER, BEHAVIOUR_HANGUP})

MIN_SNR_DB: Final = 10.0
"""Lowest accepted `snr_db`.

Below about 8 dB the noise (then above -47 dBm0 after the line loss) reaches
spandsp 0.0.6's carrier detection threshold. Its T.30 timers then keep
restarting and a call only ends at the trunk's line-time guard, 10 minutes
per page later. From 8 to 12 dB calls fail within about 20 s of line time.
"""
MAX_SNR_DB: Final = 80.0


def _fail(field: str, message: str) -> ConfigError:
    return ConfigError(f"loopback rule field {field!r}: {message}", field=field)


@dataclass(frozen=True)
class LoopbackRule:
    """How the far end behaves for dialled numbers that match `pattern`.

    `snr_db` adds line loss and white noise at that signal-to-noise ratio
    (see `faxgate.fax.line.LineImpairment`); None is a clean line. `ecm`
    sets whether the far fax machine supports error correction mode.
    `station_id` is the CSI it answers with; None uses the dialled number.
    Raises ConfigError naming the field when a value is invalid.
    """

    pattern: str
    behaviour: str = BEHAVIOUR_ANSWER
    pages_before_hangup: int | None = None
    snr_db: float | None = None
    ecm: bool = True
    station_id: str | None = None

    def __post_init__(self) -> None:
        self._check_pattern()
        self._check_behaviour()
        self._check_snr()
        if not isinstance(self.ecm, bool):
            raise _fail("ecm", f"must be true or false, not {self.ecm!r}")
        if self.station_id is not None:
            if not isinstance(self.station_id, str):
                raise _fail("station_id", f"must be a string, not {self.station_id!r}")
            try:
                validate_station_id(self.station_id)
            except ValueError as exc:
                raise _fail("station_id", str(exc)) from None

    def _check_pattern(self) -> None:
        if not isinstance(self.pattern, str) or not self.pattern:
            raise _fail("pattern", f"must be a non-empty string, not {self.pattern!r}")

    def _check_behaviour(self) -> None:
        if self.behaviour not in BEHAVIOURS:
            raise _fail("behaviour", f"must be one of {', '.join(BEHAVIOURS)}, "
                                     f"not {self.behaviour!r}")
        pages = self.pages_before_hangup
        if self.behaviour == BEHAVIOUR_HANGUP:
            if isinstance(pages, bool) or not isinstance(pages, int) or pages < 0:
                raise _fail("pages_before_hangup", "behaviour 'hangup' needs a whole number "
                                                   f"of 0 or more, not {pages!r}")
        elif pages is not None:
            raise _fail("pages_before_hangup", "applies only to behaviour 'hangup', not "
                                               f"{self.behaviour!r}")

    def _check_snr(self) -> None:
        snr = self.snr_db
        if snr is None:
            return
        if isinstance(snr, bool) or not isinstance(snr, int | float):
            raise _fail("snr_db", f"must be a number of dB, not {snr!r}")
        if not MIN_SNR_DB <= snr <= MAX_SNR_DB:
            raise _fail("snr_db", f"must be from {MIN_SNR_DB:g} to {MAX_SNR_DB:g} dB, "
                                  f"not {snr!r}")
        if self.behaviour not in _FAX_BEHAVIOURS:
            raise _fail("snr_db", f"applies only when a fax machine answers, not to "
                                  f"behaviour {self.behaviour!r}")

    @property
    def answers_with_fax(self) -> bool:
        """True if a fax machine answers calls that match this rule."""
        return self.behaviour in _FAX_BEHAVIOURS

    def matches(self, number: str) -> bool:
        """Return True if the dialled `number` matches `pattern`."""
        return fnmatch.fnmatchcase(number, self.pattern)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoopbackRule:
        """Build a rule from a config mapping such as {"pattern": "+1555*", "behaviour": "busy"}.

        Raises ConfigError naming the unknown or invalid field.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"a loopback rule must be a table of fields, not {data!r}")
        known = {field.name for field in fields(cls)}
        for key in data:
            if key not in known:
                raise _fail(str(key), f"unknown field; known fields are {', '.join(sorted(known))}")
        if "pattern" not in data:
            raise _fail("pattern", "missing; every rule needs a number pattern")
        return cls(**data)


def parse_rules(items: Sequence[Mapping[str, Any]]) -> list[LoopbackRule]:
    """Build the rule list from config; the ConfigError names the rule's position."""
    rules = []
    for index, item in enumerate(items):
        try:
            rules.append(LoopbackRule.from_dict(item))
        except ConfigError as exc:
            raise ConfigError(f"loopback rules[{index}]: {exc.message}", index=index,
                              **exc.details) from None
    return rules


def match_rule(rules: Sequence[LoopbackRule], number: str) -> LoopbackRule:
    """Return the first rule matching `number`, or a plain answering rule."""
    for rule in rules:
        if rule.matches(number):
            return rule
    return LoopbackRule(pattern="*")
