"""The event-loop lag probe (``[server] loop_lag_warn_ms``, 0: off): a diagnostic for « a node
never stalls » (issue 17).

Every door of a node shares one asyncio loop: a callback that holds it for a second holds every
SMTP, IMAP, POP3 and HTTPS session for a second. When the probe is on:

- asyncio's debug mode is on with ``slow_callback_duration`` set to the threshold, so asyncio
  itself logs each slow callback with the task or handle that ran (logger ``asyncio``);
- a heartbeat task measures how late its own wake-ups are and logs any lag over the threshold;
- a watchdog thread notices a heartbeat that does not come and logs, while the loop is still
  stuck, where the loop's thread is (file, line and function of the innermost frames: code
  locations only, never values, so no message content reaches the log).

Debug mode costs some speed: the probe is for diagnosing a node, not for running it always.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
import traceback

log = logging.getLogger(__name__)

#: Innermost frames of the loop's thread logged when it is stuck.
STACK_FRAMES = 8


def where(thread_id: int, frames: int = STACK_FRAMES) -> str:
    """Where a thread is: its innermost ``frames`` frames as ``file:line function``."""
    frame = sys._current_frames().get(thread_id)
    if frame is None:
        return "?"
    stack = traceback.extract_stack(frame)[-frames:]
    return " < ".join(f"{f.filename}:{f.lineno} {f.name}" for f in reversed(stack))


class LoopLagProbe:
    def __init__(self, threshold_ms: int) -> None:
        self.threshold = threshold_ms / 1000
        self.interval = min(0.25, max(0.01, self.threshold / 4))
        self.beat = time.monotonic()
        self.worst = 0.0  # seconds, the worst lag the heartbeat measured
        self.stalls = 0  # stalls the watchdog saw while they lasted
        self._stop = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._debug: tuple[bool, float] | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._debug = (loop.get_debug(), loop.slow_callback_duration)
        loop.set_debug(True)
        loop.slow_callback_duration = self.threshold
        self.beat = time.monotonic()
        self._task = loop.create_task(self._heartbeat(), name="loop-lag-probe")
        self._thread = threading.Thread(
            target=self._watch, args=(threading.get_ident(),), name="loop-lag-watchdog", daemon=True
        )
        self._thread.start()
        log.info("loop lag probe on threshold_ms=%d", round(self.threshold * 1000))

    async def _heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.interval)
            lag = loop.time() - before - self.interval
            self.beat = time.monotonic()
            if lag > self.threshold:
                self.worst = max(self.worst, lag)
                log.warning("event loop lag lag_ms=%d", round(lag * 1000))

    def _watch(self, loop_thread: int) -> None:
        reported = 0.0  # the heartbeat whose absence was reported
        while not self._stop.wait(self.interval):
            beat = self.beat
            if time.monotonic() - beat > self.interval + self.threshold and beat != reported:
                reported = beat
                self.stalls += 1
                log.warning(
                    "event loop stalled over_ms=%d in=%s",
                    round(self.threshold * 1000),
                    where(loop_thread),
                )

    async def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._debug is not None:
            loop = asyncio.get_running_loop()
            loop.set_debug(self._debug[0])
            loop.slow_callback_duration = self._debug[1]
