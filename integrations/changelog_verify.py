"""Verifying the chain on every core: ranges of events handed to worker processes.

A large log is spread over processes: ranges of sequence numbers are handed out, smaller
toward the end so that all finish together, to worker processes
(`python -m integrations.chain_worker`, each fed by a thread here) and to the calling
process; the joins between ranges are checked by the caller (`joined`). A worker that
fails, crashes or goes silent makes verification fail closed (`not_verified`).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
from collections import deque
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from integrations.chain_worker import check_ranges
from integrations.ports import Verification


@dataclass(frozen=True)
class ParallelVerify:
    """How `verify` spreads the chain over processes.

    Attributes:
        min_events: a log with fewer events (since its checkpoint) is checked in this
            process alone.
        processes: processes in all, this one included; None: one per available core, at
            most 8.
        range_events: the most events in one range handed to a process. Ranges shrink
            toward the end of the chain, so that the processes finish together.
        min_range_events: the fewest events in one range.
        worker_timeout_s: the longest wait for a worker's answer on one range; past it the
            worker is killed and verification fails closed.
    """

    min_events: int = 100_000
    processes: int | None = None
    range_events: int = 100_000
    min_range_events: int = 5_000
    worker_timeout_s: float = 120.0



def check_here(dbapi: Any, dialect: str, mac_keys: dict[str, bytes], ranges: Ranges,
                results: list[dict[str, Any]]) -> None:
    """Check ranges in this process until none is left or one does not hold."""
    with closing(check_ranges(dbapi, dialect, mac_keys, iter(ranges.take, None))) as checked:
        for result in checked:
            results.append(result)
            if result["problem"] is not None:
                ranges.stop()
                break


def joined(results: list[dict[str, Any]], start_seq: int,
            start_hash: str) -> tuple[int, str]:
    """The last event and hash reached through ranges that hold and join, from the start."""
    last, prev, prev_at = start_seq, start_hash, ""
    for r in sorted(results, key=lambda r: int(r["lo"])):
        if (r["lo"] != last + 1 or r["problem"] is not None or r["first_prev"] != prev
                or str(r["first_at"]) < prev_at):
            break
        last, prev, prev_at = int(r["hi"]), str(r["last_hash"]), str(r["last_at"])
    return last, prev


def not_verified(results: list[dict[str, Any]], start_seq: int, start_hash: str,
                  head_seq: int, error: str) -> Verification:
    """Fail closed: what did verify, and why the rest could not be checked."""
    last, prev = joined(results, start_seq, start_hash)
    return Verification(False, last - start_seq, last, prev, None,
                        f"the chain could not be verified: {error}; events {last + 1} to "
                        f"{head_seq} were not all checked")


WORKER_COMMAND = [sys.executable, "-P", "-m", "integrations.chain_worker"]
"""How a worker process starts. `-P` keeps the working directory off `sys.path`, so the
worker imports this package (through PYTHONPATH) wherever `verify` runs."""


class Ranges:
    """Ranges of sequence numbers handed out in order, smaller toward the end."""

    def __init__(self, lo: int, hi: int, processes: int, smallest: int, largest: int) -> None:
        self.next, self.hi = lo, hi
        self.processes, self.smallest, self.largest = processes, smallest, largest
        self.lock = threading.Lock()

    def take(self) -> tuple[int, int] | None:
        """The next range, or None when there is none left or checking stopped."""
        with self.lock:
            if self.next > self.hi:
                return None
            remaining = self.hi - self.next + 1
            size = max(self.smallest, min(self.largest, remaining // (4 * self.processes)))
            lo = self.next
            self.next = min(self.hi, lo + size - 1) + 1
            return lo, self.next - 1

    def stop(self) -> None:
        """Hand out nothing more."""
        with self.lock:
            self.next = self.hi + 1


class Workers:
    """Worker processes (`python -m integrations.chain_worker`), each fed by a thread.

    Each worker has up to two ranges in flight, so it never waits for the next one. The
    connection details go to the worker on stdin, never in argv.
    """

    IN_FLIGHT = 2

    def __init__(self, spec: dict[str, Any], count: int, ranges: Ranges,
                 timeout_s: float) -> None:
        self.ranges, self.timeout_s = ranges, timeout_s
        self.secret = str(spec.get("connect", {}).get("password") or "")
        self.results: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        header = (json.dumps(spec) + "\n").encode()
        for _ in range(count):
            try:
                proc = subprocess.Popen(WORKER_COMMAND, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        env=env)
            except OSError as exc:
                self._fail(f"a worker process could not start: {exc}")
                break
            self.procs.append(proc)
            # The first ranges are handed out here, before this process takes any.
            in_flight: deque[tuple[int, int]] = deque()
            try:
                assert proc.stdin is not None
                proc.stdin.write(header)
                self._top_up(proc, in_flight)
            except OSError as exc:
                self._fail(f"a worker process failed: {exc}" + _ending(proc, kill=True))
                break
            thread = threading.Thread(target=self._serve, args=(proc, in_flight), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _top_up(self, proc: subprocess.Popen[bytes], in_flight: deque[tuple[int, int]]) -> None:
        """Keep the worker's ranges in flight; end its input as soon as none is left."""
        assert proc.stdin is not None
        if proc.stdin.closed:
            return
        while len(in_flight) < self.IN_FLIGHT:
            span = self.ranges.take()
            if span is None:
                proc.stdin.close()
                return
            in_flight.append(span)
            proc.stdin.write(f"{span[0]} {span[1]}\n".encode())
        proc.stdin.flush()

    def _fail(self, message: str) -> None:
        with self.lock:
            self.errors.append(message.replace(self.secret, "***") if self.secret else message)
        self.ranges.stop()

    def _serve(self, proc: subprocess.Popen[bytes], in_flight: deque[tuple[int, int]]) -> None:
        """Collect one worker's answers and feed it ranges, until none is left."""
        assert proc.stdin is not None and proc.stdout is not None
        reader = _LineReader(proc.stdout, self.timeout_s)
        try:
            while in_flight:
                lo, hi = in_flight.popleft()
                answer = reader.answer(lo, hi)
                if "error" in answer:
                    raise _WorkerFailed(f"the worker checking events {lo} to {hi} failed: "
                                        f"{answer['error']}")
                with self.lock:
                    self.results.append(answer)
                if answer["problem"] is not None:
                    self.ranges.stop()
                self._top_up(proc, in_flight)
        except _WorkerSilent as exc:
            self._fail(str(exc) + _ending(proc, kill=True))
        except _WorkerFailed as exc:
            self._fail(str(exc) + _ending(proc, kill=False))
        except (OSError, ValueError) as exc:  # a broken pipe, an answer that is not JSON
            self._fail(f"a worker process failed: {exc}" + _ending(proc, kill=True))
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass

    def kill(self) -> None:
        """Stop every worker now; its ranges go unchecked."""
        self.ranges.stop()
        for proc in self.procs:
            proc.kill()

    def finish(self, results: list[dict[str, Any]]) -> str | None:
        """Wait for every worker; add their answers to `results`; the first failure."""
        for thread in self.threads:
            thread.join()
        for proc in self.procs:
            _ending(proc, kill=False)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        results.extend(self.results)
        return self.errors[0] if self.errors else None


