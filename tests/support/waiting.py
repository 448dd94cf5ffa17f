"""Polling until something holds: the one way the suite waits for another process."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_for(condition: Callable[[], T], what: str, timeout: float = 60,
             interval: float = 0.25, detail: Callable[[], str] | None = None) -> T:
    """Poll `condition` until it returns something truthy, and return that.

    The first polls come quickly (5 ms, doubling up to `interval`), so a fast condition
    costs little. After `timeout` seconds the test fails naming `what`, with `detail()`
    (a server's log, say) when given.
    """
    deadline = time.monotonic() + timeout
    pause = 0.005
    while not (value := condition()):
        if time.monotonic() > deadline:
            said = f"; {detail()}" if detail else ""
            pytest.fail(f"timed out after {timeout} s waiting for {what}{said}")
        time.sleep(pause)
        pause = min(pause * 2, interval)
    return value
