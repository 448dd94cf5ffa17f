"""OutboxNotifier against a real file, written by concurrent processes."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from domain.models import Notice
from integrations.outbox import OutboxNotifier, read_outbox


def test_notify_appends_one_json_line(tmp_path: Path):
    path = tmp_path / "var" / "deep" / "outbox.jsonl"
    notifier = OutboxNotifier(path)
    notifier.notify(Notice(to="erin", subject="Approve CHG-101?", body="Code 123456",
                           change_id="CHG-101", kind="approval_request"))
    notifier.notify(Notice(to="oscar", subject="FYI", body="line one\nline two \u2028 é"))
    notices = read_outbox(path)
    assert [n["to"] for n in notices] == ["erin", "oscar"]
    first = notices[0]
    assert set(first) == {"at", "to", "subject", "body", "change_id", "kind", "link"}
    assert first["change_id"] == "CHG-101"
    assert first["kind"] == "approval_request"
    assert datetime.fromisoformat(first["at"]).utcoffset() is not None
    assert notices[1]["body"] == "line one\nline two \u2028 é"
    assert notices[1]["change_id"] is None
    assert len(path.read_bytes().split(b"\n")) == 3  # two lines and the final newline


def test_outbox_is_private_and_logs_without_the_body(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture):
    path = tmp_path / "outbox.jsonl"
    with caplog.at_level(logging.INFO, logger="changeflow.notify"):
        OutboxNotifier(path).notify(Notice(to="erin", subject="Approve CHG-7?",
                                           body="one-time code 918273", change_id="CHG-7"))
    assert path.stat().st_mode & 0o777 == 0o600
    assert [r.name for r in caplog.records] == ["changeflow.notify"]
    message = caplog.records[0].getMessage()
    assert "erin" in message and "Approve CHG-7?" in message and "CHG-7" in message
    assert "918273" not in message


def test_read_outbox_of_nothing_is_empty(tmp_path: Path):
    assert read_outbox(tmp_path / "never-written.jsonl") == []


def test_read_outbox_names_a_bad_line(tmp_path: Path):
    path = tmp_path / "outbox.jsonl"
    path.write_text('{"to": "a"}\nnot json\n')
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        read_outbox(path)


WRITER = """
import sys
from pathlib import Path
from domain.models import Notice
from integrations.outbox import OutboxNotifier

name, path = sys.argv[1], Path(sys.argv[2])
notifier = OutboxNotifier(path)
for i in range(200):
    notifier.notify(Notice(to=name, subject=f"{name} {i}", body=name[0] * 5000))
"""


def test_concurrent_processes_never_interleave_lines(tmp_path: Path):
    path = tmp_path / "outbox.jsonl"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, name, str(path)])
               for name in ("alpha", "bravo")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    notices = [json.loads(line) for line in lines[:-1]]
    assert len(notices) == 400
    for name in ("alpha", "bravo"):
        mine = [n for n in notices if n["to"] == name]
        assert [n["subject"] for n in mine] == [f"{name} {i}" for i in range(200)]
        assert all(n["body"] == name[0] * 5000 for n in mine)
