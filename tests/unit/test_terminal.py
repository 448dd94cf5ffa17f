"""What `changeflow changes` prints of ticket text: never a terminal's control sequence."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from changeflow.report import print_changes, printable
from domain.lifecycle import ChangeRecord

AT = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "shown"), [
    ("\x1b[2J\x1b[31mall approved", "\\x1b[2J\\x1b[31mall approved"),
    ("nul\x00here", "nul\\x00here"),
    ("invoice\u202egpj.exe", "invoice\\u202egpj.exe"),
    ("isolate\u2066x\u2069", "isolate\\u2066x\\u2069"),
    ("bell\x07 and del\x7f", "bell\\x07 and del\\x7f"),
    ("Grüße, 変更 ✓", "Grüße, 変更 ✓"),
])
def test_control_and_bidirectional_characters_are_shown_escaped(text: str,
                                                                shown: str) -> None:
    assert printable(text) == shown


def test_a_hostile_summary_prints_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    record = ChangeRecord(change_id="CHG-1", state="submitted", summary="\x1b]0;pwned\x07ok",
                          opened_at=AT, updated_at=AT, last_seq=1)
    print_changes([record])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\\x1b]0;pwned\\x07ok" in out
