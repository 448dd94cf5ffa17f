"""Hostile tickets run through `change-request` are refused, and nothing runs.

Each crafted ticket ends the run with `ChangeRefused` listing every problem; the ticket
gets that list as one comment and moves to "needs information"; the change log holds
only the refusal and the notice to its author (unless a shared account); no command was
started (no `effect_started`), the sample service's own deploy record is unchanged and
no file the ticket asked for was created. A ticket
that is not YAML fails the run with the adapter's error naming the file, having run
nothing either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from changeflow.stack import Stack
from domain.intake import shown
from flows.change_request import change_request
from integrations.outbox import read_outbox
from tasks.intake import NEEDS_INFORMATION, ChangeRefused

NOT_PLAIN = "is not a plain version string (letters, digits and . _ + -)"


def history(stack: Stack) -> bytes:
    """The sample service's own record of every deploy (the baseline's, at the start)."""
    return (stack.root / "var" / "sample" / "history.jsonl").read_bytes()


def write_ticket(stack: Stack, key: str, changes: dict[str, Any]) -> None:
    """CHG-101 with `changes`, as ticket `key`."""
    tickets = stack.settings.resolved_tickets_dir
    fields = yaml.safe_load((tickets / "CHG-101.yaml").read_text())
    fields.update(changes)
    (tickets / f"{key}.yaml").write_text(yaml.safe_dump(fields, sort_keys=False))


def commands_started(stack: Stack, *keys: str) -> list[str]:
    log = stack.adapters.change_log
    ids = {*keys, *(r.change_id for r in log.changes())}
    return [f"{i}: {e.payload['action']}" for i in sorted(ids) for e in log.events(i)
            if e.type == "effect_started"]


def hostile_cases(marker: Path) -> dict[str, tuple[dict[str, Any], list[str]]]:
    """(changes to CHG-101, the problems listed back), by kind of attack."""
    touch = f"touch {marker}"
    return {
        "id-of-another-change": (
            {"id": "CHG-102", "version": "6.6.6"},
            ["id: not a ticket field: the change's id is its ticket's key (CHG-301); "
             "remove it"]),
        "shell-injection": (
            {"version": f"1.1.0; {touch}", "service": "../../bin/sh", "summary": f"$({touch})",
             "description": f"`{touch}`"},
            ["service: '../../bin/sh' is not in the service catalog (known: sample)",
             f"version: {shown(f'1.1.0; {touch}')} {NOT_PLAIN}"]),
        "placeholders-and-types": (
            {"category": ["normal", "emergency"], "version": "{python}",
             "rollback_plan": "{var_dir}/../../etc/passwd"},
            [f"version: '{{python}}' {NOT_PLAIN}",
             "rollback_plan: Input should be a valid dictionary or instance of RollbackPlan",
             "category: Input should be 'standard', 'normal', 'major' or 'emergency'"]),
        "shared-author": (
            {"author": "deploybot"},
            ["author: 'deploybot' is a shared account; a change is authored, and deployed, "
             "by one person (policy section 6)"]),
    }


@pytest.mark.parametrize("case", list(hostile_cases(Path("executed"))))
def test_a_hostile_ticket_is_refused_with_every_problem_and_nothing_runs(
        stack: Stack, tmp_path: Path, case: str) -> None:
    marker = tmp_path / "executed"
    changes, problems = hostile_cases(marker)[case]
    key = "CHG-301"
    write_ticket(stack, key, changes)
    deployed = history(stack)
    with pytest.raises(ChangeRefused) as refused:
        change_request(key)
    assert refused.value.problems == problems
    tickets = stack.adapters.tickets
    assert tickets.comments(key) == ["changeflow cannot accept this change yet. Fix these and "
                                     "start it again:\n- " + "\n- ".join(problems)]
    assert tickets.get(key).status == NEEDS_INFORMATION
    told = [(n["to"], n["kind"]) for n in read_outbox(stack.outbox)]
    author = changes.get("author", "alice")  # a shared account is no one to tell
    assert told == ([] if author == "deploybot" else [(author, "refused")])
    assert [e.type for e in stack.adapters.change_log.events(key)] == [
        "validation_failed", *["notice_delivered"] * len(told)]
    assert stack.adapters.change_log.events("CHG-102") == []
    assert commands_started(stack, key, "CHG-102") == []
    assert history(stack) == deployed
    assert not marker.exists()


def test_a_ticket_that_is_not_yaml_fails_the_run_naming_the_file_and_runs_nothing(
        stack: Stack, tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    path = stack.settings.resolved_tickets_dir / "CHG-302.yaml"
    path.write_text(f"summary: !!python/object/apply:os.system ['touch {marker}']\n")
    deployed = history(stack)
    with pytest.raises(ValueError, match=(
            r"^CHG-302\.yaml: not valid YAML: line 1, column 10: could not determine a "
            r"constructor for the tag 'tag:yaml\.org,2002:python/object/apply:os\.system'$")):
        change_request("CHG-302")
    assert stack.adapters.change_log.events("CHG-302") == []
    assert commands_started(stack, "CHG-302") == []
    assert history(stack) == deployed
    assert not marker.exists()
