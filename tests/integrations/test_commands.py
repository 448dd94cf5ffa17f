"""SubprocessRunner against real subprocesses."""

from __future__ import annotations

import sys
from pathlib import Path

from integrations.commands import SubprocessRunner
from tests.integrations.conftest import process_gone
from tests.support.waiting import wait_for

PY = sys.executable


def test_success_captures_output():
    result = SubprocessRunner().run([PY, "-c", "print('hello'); import sys; "
                                     "print('warn', file=sys.stderr)"], timeout_seconds=30)
    assert result.ok
    assert result.exit_code == 0
    assert result.stdout == "hello\n"
    assert result.stderr == "warn\n"
    assert not result.timed_out
    assert result.argv[0] == PY


def test_non_zero_exit_is_a_result_not_a_raise():
    result = SubprocessRunner().run([PY, "-c", "import sys; sys.exit(3)"], timeout_seconds=30)
    assert result.exit_code == 3
    assert not result.ok
    assert not result.timed_out


def test_timeout_kills_the_whole_process_group(tmp_path: Path):
    pid_file = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {pid_file}; sleep 60"
    result = SubprocessRunner().run(["sh", "-c", script], timeout_seconds=1)
    assert result.timed_out
    assert result.exit_code is None
    assert not result.ok
    assert result.duration_seconds < 10
    child = int(pid_file.read_text())
    wait_for(lambda: process_gone(child), f"background child {child} to die", 10, 0.1)


def test_leftover_background_process_is_killed_when_the_command_exits(tmp_path: Path):
    pid_file = tmp_path / "child.pid"
    result = SubprocessRunner().run(["sh", "-c", f"sleep 60 & echo $! > {pid_file}; echo done"],
                                    timeout_seconds=30)
    assert result.ok
    assert result.stdout == "done\n"
    assert result.duration_seconds < 10  # the child held stdout open, yet we did not wait
    child = int(pid_file.read_text())
    wait_for(lambda: process_gone(child), f"background child {child} to die", 10, 0.1)


def test_missing_executable_gives_127():
    result = SubprocessRunner().run(["/nonexistent/deploy-tool", "--now"], timeout_seconds=5)
    assert result.exit_code == 127
    assert not result.ok
    assert "/nonexistent/deploy-tool" in result.stderr


def test_not_executable_gives_126(tmp_path: Path):
    script = tmp_path / "deploy.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    result = SubprocessRunner().run([str(script)], timeout_seconds=5)
    assert result.exit_code == 126
    assert "deploy.sh" in result.stderr


def test_large_output_keeps_the_tail():
    limit = 4096
    code = "import sys; sys.stdout.write('a' * 200_000 + 'THE END')"
    result = SubprocessRunner(output_limit=limit).run([PY, "-c", code], timeout_seconds=30)
    assert result.ok
    assert result.stdout.endswith("THE END")
    note, kept = result.stdout.split("\n", 1)
    assert note == f"[changeflow: first {200_007 - limit} bytes of output dropped]"
    assert len(kept) == limit


def test_invalid_utf8_is_replaced_not_raised():
    code = "import sys; sys.stdout.buffer.write(b'ok \\xff\\xfe end')"
    result = SubprocessRunner().run([PY, "-c", code], timeout_seconds=30)
    assert result.stdout == "ok \ufffd\ufffd end"


def test_cwd_and_env_are_honoured(tmp_path: Path):
    code = ("import os; print(os.getcwd()); print(os.environ['CHANGE_ID']); "
            "print('PATH' in os.environ)")
    result = SubprocessRunner().run([PY, "-c", code], timeout_seconds=30, cwd=tmp_path,
                                    env={"CHANGE_ID": "CHG-1"})
    assert result.stdout.splitlines() == [str(tmp_path), "CHG-1", "True"]


def test_no_shell_interpretation(tmp_path: Path):
    marker = tmp_path / "pwned"
    result = SubprocessRunner().run(["echo", f"; touch {marker}"], timeout_seconds=5)
    assert result.stdout == f"; touch {marker}\n"
    assert not marker.exists()
