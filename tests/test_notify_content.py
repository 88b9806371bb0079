"""Notification templates and the values they are filled with."""

from __future__ import annotations

from pathlib import Path

import pytest

from faxgate.config import load_config
from faxgate.errors import ConfigError
from faxgate.notify.facts import failure_reason, format_duration, outbound_values
from faxgate.notify.templates import INBOUND, OUTBOUND_SUCCESS, TEMPLATE_NAMES, Templates
from tests.conftest import REPO
from tests.notify_support import outgoing_fax

BUILTIN = REPO / "faxgate" / "notify" / "templates"


def sample_values(**overrides: str) -> dict[str, str]:
    values = outbound_values("acct", outgoing_fax(), None, 0.0)
    values.update(attachment_note="Attached: fax.pdf", first_page_image="")
    values.update(overrides)
    return values


def test_missing_placeholder_stays_visible(tmp_path: Path) -> None:
    (tmp_path / "outbound_success.txt").write_text(
        "Subject: Sent to $to_number $no_such_value\n\nPages $pages, cost $cost_of_call.\n"
    )
    templates = Templates(tmp_path)
    templates.check()

    rendered = templates.render(OUTBOUND_SUCCESS, sample_values())

    assert rendered.subject == "Sent to +12125550123 $no_such_value"
    assert rendered.text == "Pages 2 of 2, cost $cost_of_call.\n"


def test_custom_file_overrides_one_template(tmp_path: Path) -> None:
    (tmp_path / "inbound.txt").write_text("Subject: New fax\n\nA fax from $from_number.\n")
    templates = Templates(tmp_path)

    inbound = templates.render(INBOUND, sample_values())
    outbound = templates.render(OUTBOUND_SUCCESS, sample_values())

    assert inbound.subject == "New fax"
    assert inbound.text == "A fax from +12125550100.\n"
    assert "<table" in inbound.html, "the built-in HTML stays when only the text is custom"
    assert outbound.subject == "Fax to +12125550123 sent"


def test_invalid_template_fails_check(tmp_path: Path) -> None:
    (tmp_path / "smtp_failure.txt").write_text("Your fax failed: $reason\n")

    with pytest.raises(ConfigError, match=r"smtp_failure\.txt: the first line must be 'Subject:"):
        Templates(tmp_path).check()


def test_missing_folder_fails_check(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        Templates(tmp_path / "absent").check()


def test_broken_edit_falls_back(tmp_path: Path) -> None:
    path = tmp_path / "outbound_success.txt"
    path.write_text("Subject: Custom\n\nBody\n")
    templates = Templates(tmp_path)
    templates.check()
    path.write_text("no subject line any more\n")

    rendered = templates.render(OUTBOUND_SUCCESS, sample_values())

    assert rendered.subject == "Fax to +12125550123 sent"


def test_html_values_are_escaped() -> None:
    values = sample_values(to_number="<b>+1</b>", first_page_image='<img src="cid:x">')

    rendered = Templates(None).render(OUTBOUND_SUCCESS, values)

    assert "&lt;b&gt;+1&lt;/b&gt;" in rendered.html
    assert "<b>+1</b>" not in rendered.html
    assert '<img src="cid:x">' in rendered.html
    assert "<b>+1</b>" in rendered.text


def test_subject_drops_line_breaks() -> None:
    rendered = Templates(None).render(OUTBOUND_SUCCESS, sample_values(to_number="+1\r\nBcc: x"))

    assert rendered.subject == "Fax to +1 Bcc: x sent"


def test_shipped_templates_match_builtin() -> None:
    for name in TEMPLATE_NAMES:
        for suffix in (".txt", ".html"):
            shipped = REPO / "config" / "templates" / f"{name}{suffix}"
            builtin = BUILTIN / f"{name}{suffix}"
            assert shipped.read_text() == builtin.read_text(), f"{shipped} differs from {builtin}"


def test_templates_dir_relative_to_config(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "faxgate.toml"
    path.parent.mkdir()
    path.write_text('[notify]\ntemplates_dir = "templates"\n')

    config = load_config(path, environ={})

    assert config.notify.templates_dir == str(tmp_path / "etc" / "templates")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (45, "45 s"), (125, "2 min 5 s"), (3725, "1 h 2 min"), (None, "unknown")],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_failure_reason_plain_words() -> None:
    assert failure_reason({"hangup_cause": "NO_ANSWER"})[0] == "Nobody answered the call."
    reason, details = failure_reason({"error_message": "far end cannot receive at 9600 bit/s"})
    assert reason == "Far end cannot receive at 9600 bit/s."
    assert details == "far end cannot receive at 9600 bit/s"
    assert failure_reason({})[0] == "The fax could not be sent, and no reason was reported."


def test_time_uses_faxbox_zone() -> None:
    fax = outgoing_fax()
    box = {"id": "b", "fax_timezone": "America/New_York"}

    assert outbound_values("a", fax, box, 0.0)["time"] == "2024-07-01 08:00:00 EDT"
    assert outbound_values("a", fax, None, 0.0)["time"] == "2024-07-01 12:00:00 UTC"
    fax["fax_timezone"] = "Asia/Tokyo"
    assert outbound_values("a", fax, box, 0.0)["time"] == "2024-07-01 21:00:00 JST"
