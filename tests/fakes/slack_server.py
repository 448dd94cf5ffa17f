"""A local Slack Web API for tests: `chat.postMessage` over real HTTP, in Slack's shapes.

It answers as Slack does: HTTP 200 with `{"ok": true, ...}` or `{"ok": false, "error":
CODE}` (`not_authed`, `invalid_auth`, `channel_not_found`, `no_text`, `msg_too_long`),
and 429 with `Retry-After` and `error: ratelimited` when rate-limited. A member id posted
to opens (or reuses) that member's direct-message conversation with the bot, `D...`.

Tests add members (`member`), inject faults (`error`, `rate_limit`, `status`, `stall`,
`garble`) and read what each member received (`messages_to`). Tokens are never recorded.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

MAX_TEXT = 40_000
"""Slack refuses longer text with `msg_too_long`."""


@dataclass(frozen=True)
class Posted:
    """One message Slack accepted: to which member, in which conversation, with what text."""

    member: str
    channel: str
    text: str
    ts: str


@dataclass
class _Fault:
    kind: str  # "error", "rate_limit", "status", "stall", "garble"
    times: int
    value: Any = None


class FakeSlack:
    """A threaded Slack Web API on 127.0.0.1; use as a context manager."""

    def __init__(self, token: str) -> None:
        """Accept `token` as the bot's; every other token is `invalid_auth`."""
        self.token = token
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._members: dict[str, str] = {}  # member id -> DM conversation id
        self._posted: list[Posted] = []
        self._faults: list[_Fault] = []
        self.calls = 0
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> FakeSlack:
        handler = type("Handler", (_Handler,), {"slack": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         name="fake-slack", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        """The Web API's base URL (`slack_api_url`), e.g. `http://127.0.0.1:PORT/api/`."""
        assert self._server is not None, "FakeSlack is not running"
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/"

    def member(self, member_id: str) -> None:
        """Add a workspace member the bot may message."""
        with self._lock:
            self._members[member_id] = "D" + member_id[1:]

    def messages_to(self, member_id: str) -> list[Posted]:
        """What `member_id` received, oldest first."""
        with self._lock:
            return [p for p in self._posted if p.member == member_id]

    @property
    def posted(self) -> list[Posted]:
        """Every accepted message, oldest first."""
        with self._lock:
            return list(self._posted)

    def error(self, code: str, times: int = 1) -> None:
        """Answer the next `times` posts `{"ok": false, "error": code}`."""
        self._fault(_Fault("error", times, code))

    def rate_limit(self, retry_after: int, times: int = 1) -> None:
        """Answer the next `times` posts 429 with `Retry-After: retry_after`."""
        self._fault(_Fault("rate_limit", times, retry_after))

    def status(self, status: int, times: int = 1) -> None:
        """Answer the next `times` posts with a bare HTTP `status` (a 503 from the edge)."""
        self._fault(_Fault("status", times, status))

    def stall(self, seconds: float, times: int = 1) -> None:
        """Hold the next `times` posts for `seconds` before answering normally."""
        self._fault(_Fault("stall", times, seconds))

    def garble(self, times: int = 1) -> None:
        """Answer the next `times` posts 200 with a body that is not JSON."""
        self._fault(_Fault("garble", times))

    def _fault(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def answer(self, token: str | None, params: dict[str, Any]) -> tuple[int, dict[str, str],
                                                                         bytes]:
        """The answer to one `chat.postMessage`: status, headers and body."""
        with self._lock:
            self.calls += 1
        fault = self._take_fault()
        if fault is not None and fault.kind == "stall":
            self._closing.wait(fault.value)
        elif fault is not None and fault.kind == "rate_limit":
            return 429, {"Retry-After": str(fault.value)}, _json(ok=False, error="ratelimited")
        elif fault is not None and fault.kind == "status":
            return fault.value, {}, b"upstream unavailable"
        elif fault is not None and fault.kind == "garble":
            return 200, {}, b"<html>maintenance</html>"
        elif fault is not None:
            return 200, {}, _json(ok=False, error=fault.value)
        if not token:
            return 200, {}, _json(ok=False, error="not_authed")
        if token != self.token:
            return 200, {}, _json(ok=False, error="invalid_auth")
        channel, text = params.get("channel"), params.get("text")
        with self._lock:
            conversation = self._members.get(channel) if isinstance(channel, str) else None
        if conversation is None:
            return 200, {}, _json(ok=False, error="channel_not_found")
        if not isinstance(text, str) or not text.strip():
            return 200, {}, _json(ok=False, error="no_text")
        if len(text) > MAX_TEXT:
            return 200, {}, _json(ok=False, error="msg_too_long")
        ts = f"{time.time():.6f}"
        with self._lock:
            self._posted.append(Posted(channel, conversation, text, ts))
        return 200, {}, _json(ok=True, channel=conversation, ts=ts,
                              message={"type": "message", "text": text, "ts": ts,
                                       "bot_id": "B0FAKE"})


def _json(**body: Any) -> bytes:
    return json.dumps(body).encode()


class _Handler(BaseHTTPRequestHandler):
    slack: FakeSlack
    timeout = 10

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace")
        if self.path.split("?")[0] != "/api/chat.postMessage":
            status, headers, body = 404, {}, _json(ok=False, error="unknown_method")
        else:
            if (self.headers.get("Content-Type") or "").startswith("application/json"):
                params = json.loads(raw or "{}")
            else:
                params = {k: v[0] for k, v in parse_qs(raw).items()}
            auth = self.headers.get("Authorization") or ""
            token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
            status, headers, body = self.slack.answer(token, params)
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: request lines are noise."""


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[dict[str, Any]], list[int]]]:
    """A local HTTP endpoint for a custom-webhook block: its URL, what it received (JSON
    bodies, in order), and statuses to answer next (append 503 to fail the next post)."""
    received: list[dict[str, Any]] = []
    answers: list[int] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = answers.pop(0) if answers else 200
            if status == 200:
                received.append(json.loads(raw or b"{}"))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received, answers
    finally:
        server.shutdown()
        server.server_close()
