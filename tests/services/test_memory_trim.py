"""After big messages the node gives the allocator's free memory back to the system
(``services.memory_trim``, issue 17)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from caducee.services import memory_trim

pytestmark = pytest.mark.skipif(memory_trim._malloc_trim is None, reason="no malloc_trim here")

# In a fresh interpreter: 96 MB in 16 kB blocks freed but for the last one (which keeps the
# heap's top where it is, as a live session's buffers do), then the RSS before and after.
SCRIPT = """
from caducee.services import memory_trim

def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

blocks = [bytes(16 * 1024) for _ in range(6000)]
last = blocks[-1]
del blocks
before = rss_mb()
memory_trim.trim()
print(before, rss_mb())
"""


def test_trim_gives_freed_memory_back() -> None:
    answer = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True
    )
    before, after = map(float, answer.stdout.split())
    assert after < before - 50, (before, after)  # most of the 96 MB went back


async def test_a_burst_of_big_inputs_schedules_one_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    trims: list[int] = []
    monkeypatch.setattr(memory_trim, "_malloc_trim", trims.append)
    monkeypatch.setattr(memory_trim, "QUIET_SECONDS", 0.01)
    memory_trim.note(memory_trim.BIG_BYTES - 1)  # small: nothing
    await asyncio.sleep(0.1)
    assert trims == []
    for _ in range(3):
        memory_trim.note(memory_trim.BIG_BYTES)
    while not trims:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    assert trims == [0]  # one trim for the burst


# Eight threads that each allocate and free 8 MB in 20 kB blocks, five times, keeping one
# block of each round (as sessions and worker threads keep a buffer); the RSS they leave.
ARENAS = """
import sys, threading
from caducee.services import memory_trim

if sys.argv[1] == "limited":
    assert memory_trim.limit_arenas()

def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

together = threading.Barrier(8)
kept = []

def work():
    for _ in range(5):
        blocks = [bytes(20 * 1024) for _ in range(400)]
        kept.append(blocks[-1])
        del blocks
    together.wait()

before = rss_mb()
threads = [threading.Thread(target=work) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(rss_mb() - before)
"""


def test_few_arenas_keep_less_of_what_threads_freed() -> None:
    """A serving process caps glibc's arenas (``caducee serve`` calls ``limit_arenas``): what
    its threads freed is reused instead of kept in one arena per thread."""
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}

    def retained(mode: str) -> float:
        answer = subprocess.run(
            [sys.executable, "-c", ARENAS, mode],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        return float(answer.stdout)

    default, limited = retained("default"), retained("limited")
    assert limited < default - 20, (default, limited)  # about 60 MB kept by default, 25 capped


# In a fresh interpreter: what the allocator reports in use and free before and after 96 MB
# are freed (but for the last block), and whether a hoard check then trims.
HOARD = """
import json
from caducee.services import memory_trim

def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

start = memory_trim.allocator_bytes()
blocks = [bytes(16 * 1024) for _ in range(6000)]
held = memory_trim.allocator_bytes()
last = blocks[-1]
del blocks
freed = memory_trim.allocator_bytes()
rss_before = rss_mb()
trimmed = memory_trim.trim_if_hoarding()
rss_after = rss_mb()
print(json.dumps(dict(start=start, held=held, freed=freed, trimmed=trimmed,
                      rss_before=rss_before, rss_after=rss_after)))
"""


def test_a_hoarding_allocator_is_seen_and_trimmed() -> None:
    answer = subprocess.run(
        [sys.executable, "-c", HOARD], capture_output=True, text=True, check=True
    )
    found = json.loads(answer.stdout)
    mb = 2**20
    # the 96 MB show up in use, then as free in the arenas once released
    assert found["held"]["in_use"] - found["start"]["in_use"] > 90 * mb
    assert found["freed"]["free"] > 90 * mb
    assert found["freed"]["in_use"] < found["held"]["in_use"] - 90 * mb
    # more than HOARD_BYTES free: trimmed, and the RSS follows
    assert found["trimmed"] is True
    assert found["rss_after"] < found["rss_before"] - 50
