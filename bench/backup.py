"""Backup benchmark: backup time and archive size for a 10,000-message installation, full
verification and restore time (issue 19); prints figures, never decides pass or fail.

The installation is filled with the shared corpus (``../shared/peers/mailgen.py``, ~20 kB
messages) or, without it, with ``bench/smtp_ingest.py``'s own messages, on SQLite (blobs up
to 100 KiB in the database, as by default) and/or a throwaway PostgreSQL (blobs in the
database). Then, ``--runs`` times, alternating in one sitting:

- « manual »: what docs/operations.md asked for before issue 19 — SQLite's online backup
  (``sqlite3 .backup``) or ``pg_dump -Fc``, and a copy of ``blobs/``, nothing encrypted;
- « caducee backup »: the archive (snapshot, every file encrypted, manifest), then
  ``backup verify --key`` (everything decrypted) and ``restore`` into a new data dir (and a
  new database).

``--removals N`` instead measures the only hot path the change touches, ``remove_files`` (it now
takes a lock shared first): N blobs staged then removed one call each. Run it with this tree's
and the base commit's ``src`` on PYTHONPATH, alternately.

    python -m bench.backup [-n 10000] [--backend sqlite|postgres|both] [--runs 2]
    python -m bench.backup --removals 2000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.backends import CHOICES, each_backend
from bench.smtp_ingest import make_message
from caducee.app import open_app
from caducee.cli.setup import initialise
from caducee.config import Settings
from caducee.services.delivery import deliver_local
from caducee.store.blobs import FileBlobStore

USER = "bench@bench.test"


def _tree_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


async def fill(settings: Settings, count: int) -> None:
    await initialise(
        settings,
        practice_name="Bench",
        domain="bench.test",
        mailbox_limit=5,
        admin_login=USER,
        admin_password="Sauvegarde-Rapide-2026!",
    )
    async with open_app(settings) as app:
        from caducee.services import mailboxes

        await mailboxes.set_quota(app, USER, 100 * 1024**3)
        started = time.perf_counter()
        for first in range(0, count, 200):
            await asyncio.gather(
                *(
                    deliver_local(app, make_message(i, USER), [USER])
                    for i in range(first, min(count, first + 200))
                )
            )
        print(f"{count} messages stored in {time.perf_counter() - started:.1f} s")


def manual(settings: Settings, target: Path) -> float:
    started = time.perf_counter()
    target.mkdir()
    if settings.is_sqlite:
        source = sqlite3.connect(settings.data_dir / "db.sqlite3")
        copy = sqlite3.connect(target / "db.sqlite3")
        source.backup(copy)
        copy.close()
        source.close()
    else:
        from caducee.store.backup import find_pg_tool, libpq

        conninfo, env = libpq(settings.database_url)
        subprocess.run(
            [str(find_pg_tool("pg_dump")), "-Fc", "-f", str(target / "db.pgdump"), conninfo],
            check=True,
            env=env,
        )
    if settings.blobs_dir.exists():
        shutil.copytree(settings.blobs_dir, target / "blobs")
    return time.perf_counter() - started


async def run(settings: Settings, label: str, count: int, runs: int, new_db: list[str]) -> None:
    from caducee.services import backup  # imported here: --removals also runs on the base tree
    from caducee.store.keyring import create_master_key_file

    create_master_key_file(settings)
    await fill(settings, count)
    work = settings.data_dir.parent / f"work-{label}"
    work.mkdir()
    async with open_app(settings) as app:
        key = await backup.create_key(app)
        for n in range(runs):
            elapsed = manual(settings, work / f"manual-{n}")
            size = _tree_size(work / f"manual-{n}")
            print(f"{label} run {n + 1}  manual (clear)   {elapsed:7.2f} s  {size / 1e6:8.1f} MB")
            started = time.perf_counter()
            report = await backup.back_up(app, work / f"archives-{n}")
            elapsed = time.perf_counter() - started
            print(
                f"{label} run {n + 1}  caducee backup   {elapsed:7.2f} s  "
                f"{report.bytes / 1e6:8.1f} MB  ({report.files} files, "
                f"{report.counts['messages']} messages)"
            )
            started = time.perf_counter()
            await asyncio.to_thread(backup.verify, report.path, key)
            print(f"{label} run {n + 1}  verify --key     {time.perf_counter() - started:7.2f} s")
            database_url = new_db.pop() if new_db else ""
            started = time.perf_counter()
            await asyncio.to_thread(
                backup.restore, report.path, work / f"restored-{n}", key, database_url=database_url
            )
            print(f"{label} run {n + 1}  restore          {time.perf_counter() - started:7.2f} s")
            shutil.rmtree(work / f"restored-{n}")
            shutil.rmtree(work / f"archives-{n}")
            shutil.rmtree(work / f"manual-{n}")


async def removals(count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = FileBlobStore(Path(tmp) / "blobs", inline_max=0)
        ids = [os.urandom(16).hex() for _ in range(count)]
        await store.stage([(i, b"x" * 4096) for i in ids])
        started = time.perf_counter()
        for blob_id in ids:
            await store.remove_files([blob_id])
        elapsed = time.perf_counter() - started
        print(f"remove_files  {count} calls  {elapsed / count * 1e6:7.1f} µs per call")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--backend", choices=CHOICES, default="both")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--removals", type=int, default=0)
    args = parser.parse_args()
    if args.removals:
        asyncio.run(removals(args.removals))
        return

    async def one(settings: Settings, label: str) -> None:
        new_db = [] if settings.is_sqlite else [_new_database(settings) for _ in range(args.runs)]
        settings.hostname = "mail.bench.test"
        await run(settings, label, args.n, args.runs, new_db)

    asyncio.run(each_backend(args.backend, one))
    sys.stdout.flush()


def _new_database(settings: Settings) -> str:
    """A new empty database on the same server, to restore into."""
    import psycopg

    base = settings.database_url.rpartition("/")[0]
    name = f"restored_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base.replace("+psycopg", "") + "/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{base}/{name}"


if __name__ == "__main__":
    main()
