"""A gate for work sent to the node's worker processes (``services.cpu_pool``): the wrapped
function waits in the worker until the test opens the gate, and tells which process it is in.

Files, not events: the worker is another process. Imports nothing of ours, so a worker loads
only this module and the wrapped function's."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class ProcessGate:
    def __init__(self, function: Callable[..., Any], directory: Path) -> None:
        self.function = function
        self.entered = directory / "entered"
        self.released = directory / "released"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.entered.write_text(str(os.getpid()))
        deadline = time.monotonic() + 60
        while not self.released.exists():
            assert time.monotonic() < deadline, "never released"
            time.sleep(0.01)
        return self.function(*args, **kwargs)

    def wait_entered(self, timeout: float = 60) -> int:
        """The pid of the process the work is held in (blocking: call it in a thread)."""
        deadline = time.monotonic() + timeout
        while not self.entered.exists():
            assert time.monotonic() < deadline, "the work never started"
            time.sleep(0.01)
        time.sleep(0.01)  # the pid is written
        return int(self.entered.read_text())

    def open(self) -> None:
        self.released.touch()
