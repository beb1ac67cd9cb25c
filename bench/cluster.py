"""SMTP ingest spread across N real ``caducee serve`` nodes on one PostgreSQL database (issue 20).

Starts a throwaway PostgreSQL, N nodes (``tests.cluster``: own data dirs, one database, one
master key, ``blob_store = "database"``), then sends ``-n`` ~20 kB messages over ``-c``
connections, connection ``i`` going to node ``i % N`` (as a round-robin balancer would), with
the lock-step client of ``bench.smtp_ingest``. Prints, overall and per node:

- accept rate: messages answered 250 after DATA per second;
- end-to-end rate: messages stored (counted in the database) per second;
- latency p50 / p99 (MAIL FROM → final 250).

    python -m bench.cluster [--nodes 3] [-n 3000] [-c 6] [--per-session 50] [--users 10]
                            [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import psycopg
from tests.cluster import prepare_cluster, start
from tests.pgcluster import PgCluster, find_pg_bin

from bench.smtp_ingest import Client, make_message, sender_dns, sender_of
from caducee.app import open_app
from caducee.config import Settings
from caducee.domain.model import Role
from caducee.services import accounts, practices

DOMAIN = "cabinet.test"


async def make_users(settings: Settings, count: int) -> list[str]:
    async with open_app(settings) as app:
        await practices.create_practice(app, "Cabinet Bench", [DOMAIN], mailbox_limit=count + 1)
        logins = []
        for index in range(count):
            login = f"dr{index}@{DOMAIN}"
            await accounts.add_account(
                app,
                accounts.NewAccount(
                    login=login,
                    first_name="Jeanne",
                    last_name=f"Bench{index}",
                    role=Role.PRATICIEN,
                    password="Correct-Horse-42-Battery",
                ),
            )
            logins.append(login)
        return logins


def stored(database_url: str) -> int:
    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as db:
        row = db.execute("SELECT count(*) FROM messages").fetchone()
        return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("-n", type=int, default=3000, help="messages")
    parser.add_argument("-c", type=int, default=6, help="connections at once")
    parser.add_argument("--per-session", type=int, default=50)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1, help="worker processes per node")
    args = parser.parse_args()
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL binaries not found (Debian package postgresql, or PG_BIN)")
    pg = PgCluster(bin_dir)
    pg.start()
    dns = sender_dns()
    base = Path(tempfile.mkdtemp(prefix="caducee-cluster-bench-"))
    try:
        cluster = prepare_cluster(
            base,
            pg.url(pg.create_database()),
            args.nodes,
            listeners={"smtp": "127.0.0.1:0"},
            workers=args.workers,
            dns_resolver=dns.resolver_spec,
            # the load comes from one address: lift the per-address limits
            extra_config="\n[limits]\nconnections_per_address = 1000\n"
            "connections_per_minute = 100000\n",
        )
        logins = asyncio.run(make_users(cluster.nodes[0].settings, args.users))
        start(cluster)
        ports = [node.ports["smtp"] for node in cluster.nodes]
        before = stored(cluster.database_url)
        latencies: dict[int, list[float]] = defaultdict(list)
        errors: list[str] = []
        lock = threading.Lock()
        next_message = iter(range(args.n))

        def connection(index: int) -> None:
            node = index % len(ports)
            while True:
                batch = []
                with lock:
                    for _ in range(args.per_session):
                        i = next(next_message, None)
                        if i is None:
                            break
                        batch.append(i)
                if not batch:
                    return
                try:
                    client = Client(ports[node])
                    for i in batch:
                        rcpt = logins[i % len(logins)]
                        took = client.send(sender_of(i), rcpt, make_message(i, rcpt))
                        with lock:
                            latencies[node].append(took)
                    client.close()
                except Exception as error:
                    with lock:
                        errors.append(f"node {node}: {type(error).__name__}: {error}")

        began = time.perf_counter()
        threads = [threading.Thread(target=connection, args=(i,)) for i in range(args.c)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        accepted_at = time.perf_counter()
        accepted = sum(len(v) for v in latencies.values())
        while stored(cluster.database_url) - before < accepted:
            time.sleep(0.05)
        visible_at = time.perf_counter()
        print(
            f"{args.nodes} nodes x {args.workers} worker(s), PostgreSQL, blob_store = database; "
            f"{args.n} messages over {args.c} connections ({args.per_session} per session)"
        )
        print(f"accepted      {accepted} ({len(errors)} errors)")
        print(f"accept        {accepted / (accepted_at - began):7.1f} msg/s")
        print(f"end-to-end    {accepted / (visible_at - began):7.1f} msg/s")
        every = sorted(t for v in latencies.values() for t in v)
        if every:
            p99 = every[min(len(every) - 1, int(len(every) * 0.99))]
            print(
                f"latency p50   {statistics.median(every) * 1000:7.1f} ms, p99 {p99 * 1000:.1f} ms"
            )
        for node in range(len(ports)):
            mine = sorted(latencies[node])
            if mine:
                print(
                    f"node {cluster.nodes[node].name}        {len(mine):5d} msgs, "
                    f"{len(mine) / (accepted_at - began):6.1f} msg/s, "
                    f"p50 {statistics.median(mine) * 1000:.1f} ms"
                )
        for error in errors[:5]:
            print("error:", error)
        cluster.stop()
    finally:
        dns.stop()
        pg.stop()


if __name__ == "__main__":
    main()
