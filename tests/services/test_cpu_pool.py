"""The node's worker processes for the stdlib's MIME parser (``services.cpu_pool``)."""

from __future__ import annotations

import os

import pytest

from caducee.domain.message_text import extract_text
from caducee.services import cpu_pool


async def test_work_runs_in_another_process_at_a_lower_priority() -> None:
    assert await cpu_pool.run(os.getpid) != os.getpid()
    assert await cpu_pool.run(os.nice, 0) > os.nice(0)
    text = await cpu_pool.run(extract_text, b"Subject: =?utf-8?q?R=C3=A9sultat?=\r\n\r\nCorps\r\n")
    assert text.headers == {"subject": "résultat"}
    assert text.body.strip() == "corps"


async def test_without_processes_the_work_runs_in_a_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def cannot_start() -> None:
        raise OSError("no processes here")

    cpu_pool.shutdown()
    monkeypatch.setattr(cpu_pool, "_executor", cannot_start)
    with pytest.raises(OSError):
        cpu_pool._executor()
    monkeypatch.setattr(cpu_pool, "_executor", lambda: None)
    assert await cpu_pool.run(os.getpid) == os.getpid()
