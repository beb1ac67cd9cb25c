"""Store benchmark: seal-and-store throughput and read latency, SQLite and PostgreSQL.

Prints figures; never decides pass or fail. The peers' yardstick (shared/peers/README.md) is
Postfix → Dovecot ingesting ~20.8 kB messages at ~382 msg/s end to end on this machine kind;
this measures only Caducée's storage path (no SMTP), with 8 concurrent writers.

    python -m bench.store_bench [-n 2000] [-c 8] [--backend sqlite|postgres|both] [--s3]

``--s3`` adds runs on the S3 blob store (issue 20) against a local moto server in this process,
every blob an object (``blob_inline_max = 0``, the worst case: by default 20 kB messages stay
rows); moto shares this process's interpreter lock, so the figures are a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

from tests.pgcluster import PgCluster, find_pg_bin
from tests.s3server import LocalS3, local_s3, use_s3

from caducee.app import App, open_app
from caducee.config import Settings
from caducee.domain.model import Role
from caducee.services import accounts, messages, practices
from caducee.services.delivery import deliver_local, pipeline
from caducee.store.keyring import create_master_key_file

BODY = ("Bonjour, veuillez trouver ci-joint le compte rendu de consultation. " * 300)[:20_000]


def sample(n: int) -> bytes:
    return (
        f"From: Dr Martin <dr.martin@ailleurs.test>\r\nTo: dr@bench.test\r\n"
        f"Subject: Compte rendu {n}\r\nMessage-ID: <{n}@bench.test>\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{BODY}\r\n"
    ).encode()


async def prepare(settings: Settings) -> tuple[App, int]:
    create_master_key_file(settings)
    cm = open_app(settings, upgrade=True)
    app = await cm.__aenter__()
    await practices.create_practice(app, "Bench", ["bench.test"])
    _, box = await accounts.add_account(
        app,
        accounts.NewAccount(
            login="dr@bench.test",
            last_name="Bench",
            role=Role.PRATICIEN,
            password="Bench-Password-2026!",
        ),
    )
    app._bench_cm = cm  # type: ignore[attr-defined]
    return app, box.id


async def run(settings: Settings, label: str, count: int, concurrency: int) -> None:
    app, _mailbox_id = await prepare(settings)
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)

    async def worker() -> None:
        while not queue.empty():
            n = queue.get_nowait()
            raw = sample(n)
            started = time.perf_counter()
            await deliver_local(app, raw, ["dr@bench.test"])
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    read_started = time.perf_counter()
    for message_id in range(1, 101):
        await messages.read_message(app, message_id)
    read_ms = (time.perf_counter() - read_started) * 10
    print(
        f"{label:<28} store {count / elapsed:7.1f} msg/s  "
        f"p50 {statistics.median(latencies) * 1000:6.1f} ms  "
        f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:6.1f} ms  "
        f"read {read_ms:5.2f} ms/msg  groups {pipeline(app).groups}"
    )
    await app._bench_cm.__aexit__(None, None, None)  # type: ignore[attr-defined]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("-c", type=int, default=8)
    parser.add_argument("--backend", default="both", choices=["sqlite", "postgres", "both"])
    parser.add_argument("--s3", action="store_true", help="also on a local S3 server (moto)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        s3 = stack.enter_context(local_s3()) if args.s3 else None
        await _runs(args, s3)


async def _runs(args: argparse.Namespace, s3: LocalS3 | None) -> None:
    print(f"{args.n} messages of {len(sample(0))} bytes, {args.c} concurrent writers")
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(data_dir=Path(tmp))
            await run(settings, "SQLite WAL + file blobs", args.n, args.c)
        if s3 is not None:
            with tempfile.TemporaryDirectory() as tmp:
                settings = Settings(data_dir=Path(tmp))
                use_s3(settings, s3, inline_max=0)
                await run(settings, "SQLite + S3 objects", args.n, args.c)
    if args.backend in ("postgres", "both"):
        bin_dir = find_pg_bin()
        if bin_dir is None:
            print("PostgreSQL binaries not found: postgres run skipped")
            return
        cluster = PgCluster(bin_dir)
        cluster.start()
        try:
            for blob_store in ("database", "files", "s3"):
                if blob_store == "s3" and s3 is None:
                    continue
                with tempfile.TemporaryDirectory() as tmp:
                    settings = Settings(
                        data_dir=Path(tmp),
                        blob_store=blob_store,
                        database_url=cluster.url(cluster.create_database()),
                    )
                    if s3 is not None and blob_store == "s3":
                        use_s3(settings, s3, inline_max=0)
                    await run(settings, f"PostgreSQL + {blob_store} blobs", args.n, args.c)
        finally:
            cluster.stop()


if __name__ == "__main__":
    asyncio.run(main())
