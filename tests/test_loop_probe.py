"""The event-loop lag probe (``[server] loop_lag_warn_ms``): while the loop is stuck, its
watchdog logs where; once it runs again, the heartbeat logs the lag. No clock decides: the
loop stays stuck until the watchdog has spoken."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from caducee.loop_probe import LoopLagProbe


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self.stalled = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.messages.append(message)
        if message.startswith("event loop stalled"):
            self.stalled.set()


def hold_the_loop(records: Records, threshold_s: float) -> None:
    assert records.stalled.wait(30), "the watchdog never reported the stall"
    # Then stay stuck twice the threshold more: the heartbeat's wake-up is then late by more
    # than the threshold whatever the machine's load (the watchdog may speak as soon as the
    # threshold is passed, when the heartbeat's own lag could still be under it).
    time.sleep(2 * threshold_s)


async def lag_reported(records: Records) -> None:
    while not any(m.startswith("event loop lag") for m in records.messages):
        await asyncio.sleep(0.01)


async def test_a_stuck_loop_is_reported_with_where_it_is() -> None:
    records = Records()
    logger = logging.getLogger("caducee.loop_probe")
    logger.addHandler(records)
    loop = asyncio.get_running_loop()
    probe = LoopLagProbe(50)
    probe.start()
    try:
        assert loop.get_debug() and loop.slow_callback_duration == 0.05
        await asyncio.sleep(0)
        hold_the_loop(records, 0.05)  # the loop's thread is stuck here until the watchdog speaks
        await asyncio.wait_for(lag_reported(records), 30)  # the heartbeat, late, says so
    finally:
        await probe.stop()
        logger.removeHandler(records)
    stalled = next(m for m in records.messages if m.startswith("event loop stalled"))
    assert "test_loop_probe.py" in stalled and "hold_the_loop" in stalled
    assert probe.stalls >= 1 and probe.worst > 0
