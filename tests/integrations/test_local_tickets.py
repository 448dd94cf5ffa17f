"""LocalChangeTickets against real files: the examples and ones written here."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from config.settings import PROJECT_ROOT
from domain.models import ChangeRequest
from integrations.local_tickets import LocalChangeTickets
from integrations.ports import TicketNotFound

EXAMPLES = PROJECT_ROOT / "examples" / "tickets"

MINIMAL = """\
summary: Bump the sample service
category: normal
service: sample
version: "1.1.0"
author: alice
watchers: [oscar]
"""


def write(folder: Path, key: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_examples_load_and_validate():
    tickets = LocalChangeTickets(EXAMPLES).search()
    assert [t.key for t in tickets] == ["CHG-101", "CHG-102", "CHG-103", "CHG-104", "CHG-105",
                                        "CHG-201", "CHG-202"]
    by_key = {t.key: t for t in tickets}
    for key in ("CHG-101", "CHG-102", "CHG-103", "CHG-105"):
        change = ChangeRequest(id=key, **by_key[key].fields)
        assert change.service == "sample"
    assert by_key["CHG-101"].fields["version"] == "1.1.0"
    assert by_key["CHG-102"].fields["category"] == "major"
    assert any("/auth/" in p for p in by_key["CHG-102"].fields["changed_paths"])
    assert by_key["CHG-103"].fields["version"] == "2.1.0"
    assert "rollback_plan" not in by_key["CHG-104"].fields
    assert all(t.status == "open" for t in tickets)


def test_get_splits_status_and_watchers_from_fields(tmp_path: Path):
    path = write(tmp_path, "CHG-7", MINIMAL)
    ticket = LocalChangeTickets(tmp_path).get("CHG-7")
    assert ticket.key == "CHG-7"
    assert ticket.status == "open"
    assert ticket.watchers == ["oscar"]
    assert ticket.fields == {"summary": "Bump the sample service", "category": "normal",
                             "service": "sample", "version": "1.1.0", "author": "alice"}
    assert ticket.updated == datetime.fromtimestamp(path.stat().st_mtime, UTC)
    assert ticket.updated is not None and ticket.updated.tzinfo is not None


def test_missing_ticket_names_the_folder(tmp_path: Path):
    with pytest.raises(TicketNotFound, match=str(tmp_path)):
        LocalChangeTickets(tmp_path).get("CHG-1")
    with pytest.raises(TicketNotFound):
        LocalChangeTickets(tmp_path).add_comment("CHG-1", "hello")


@pytest.mark.parametrize("key", ["../CHG-1", "CHG-1/../../etc", "chg-1", "CHG-1.yaml", "",
                                 "CHG-", "-1", "CHG-1\n", "/etc/passwd", "CHG-1 "])
def test_a_key_that_is_not_a_key_is_refused(tmp_path: Path, key: str):
    tickets = LocalChangeTickets(tmp_path)
    with pytest.raises(ValueError, match="not a ticket key"):
        tickets.get(key)
    with pytest.raises(ValueError, match="not a ticket key"):
        tickets.transition(key, "closed")


def test_search_orders_keys_numerically_and_filters_by_status(tmp_path: Path):
    for key in ("CHG-10", "CHG-9", "ABC-2", "CHG-100"):
        write(tmp_path, key, MINIMAL)
    write(tmp_path, "CHG-11", MINIMAL + "status: closed\n")
    write(tmp_path, "template", MINIMAL)
    (tmp_path / "README.md").write_text("# not a ticket\n")
    tickets = LocalChangeTickets(tmp_path)
    assert [t.key for t in tickets.search()] == ["ABC-2", "CHG-9", "CHG-10", "CHG-11", "CHG-100"]
    assert [t.key for t in tickets.search(status="closed")] == ["CHG-11"]
    assert LocalChangeTickets(tmp_path / "absent").search() == []


@pytest.mark.parametrize(("text", "message"), [
    ("summary: ok\ncategory: normal\nservice: [sample\n",
     r"^CHG-7\.yaml: not valid YAML: line 4, column 1: "),
    ("summary: ok\nversion: 1.0\n  author: bob\n",
     r"^CHG-7\.yaml: not valid YAML: line 3, column 9: mapping values are not allowed"),
    ("- summary\n- category\n", r"^CHG-7\.yaml: expected a mapping of change fields, got list"),
    ("", r"^CHG-7\.yaml: empty"),
    ("summary: a\nsummary: b\n", r"^CHG-7\.yaml: not valid YAML: line 2, column 1: "
                                 r"duplicate key 'summary'"),
    ("summary: a\n1: b\n", r"^CHG-7\.yaml: field names must be text"),
    ("summary: a\nstatus: [open]\n", r"^CHG-7\.yaml: status must be text"),
    ("summary: a\nwatchers: oscar\n", r"^CHG-7\.yaml: watchers must be a list"),
])
def test_malformed_file_is_a_clear_value_error(tmp_path: Path, text: str, message: str):
    write(tmp_path, "CHG-7", text)
    with pytest.raises(ValueError, match=message):
        LocalChangeTickets(tmp_path).get("CHG-7")
    with pytest.raises(ValueError, match=message):
        LocalChangeTickets(tmp_path).search()


def test_non_utf8_file_is_a_clear_value_error(tmp_path: Path):
    (tmp_path / "CHG-7.yaml").write_bytes(b"summary: caf\xe9\n")
    with pytest.raises(ValueError, match=r"^CHG-7\.yaml: not UTF-8"):
        LocalChangeTickets(tmp_path).get("CHG-7")


def test_writes_go_to_the_sidecar_and_never_touch_the_ticket_file(tmp_path: Path):
    path = write(tmp_path, "CHG-7", MINIMAL)
    os.utime(path, (1_700_000_000, 1_700_000_000))
    before = path.read_bytes()
    tickets = LocalChangeTickets(tmp_path)
    tickets.add_comment("CHG-7", "Missing: rollback_plan.owner")
    tickets.transition("CHG-7", "needs_information")
    tickets.add_comment("CHG-7", "Thanks, looks complete now")
    assert path.read_bytes() == before
    assert path.stat().st_mtime == 1_700_000_000
    assert tickets.comments("CHG-7") == ["Missing: rollback_plan.owner",
                                         "Thanks, looks complete now"]
    ticket = tickets.get("CHG-7")
    assert ticket.status == "needs_information"
    assert ticket.updated == datetime.fromtimestamp(1_700_000_000, UTC)
    assert [t.key for t in tickets.search(status="needs_information")] == ["CHG-7"]
    assert tickets.search(status="open") == []
    sidecar = tmp_path / ".changeflow"
    assert sorted(p.name for p in sidecar.iterdir()) == ["CHG-7.json", "CHG-7.lock"]


def test_a_fresh_adapter_sees_earlier_writes(tmp_path: Path):
    write(tmp_path, "CHG-7", MINIMAL + "status: closed\n")
    LocalChangeTickets(tmp_path).transition("CHG-7", "approved")
    assert LocalChangeTickets(tmp_path).get("CHG-7").status == "approved"
    assert LocalChangeTickets(tmp_path).comments("CHG-7") == []


def test_a_corrupt_sidecar_is_a_clear_value_error(tmp_path: Path):
    write(tmp_path, "CHG-7", MINIMAL)
    (tmp_path / ".changeflow").mkdir()
    (tmp_path / ".changeflow" / "CHG-7.json").write_text("{not json")
    with pytest.raises(ValueError, match="sidecar is not valid JSON"):
        LocalChangeTickets(tmp_path).get("CHG-7")


COMMENTER = """
import sys
from pathlib import Path
from integrations.local_tickets import LocalChangeTickets

tickets = LocalChangeTickets(Path(sys.argv[1]))
for i in range(40):
    tickets.add_comment("CHG-7", f"{sys.argv[2]} {i}")
"""


def test_concurrent_commenters_lose_nothing(tmp_path: Path):
    write(tmp_path, "CHG-7", MINIMAL)
    writers = [subprocess.Popen([sys.executable, "-c", COMMENTER, str(tmp_path), name])
               for name in ("alpha", "bravo")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    comments = LocalChangeTickets(tmp_path).comments("CHG-7")
    assert len(comments) == 80
    for name in ("alpha", "bravo"):
        assert [c for c in comments if c.startswith(name)] == [f"{name} {i}" for i in range(40)]
