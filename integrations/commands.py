"""Catalog commands as real subprocesses: the `CommandRunner` adapter.

A command runs without a shell in its own process group, so that on a timeout the
whole group (the command and anything it started) can be killed at once. When the
command itself exits, whatever it left running in its group is killed too: a deploy
step leaves nothing behind that could hold its output open or act later.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from domain.models import CommandResult

DEFAULT_OUTPUT_LIMIT = 64 * 1024
"""Bytes of stdout (and of stderr) kept per command; the tail, where errors are."""

_PIPE_GRACE_SECONDS = 5.0
"""How long to wait for output after the group is gone (an escaped process may hold it)."""


class _TailReader(threading.Thread):
    """Drains one pipe, keeping only its last `limit` bytes so memory stays bounded."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        super().__init__(daemon=True)
        self._stream = stream
        self._limit = limit
        self._buffer = bytearray()
        self.dropped = 0

    def run(self) -> None:
        fd = self._stream.fileno()
        while chunk := os.read(fd, 65536):
            self._buffer += chunk
            excess = len(self._buffer) - self._limit
            if excess > 0:
                del self._buffer[:excess]
                self.dropped += excess

    def text(self) -> str:
        """What was kept, decoded, with a note when the head was dropped."""
        body = bytes(self._buffer).decode("utf-8", errors="replace")
        if self.dropped:
            return f"[changeflow: first {self.dropped} bytes of output dropped]\n{body}"
        return body


class SubprocessRunner:
    """`CommandRunner` that runs argv lists as subprocesses, bounded in time and output.

    Args:
        output_limit: bytes of stdout and of stderr kept per command (the tail).
    """

    def __init__(self, output_limit: int = DEFAULT_OUTPUT_LIMIT) -> None:
        if output_limit <= 0:
            raise ValueError("output_limit must be positive")
        self.output_limit = output_limit

    def run(self, argv: Sequence[str], timeout_seconds: float, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> CommandResult:
        """Run `argv` (no shell) and return what it left behind; never raises on failure.

        Args:
            argv: the program and its arguments.
            timeout_seconds: after this, the whole process group is killed (SIGKILL) and
                the result has `timed_out=True` and no exit code.
            cwd: working directory; default this process's.
            env: variables added to (and overriding) this process's environment.

        Returns:
            The result. A program that cannot be started gives exit code 127 (not found)
            or 126 (not executable, or another OS error), with the reason in stderr.
        """
        args = list(argv)
        started = time.monotonic()
        if not args:
            return CommandResult(argv=args, exit_code=127, stdout="",
                                 stderr="no command given", duration_seconds=0.0)
        try:
            proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, cwd=cwd, start_new_session=True,
                env={**os.environ, **env} if env is not None else None)
        except OSError as exc:
            return _not_started(args, exc, time.monotonic() - started)
        assert proc.stdout is not None and proc.stderr is not None
        readers = [_TailReader(proc.stdout, self.output_limit),
                   _TailReader(proc.stderr, self.output_limit)]
        for reader in readers:
            reader.start()
        exited = _wait_unreaped(proc.pid, started + timeout_seconds)
        _kill_group(proc.pid)
        exit_code = proc.wait()
        for reader, pipe in zip(readers, (proc.stdout, proc.stderr), strict=True):
            reader.join(_PIPE_GRACE_SECONDS)
            if not reader.is_alive():  # else a process that left the group still writes
                pipe.close()
        return CommandResult(
            argv=args,
            exit_code=exit_code if exited else None,
            stdout=readers[0].text(),
            stderr=readers[1].text(),
            duration_seconds=time.monotonic() - started,
            timed_out=not exited,
        )


def _wait_unreaped(pid: int, deadline: float) -> bool:
    """Wait until `pid` exits or the deadline passes; True if it exited.

    The child is left unreaped (a zombie) so its pid, which is also its process group's
    id, cannot be reused before `_kill_group` has cleaned the group up.
    """
    pause = 0.001
    while True:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, 0.05)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _not_started(argv: list[str], exc: OSError, duration: float) -> CommandResult:
    missing = isinstance(exc, FileNotFoundError) and exc.filename in (argv[0], None)
    where = f": {exc.filename}" if exc.filename else ""
    return CommandResult(
        argv=argv,
        exit_code=127 if missing else 126,
        stdout="",
        stderr=f"cannot start {argv[0]!r}: {exc.strerror or exc}{where}",
        duration_seconds=duration,
    )
