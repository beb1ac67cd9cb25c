"""The node's worker processes for the stdlib's MIME parser (``services.cpu_pool``)."""

from __future__ import annotations

import functools
import os
from email import policy
from email.message import EmailMessage

import pytest
from bench.loop_lag import big_pdf, big_zip

from caducee.domain.message_text import extract_text
from caducee.domain.protected_notice import protected_notice
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


def _rss_mb(pid: int) -> float:
    """The resident memory of process ``pid``, as the system counts it (``/proc``)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _message_with(kind: str, data: bytes) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "dr@cabinet.test", "p@x.test", "CR"
    message.set_content("Compte rendu ci-joint.")
    message.add_attachment(data, maintype="application", subtype=kind, filename=f"cr.{kind}")
    return message.as_bytes(policy=policy.SMTP)


async def test_a_worker_gives_back_the_memory_of_big_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After protecting big attachments, a worker process's RSS is back near its idle level
    (glibc kept ~60 MB of freed memory in its arenas after four 20 MB messages)."""
    cpu_pool.shutdown()
    monkeypatch.setattr(cpu_pool, "MAX_PROCESSES", 1)  # one worker: every call goes to it
    try:
        notice = functools.partial(
            protected_notice,
            password="Motdepasse-1",
            practice_name="Cabinet",
            sender_address="dr@cabinet.test",
            patient_email="p@x.test",
            hostname="mail.cabinet.test",
        )
        worker = await cpu_pool.run(os.getpid)
        assert worker != os.getpid()
        files = {"pdf": big_pdf, "zip": big_zip}
        for kind, make in files.items():  # their modules imported
            await cpu_pool.run(notice, _message_with(kind, make(1)), mode=kind)
        idle = _rss_mb(worker)
        for kind in ("pdf", "zip", "pdf", "zip"):
            raw, _ = await cpu_pool.run(notice, _message_with(kind, files[kind](15)), mode=kind)
            assert len(raw) > 15 * 1024 * 1024
        assert await cpu_pool.run(os.getpid) == worker  # the last call's copies freed
        assert _rss_mb(worker) < idle + 20
    finally:
        cpu_pool.shutdown()


async def test_concat_puts_a_header_line_before_a_message_of_any_size() -> None:
    for size in (10, cpu_pool.CONCAT_THRESHOLD + 1):
        body = b"x" * size
        assert await cpu_pool.concat(b"X-Ajout: 1\r\n", b"", body) == b"X-Ajout: 1\r\n" + body
