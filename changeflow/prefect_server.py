"""A Prefect server of the demo's own: started, waited for, and stopped with it.

Prefect's temporary server writes its logs to the terminal and may outlive the script
that started it. The demo runs `prefect server start` itself instead. The server keeps
its database and logs in a folder of the demo, and its UI can be opened while the demo
runs. It is stopped, with its whole process group, when the block ends.

Its database is SQLite in that folder unless a PostgreSQL URL is given
(`postgresql+asyncpg://user@host:5432/db`, Prefect's own driver).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings


def free_port() -> int:
    """A port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@contextmanager
def local_prefect_server(home: Path, port: int = 0, timeout_seconds: float = 90,
                         database_url: str | None = None,
                         env: Mapping[str, str] | None = None,
                         auth_string: str | None = None) -> Iterator[str]:
    """Run a Prefect server with its state in `home`; yields its API URL, set as current.

    Args:
        home: the server's PREFECT_HOME: its log, and its SQLite database by default.
        port: where it listens; 0 picks a free port.
        timeout_seconds: how long to wait for it to answer.
        database_url: keep the server's state there instead (PostgreSQL with asyncpg:
            `postgresql+asyncpg://user@host:5432/db`).
        env: further environment variables for the server (Prefect settings).
        auth_string: turn on the API's basic authentication with this `user:password`
            (`PREFECT_SERVER_API_AUTH_STRING`); this process and the runs it starts send
            it (`PREFECT_API_AUTH_STRING`).
    """
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}/api"
    server_env = {**os.environ, "PREFECT_HOME": str(home),
                  "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_API_URL": url,
                  "PREFECT_LOGGING_LEVEL": "WARNING", **(env or {})}
    if database_url is not None:
        server_env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
    client: dict[Any, Any] = {PREFECT_API_URL: url}
    if auth_string is not None:
        server_env["PREFECT_SERVER_API_AUTH_STRING"] = auth_string
        client[PREFECT_API_AUTH_STRING] = auth_string
    with open(home / "server.log", "ab") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
             "--port", str(port)], env=server_env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_seconds
        while not _healthy(url):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Prefect server did not start; see {home / 'server.log'}")
            time.sleep(0.2)
        with temporary_settings(updates=client):
            yield url
    finally:
        stop_process_group(server)


def stop_process_group(process: subprocess.Popen[bytes], grace_seconds: float = 15) -> None:
    """SIGTERM the process's group (it leads one) and SIGKILL it after `grace_seconds`."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
