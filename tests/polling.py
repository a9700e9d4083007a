"""Waiting for something to happen, the one way every test does it: poll, and
fail with what was awaited. Timeouts are generous because the machine (two
cores, often busy) is slow at times; a test that waits never sleeps-and-hopes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 60.0, interval: float = 0.1,
             what: str = "condition") -> T:
    """Return the first truthy ``predicate()``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
