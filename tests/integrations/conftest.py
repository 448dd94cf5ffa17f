"""Real local things the embedded adapters are tested against.

Ports always come from the OS (bind to port 0); nothing here waits with a fixed sleep.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from changeflow.sample_service import SampleService, start_sample_service

BROKEN_VERSION = "2.1.0"


def process_gone(pid: int) -> bool:
    """True if no process has this pid, or only a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return state in ("Z", "X")


@pytest.fixture
def sample_service(tmp_path: Path) -> Iterator[SampleService]:
    """The sample service on a port the OS picked, with 2.1.0 marked broken."""
    service = start_sample_service(tmp_path / "sample", broken_versions=[BROKEN_VERSION])
    try:
        yield service
    finally:
        service.stop()


class _Handler(BaseHTTPRequestHandler):
    """Routes for HttpChecks: /ok, /fail, /body-stall (headers, then nothing)."""

    def do_GET(self) -> None:
        if self.path == "/ok":
            self._reply(200, b"all good: errors 0\n")
        elif self.path == "/fail":
            self._reply(500, b"internal error\n")
        elif self.path == "/body-stall":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"partial")
            self.wfile.flush()
            self.server.release.wait(10)  # type: ignore[attr-defined]
        else:
            self._reply(404, b"not found\n")

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 (OS-picked port); yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.release = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.release.set()  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def refused_url() -> str:
    """A URL on a port the OS just handed out and nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/health"


@pytest.fixture
def stalled_url() -> Iterator[str]:
    """A URL whose server accepts the connection (in the kernel) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield f"http://127.0.0.1:{s.getsockname()[1]}/health"
