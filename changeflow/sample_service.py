"""A small local web service that the demo deploys, checks, breaks and rolls back.

It stands in for a real service so that changeflow can run end to end on one machine:

    python -m changeflow.sample_service serve --state-dir DIR --port 18765 [--broken-versions 2.1.0]
    python -m changeflow.sample_service deploy --state-dir DIR --environment staging --version 1.1.0
    python -m changeflow.sample_service probe --url http://127.0.0.1:18765/staging/health

"Deploying" writes `DIR/<environment>.json`; the server reads that file on every request,
so a deploy changes what it serves at once. A version in the broken list answers
`/health` with 500 and reports errors in `/metrics`, which is how the demo shows a failed
verification and its rollback. Only the standard library is used, so it starts fast.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

ENVIRONMENTS = ("staging", "production")
HOST = "127.0.0.1"
BROKEN_ERROR_COUNT = 37
"""What `/metrics` reports for a broken version (any number above zero would do)."""

_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_READY = re.compile(r"sample service ready at (http://\S+)")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def read_state(state_dir: Path, environment: str) -> dict[str, Any] | None:
    """What is deployed to `environment`, or None if nothing ever was."""
    try:
        state = json.loads((state_dir / f"{environment}.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return state if isinstance(state, dict) else None


def deploy(state_dir: Path, environment: str, version: str) -> dict[str, Any]:
    """Make `version` the one served in `environment`; returns the new state.

    The state file is replaced atomically, so a request never sees half of it.
    """
    if environment not in ENVIRONMENTS:
        raise ValueError(f"unknown environment {environment!r}")
    if not _VERSION.fullmatch(version):
        raise ValueError(f"{version!r} is not a version (nothing to deploy)")
    state_dir.mkdir(parents=True, exist_ok=True)
    old = read_state(state_dir, environment)
    state = {"version": version, "previous": old.get("version") if old else None,
             "deployed_at": datetime.now(UTC).isoformat()}
    fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=f".{environment}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, state_dir / f"{environment}.json")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    entry = {"environment": environment, **state}
    with open(state_dir / "history.jsonl", "a", encoding="utf-8") as history:
        history.write(json.dumps(entry) + "\n")  # the deployer's own record, for the audit
    return state


def answer(state_dir: Path, broken: frozenset[str], path: str) -> tuple[int, str]:
    """The status and body for a GET of `path` (`/<environment>/<health|version|metrics>`)."""
    if path in ("", "/"):
        return 200, "sample service\n"
    parts = path.strip("/").split("/")
    if len(parts) != 2 or parts[0] not in ENVIRONMENTS or parts[1] not in (
            "health", "version", "metrics"):
        return 404, "not found\n"
    environment, what = parts
    try:
        state = read_state(state_dir, environment)
    except (OSError, ValueError):
        return 500, "state unreadable\n"
    version = state.get("version") if state else None
    if not isinstance(version, str):
        return 503, f"nothing deployed to {environment}\n"
    # "2.1.0" is broken everywhere; "2.1.0@production" only there (it passes staging).
    is_broken = version in broken or f"{version}@{environment}" in broken
    if what == "health":
        return (500, f"broken {version}\n") if is_broken else (200, f"ok {version}\n")
    if what == "version":
        return 200, f"{version}\n"
    return 200, f"errors {BROKEN_ERROR_COUNT if is_broken else 0}\n"


class SampleServer(ThreadingHTTPServer):
    """The HTTP server, holding where state lives and which versions are broken."""

    daemon_threads = True

    def __init__(self, port: int, state_dir: Path, broken: frozenset[str]) -> None:
        self.state_dir = state_dir
        self.broken = broken
        super().__init__((HOST, port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        server = self.server
        assert isinstance(server, SampleServer)
        status, body = answer(server.state_dir, server.broken, self.path.split("?")[0])
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def serve(state_dir: Path, port: int, broken: frozenset[str]) -> int:
    """Serve until SIGTERM or SIGINT; prints a ready line once it accepts connections."""
    try:
        server = SampleServer(port, state_dir, broken)
    except OSError as exc:
        print(f"cannot listen on {HOST}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever(), which runs in this (the main) thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"sample service ready at http://{HOST}:{server.server_address[1]} "
          f"(pid {os.getpid()}, state {state_dir}, broken: {','.join(sorted(broken)) or '-'})",
          flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
    print("sample service stopped", flush=True)
    return 0


def probe(url: str, timeout_seconds: float = 5.0) -> int:
    """GET `url` (no proxy) and print what came back; 0 if it answered 200, else 1."""
    try:
        with _NO_PROXY.open(url, timeout=timeout_seconds) as response:
            status, body = response.status, response.read(2000)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(2000)
    except (OSError, ValueError) as exc:
        print(f"{url}: no answer: {exc}")
        return 1
    print(f"{url}: {status} {body.decode('utf-8', errors='replace').strip()}")
    return 0 if status == 200 else 1


class SampleService:
    """A running `serve` subprocess; stop it with `stop()` or by leaving a `with` block.

    Attributes:
        process: the server process.
        url: its base URL, e.g. `http://127.0.0.1:18765`.
        log_path: where its stdout and stderr (one line per request) go.
    """

    def __init__(self, process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
        self.process = process
        self.url = url
        self.log_path = log_path

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.url.rsplit(":", 1)[1])

    def stop(self, timeout_seconds: float = 10.0) -> None:
        """Ask it to stop (SIGTERM), kill it if it has not within the timeout, reap it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> SampleService:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def start_sample_service(state_dir: Path, port: int = 0, broken_versions: Sequence[str] = (),
                         timeout_seconds: float = 15.0) -> SampleService:
    """Start `serve` as a subprocess and return once it answers.

    Args:
        state_dir: where deployments are recorded; its `service.log` gets the output.
        port: the port to listen on; 0 lets the OS pick a free one (see `.url`).
        broken_versions: versions whose `/health` answers 500.
        timeout_seconds: how long it may take to answer before this gives up.

    Raises:
        RuntimeError: it exited or did not answer in time (the log's tail is included).
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / "service.log"
    with open(log_path, "ab") as log:
        start = log.tell()
        process = subprocess.Popen(
            [sys.executable, "-m", "changeflow.sample_service", "serve", "--state-dir",
             str(state_dir), "--port", str(port), "--broken-versions", ",".join(broken_versions)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_seconds
    pause = 0.01
    while time.monotonic() < deadline:
        output = _log_since(log_path, start)
        ready = _READY.search(output)
        if ready and probe_quietly(ready.group(1) + "/"):
            return SampleService(process, ready.group(1), log_path)
        if process.poll() is not None:
            raise RuntimeError(f"sample service exited with {process.returncode}: "
                               f"{output.strip()[-2000:]}")
        time.sleep(pause)
        pause = min(pause * 2, 0.2)
    SampleService(process, "", log_path).stop()
    raise RuntimeError(f"sample service did not answer within {timeout_seconds:g} s: "
                       f"{_log_since(log_path, start).strip()[-2000:]}")


def probe_quietly(url: str, timeout_seconds: float = 2.0) -> bool:
    """True if a GET of `url` answers 200."""
    try:
        with _NO_PROXY.open(url, timeout=timeout_seconds) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


def _log_since(path: Path, offset: int) -> str:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", errors="replace")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m changeflow.sample_service",
                                     description=__doc__.split("\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the web service")
    serve_cmd.add_argument("--state-dir", type=Path, required=True)
    serve_cmd.add_argument("--port", type=int, default=18765, help="0 picks a free port")
    serve_cmd.add_argument("--broken-versions", default="",
                           help="comma-separated versions whose health check fails; "
                                "VERSION@ENVIRONMENT fails in that environment only")
    deploy_cmd = commands.add_parser("deploy", help="make a version the one served")
    deploy_cmd.add_argument("--state-dir", type=Path, required=True)
    deploy_cmd.add_argument("--environment", choices=ENVIRONMENTS, required=True)
    deploy_cmd.add_argument("--version", required=True)
    deploy_cmd.add_argument("--settle-seconds", type=float, default=0.0,
                            help="keep running this long after switching (a slow rollout)")
    probe_cmd = commands.add_parser("probe", help="exit 0 if a URL answers 200")
    probe_cmd.add_argument("--url", required=True)
    probe_cmd.add_argument("--timeout", type=float, default=5.0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        broken = frozenset(v.strip() for v in args.broken_versions.split(",") if v.strip())
        return serve(args.state_dir, args.port, broken)
    if args.command == "deploy":
        try:
            state = deploy(args.state_dir, args.environment, args.version)
        except (OSError, ValueError) as exc:
            print(f"deploy failed: {exc}", file=sys.stderr)
            return 2
        print(f"deployed {state['version']} to {args.environment} "
              f"(previous: {state['previous'] or 'none'})", flush=True)
        time.sleep(args.settle_seconds)
        return 0
    return probe(args.url, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
