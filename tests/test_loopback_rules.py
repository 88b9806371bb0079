"""Parsing and matching of loopback far-end rules."""

from __future__ import annotations

from typing import Any

import pytest

from faxgate.errors import ConfigError
from faxgate.trunks.loopback import LoopbackRule, parse_rules
from faxgate.trunks.loopback_rules import match_rule


def test_from_dict_reads_every_field() -> None:
    rule = LoopbackRule.from_dict({"pattern": "+1555003*", "behaviour": "hangup",
                                   "pages_before_hangup": 2, "snr_db": 25.5, "ecm": False,
                                   "station_id": "+1 555 0030"})

    assert rule == LoopbackRule(pattern="+1555003*", behaviour="hangup",
                                pages_before_hangup=2, snr_db=25.5, ecm=False,
                                station_id="+1 555 0030")


def test_from_dict_defaults_to_answer() -> None:
    rule = LoopbackRule.from_dict({"pattern": "*"})

    assert rule.behaviour == "answer"
    assert rule.ecm is True
    assert rule.snr_db is None
    assert rule.station_id is None


@pytest.mark.parametrize(("data", "field"), [
    ({"pattern": "*", "behavior": "busy"}, "behavior"),
    ({"behaviour": "busy"}, "pattern"),
    ({"pattern": ""}, "pattern"),
    ({"pattern": 15550001}, "pattern"),
    ({"pattern": "*", "behaviour": "engaged"}, "behaviour"),
    ({"pattern": "*", "behaviour": "hangup"}, "pages_before_hangup"),
    ({"pattern": "*", "behaviour": "hangup", "pages_before_hangup": -1}, "pages_before_hangup"),
    ({"pattern": "*", "behaviour": "hangup", "pages_before_hangup": True},
     "pages_before_hangup"),
    ({"pattern": "*", "pages_before_hangup": 2}, "pages_before_hangup"),
    ({"pattern": "*", "snr_db": "loud"}, "snr_db"),
    ({"pattern": "*", "snr_db": 9.5}, "snr_db"),
    ({"pattern": "*", "snr_db": 120}, "snr_db"),
    ({"pattern": "*", "behaviour": "busy", "snr_db": 20}, "snr_db"),
    ({"pattern": "*", "ecm": "yes"}, "ecm"),
    ({"pattern": "*", "station_id": "+1 555 0100 0000 0000 00"}, "station_id"),
    ({"pattern": "*", "station_id": "Zürich"}, "station_id"),
])
def test_invalid_field_named(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        LoopbackRule.from_dict(data)

    assert f"'{field}'" in caught.value.message
    assert caught.value.details["field"] == field


def test_parse_rules_names_position() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_rules([{"pattern": "+1*"}, {"pattern": "+2*", "behaviour": "fax"}])

    assert caught.value.message.startswith("loopback rules[1]: ")
    assert caught.value.details == {"index": 1, "field": "behaviour"}


def test_parse_rules_rejects_non_table() -> None:
    with pytest.raises(ConfigError, match="must be a table"):
        parse_rules(["+1555*"])  # type: ignore[list-item]


@pytest.mark.parametrize(("pattern", "number", "expected"), [
    ("+1555000*", "+15550001234", True),
    ("+1555000*", "+15550011234", False),
    ("+1555000*", "+1555000", True),
    ("+4930??", "+493012", True),
    ("+4930??", "+4930123", False),
    ("+33[12]*", "+33212345", True),
    ("+33[12]*", "+33312345", False),
    ("*", "+81312345678", True),
])
def test_pattern_is_fnmatch(pattern: str, number: str, expected: bool) -> None:
    assert LoopbackRule(pattern=pattern).matches(number) is expected


def test_match_rule_first_wins() -> None:
    rules = [LoopbackRule(pattern="+1555*", behaviour="busy"),
             LoopbackRule(pattern="+15550*", behaviour="voice")]

    assert match_rule(rules, "+15550001234").behaviour == "busy"
    assert match_rule(rules, "+4930123").behaviour == "answer"
