"""IMAP benchmark: a 10,000-message mailbox (the shared corpus, ``../shared/peers/mailgen.py``)
served by a real ``caducee serve``, measured with the shared yardstick
``../shared/peers/imap_bench.py`` — the same commands as measured on Dovecot on this machine kind
(login, SELECT, full sync, SEARCH SUBJECT/FROM/TEXT, FETCH of 100 bodies, IDLE wake-up).

Prints the yardstick's figures; never decides pass or fail.

    python -m bench.imap_sync [-n 10000] [--runs 5] [--backend sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

from tests.pgcluster import PgCluster, find_pg_bin
from tests.serving import clean_env, prepare, wait_listeners

from caducee.app import open_app
from caducee.config import Settings
from caducee.domain.model import Role
from caducee.services import accounts, practices, text_index
from caducee.services.app_passwords import create_app_password
from caducee.services.delivery import deliver_local
from caducee.store.keyring import create_master_key_file


def _peers() -> Path:
    """``../shared/peers`` next to the project (or CADUCEE_PEERS)."""
    import os

    if os.environ.get("CADUCEE_PEERS"):
        return Path(os.environ["CADUCEE_PEERS"])
    here = Path(__file__).resolve().parents[1]
    for base in (here.parent, Path("/work")):
        if (base / "shared" / "peers").is_dir():
            return base / "shared" / "peers"
    return here.parent / "shared" / "peers"


PEERS = _peers()
USER = "imapbench@bench.test"


def _mailgen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mailgen", PEERS / "mailgen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def fill(settings: Settings, count: int) -> str:
    mailgen = _mailgen()
    async with open_app(settings, upgrade=True) as app:
        await practices.create_practice(app, "Bench", ["bench.test"], mailbox_limit=5)
        await accounts.add_account(
            app,
            accounts.NewAccount(
                login=USER, last_name="Bench", role=Role.PRATICIEN, password="Bench-Password-2026!"
            ),
        )
        started = time.perf_counter()
        for first in range(0, count, 200):
            await asyncio.gather(
                *(
                    deliver_local(app, mailgen.make_message(i, USER), [USER])
                    for i in range(first, min(count, first + 200))
                )
            )
        print(f"{count} messages stored in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        indexed = 0
        while True:  # what the node's maintenance task does in the background
            done = await text_index.index_unindexed(app, limit=5000)
            if not done:
                break
            indexed += done
        elapsed = time.perf_counter() - started
        print(f"{indexed} messages indexed for SEARCH TEXT in {elapsed:.1f} s")
        return await create_app_password(app, USER, "bench")


def run(settings: Settings, count: int, runs: int, label: str) -> None:
    create_master_key_file(settings)
    settings.hostname = "localhost"
    prepare(settings, {"imap": "127.0.0.1:0"}, migrate=False)
    password = asyncio.run(fill(settings, count))
    log = settings.data_dir / "serve.err"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "caducee", "serve", "--data", str(settings.data_dir)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=clean_env(),
        )
        try:
            bound = wait_listeners(settings, proc, settings.data_dir)  # type: ignore[arg-type]
            port = bound["imap"].rpartition(":")[2]
            print(f"--- {label}: shared yardstick imap_bench.py (STARTTLS, verified) ---")
            subprocess.run(
                [
                    sys.executable,
                    str(PEERS / "imap_bench.py"),
                    "--host", "localhost", "--port", port, "--starttls",
                    "--cafile", str(settings.tls_dir / "ca.crt"),
                    "--user", USER, "--password", password, "--runs", str(runs),
                    "--label", f"caducee-{label}",
                ],
                check=False,
                timeout=1800,
            )  # fmt: skip
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--count", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    if not (PEERS / "imap_bench.py").exists():
        print(f"yardstick not found in {PEERS}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data")
        settings.data_dir.mkdir()
        if args.backend == "postgres":
            bin_dir = find_pg_bin()
            if bin_dir is None:
                print("PostgreSQL binaries not found")
                return
            cluster = PgCluster(bin_dir)
            cluster.start()
            try:
                settings.database_url = cluster.url(cluster.create_database())
                settings.blob_store = "database"
                run(settings, args.count, args.runs, "postgres")
            finally:
                cluster.stop()
        else:
            run(settings, args.count, args.runs, "sqlite")


if __name__ == "__main__":
    main()
