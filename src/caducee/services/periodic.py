"""A background refresher's loop: wait, run once, repeat, until the node stops. A failing run
is logged and the loop goes on (the next run may succeed); stopping is honoured at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def repeat(
    stop: asyncio.Event,
    once: Callable[[], Awaitable[object]],
    *,
    first_delay: float,
    next_delay: Callable[[], float],
    what: str,
) -> None:
    """Call ``once`` after ``first_delay`` seconds, then every ``next_delay()`` seconds (read
    again each time, so a changed setting applies), until ``stop`` is set."""
    delay = first_delay
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        if stop.is_set():
            return
        try:
            await once()
        except Exception:
            log.exception("%s crashed", what)
        delay = next_delay()
