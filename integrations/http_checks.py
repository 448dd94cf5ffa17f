"""HTTP smoke and monitor checks with `requests`: the `Checks` adapter.

A check is one GET. It passes only on the expected status and, if asked, a substring in
the body; anything else (a refused connection, a timeout, a wrong answer) is a failed
check with a reason, never an exception, so a caller can never pass a check by default.
"""

from __future__ import annotations

import re
import time

import requests

from domain.models import CheckResult
from domain.services import HttpCheck

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
"""How much of a response body is read to look for `contains`."""

_ERRNO = re.compile(r"\[Errno -?\d+\][^'\")]*")


class HttpChecks:
    """`Checks` over a `requests.Session`, one GET per check, no retries.

    Retrying is the task layer's job (one retry layer); the session's adapters are
    left with `requests`' default of no retries.

    Args:
        session: the session to use (proxies, CA bundle, headers); a new one by default.
        max_body_bytes: how much of the body is read; a longer body is cut there.
    """

    def __init__(self, session: requests.Session | None = None,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.session = session or requests.Session()
        self.max_body_bytes = max_body_bytes

    def check(self, spec: HttpCheck) -> CheckResult:
        """Run one check; a connection error or timeout is a failed check, not a raise.

        `spec.timeout_seconds` bounds connecting and each read; reading the body stops
        once that much time has passed in total.
        """
        url = str(spec.url)
        started = time.monotonic()

        def result(passed: bool, status: int | None, detail: str) -> CheckResult:
            return CheckResult(name=spec.name, url=url, passed=passed, status_code=status,
                               detail=detail, duration_seconds=time.monotonic() - started)

        try:
            with self.session.get(url, timeout=spec.timeout_seconds, stream=True) as response:
                body = self._read_body(response, started + spec.timeout_seconds)
                status = response.status_code
        except requests.ConnectTimeout:
            return result(False, None, f"timed out after {spec.timeout_seconds:g} s connecting")
        except requests.Timeout:
            return result(False, None, f"timed out after {spec.timeout_seconds:g} s "
                                       "waiting for the answer")
        except requests.ConnectionError as exc:
            if "timed out" in str(exc):  # a stalled body surfaces as ConnectionError
                return result(False, None, f"timed out after {spec.timeout_seconds:g} s "
                                           "reading the body")
            return result(False, None, f"connection failed: {_reason(exc)}")
        except Exception as exc:  # anything else still fails closed: a check never raises
            return result(False, None, f"request failed: {type(exc).__name__}: {_reason(exc)}")
        if status != spec.expect_status:
            return result(False, status, f"expected status {spec.expect_status}, got {status}: "
                                         f"{_snippet(body)}")
        if spec.contains is not None and spec.contains not in body:
            return result(False, status, f"status {status} but body lacks {spec.contains!r}: "
                                         f"{_snippet(body)}")
        return result(True, status, f"status {status}" + (
            f", body contains {spec.contains!r}" if spec.contains is not None else ""))

    def _read_body(self, response: requests.Response, deadline: float) -> str:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(chunk_size=16384):
            chunks.append(chunk)
            size += len(chunk)
            if size >= self.max_body_bytes:
                break
            if time.monotonic() > deadline:
                raise requests.Timeout("the body was still arriving at the deadline")
        raw = b"".join(chunks)[: self.max_body_bytes]
        try:
            return raw.decode(response.encoding or "utf-8", errors="replace")
        except LookupError:  # the server named a charset Python does not know
            return raw.decode("utf-8", errors="replace")


def _reason(exc: BaseException) -> str:
    """The useful end of a `requests` error (its text nests several wrappers)."""
    text = str(exc)
    found = _ERRNO.findall(text)
    if found:
        return str(found[-1]).strip()
    return text if len(text) <= 300 else text[:297] + "..."


def _snippet(body: str, limit: int = 200) -> str:
    flat = " ".join(body.split())
    return repr(flat if len(flat) <= limit else flat[:limit] + "...")
