"""Helpers shared by the lb plugin tests (a module name of its own, so it
never collides with another directory's conftest)."""

from __future__ import annotations

import os
import time
from typing import Callable

import pytest


def wait_for(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout_s}s")
        time.sleep(0.02)


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer exists (the plugin reaps its child, so no zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