class _WorkerFailed(Exception):
    """A worker answered with an error, or exited without answering."""


class _WorkerSilent(_WorkerFailed):
    """A worker did not answer in time."""


class _LineReader:
    """A worker's answers, one JSON line per range, each within a timeout."""

    def __init__(self, stream: IO[bytes], timeout_s: float) -> None:
        self.fd, self.timeout_s, self.buffer = stream.fileno(), timeout_s, b""

    def answer(self, lo: int, hi: int) -> dict[str, Any]:
        """The answer for range lo..hi."""
        while b"\n" not in self.buffer:
            ready, _, _ = select.select([self.fd], [], [], self.timeout_s)
            if not ready:
                raise _WorkerSilent(f"the worker checking events {lo} to {hi} did not answer "
                                    f"within {self.timeout_s:g} s")
            chunk = os.read(self.fd, 65536)
            if not chunk:
                raise _WorkerFailed(f"the worker checking events {lo} to {hi} exited "
                                    "without answering")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        answer = json.loads(line)
        if not isinstance(answer, dict) or not ("error" in answer or _ANSWER <= answer.keys()):
            raise ValueError(f"unexpected answer {line[:100]!r}")
        if "error" not in answer and (answer["lo"], answer["hi"]) != (lo, hi):
            raise ValueError(f"answer for events {answer['lo']} to {answer['hi']}, "
                             f"expected {lo} to {hi}")
        return answer


_ANSWER = {"lo", "hi", "checked", "first_prev", "last_hash", "first_at", "last_at", "problem"}


def _ending(proc: subprocess.Popen[bytes], kill: bool) -> str:
    """Reap a worker (killing it first, or after 10 s): how it ended, its last stderr line."""
    if kill:
        proc.kill()
    try:
        code = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    err = ""
    if proc.stderr is not None and not proc.stderr.closed:
        err = proc.stderr.read().decode(errors="replace").strip()
    how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
    last = err.splitlines()[-1][:300] if err else ""
    return f" ({how}{': ' + last if last else ''})"


def diagnose(seq: int, expected: int, head_seq: int, prev_hash: str,
              prev: str) -> tuple[int, str]:
    """Which event breaks the chain, and how, for a row that failed the fast check."""
    if seq > head_seq:
        return seq, (f"the chain head ends at event {head_seq}: this event was added "
                     "behind the log's back")
    if seq != expected:
        return expected, (f"missing (the next event found is {seq}): it was deleted or "
                          "renumbered")
    if prev_hash != prev:
        return seq, ("its previous-hash does not match the event before it: an event was "
                     "inserted, removed or reordered here")
    return seq, "its content does not match its hash: the event was edited"
