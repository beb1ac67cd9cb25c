"""Mailbox export benchmark (RGPD, issue 19): time, archive size and the process's peak memory
for exporting a 10,000-message mailbox as mbox and as Maildir; prints figures, never decides
pass or fail.

The mailbox is filled with ``bench/smtp_ingest.py``'s messages (the shared corpus when present),
on SQLite and/or a throwaway PostgreSQL; then each format is exported ``--runs`` times,
alternating. The peak resident memory (``ru_maxrss``) is read before and after the exports: it
grows by about a batch (``services.mailbox_export.BATCH_BYTES``), not by the mailbox.

    python -m bench.mailbox_export [-n 10000] [--backend sqlite|postgres|both] [--runs 2]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time

from bench.backends import CHOICES, each_backend
from bench.backup import USER, fill
from caducee.app import open_app
from caducee.config import Settings
from caducee.services import mailbox_export, mailboxes
from caducee.store.keyring import create_master_key_file


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run(settings: Settings, label: str, count: int, runs: int) -> None:
    create_master_key_file(settings)
    await fill(settings, count)
    work = settings.data_dir.parent / f"exports-{label}"
    work.mkdir()
    async with open_app(settings) as app:
        box = await mailboxes.get_mailbox(app, USER)
        print(f"{label}: {box.used_bytes / 1e6:.1f} MB stored; peak RSS {_peak_mb():.0f} MB")
        for n in range(runs):
            for fmt in ("mbox", "maildir"):
                target = work / f"{fmt}-{n}.zip"
                started = time.perf_counter()
                done = await mailbox_export.export_mailbox(
                    app, box, target, fmt=fmt, actor="bench", source="bench"
                )
                elapsed = time.perf_counter() - started
                print(
                    f"{label} run {n + 1}  {fmt:8} {elapsed:7.2f} s  "
                    f"{done.messages} messages, {done.bytes / 1e6:7.1f} MB in, "
                    f"{target.stat().st_size / 1e6:7.1f} MB zip, "
                    f"{done.messages / elapsed:7.0f} msg/s; peak RSS {_peak_mb():.0f} MB"
                )
                target.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--backend", choices=CHOICES, default="sqlite")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()

    async def one(settings: Settings, label: str) -> None:
        await run(settings, label, args.n, args.runs)

    asyncio.run(each_backend(args.backend, one))


if __name__ == "__main__":
    main()
