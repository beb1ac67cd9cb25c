"""Patient portal load benchmark (issue #7): N pickups on a real ``caducee serve``, then N
concurrent patients each doing the whole pickup — landing, ask a code, read it from the SMS
provider (the development ``fichier`` provider's outbox), enter it, read the message, download
its attachment. Prints total time, p50/p99 per pickup and errors; never decides pass or fail.

    python -m bench.portal_pickups [-n 200] [--backend sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from tests.health.pickups import DOCTOR, health_message
from tests.pgcluster import PgCluster, find_pg_bin
from tests.services.helpers import PASSWORD
from tests.serving import clean_env, prepare

from caducee.app import open_app
from caducee.config import Settings
from caducee.domain.model import Role
from caducee.health import pickup
from caducee.health.sms_providers import outbox_path
from caducee.server import listeners_file
from caducee.services import accounts, practices
from caducee.store.keyring import create_master_key_file
from caducee.tls import CA_CERT

CODE = re.compile(r"est (\d{6})\.")
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
PART = re.compile(r'href="/portail/[^/]+/pj/(\d+)"')


async def _deposit(settings: Settings, count: int) -> list[tuple[str, str]]:
    """``count`` pickups; (link path, mobile) of each."""
    made: list[tuple[str, str]] = []
    async with open_app(settings) as app:
        practice = await practices.create_practice(app, "Cabinet Bench", ["cabinet.test"])
        _account, mailbox = await accounts.add_account(
            app,
            accounts.NewAccount(
                login=DOCTOR,
                first_name="Jeanne",
                last_name="Martin",
                role=Role.PRATICIEN,
                password=PASSWORD,
            ),
        )
        for n in range(count):
            mobile = f"+3361{n:07d}"
            created = await pickup.create_pickup(
                app,
                practice_id=practice.id,
                sender_mailbox_id=mailbox.id,
                sender_address=DOCTOR,
                patient_email=f"patient{n}@patient-mail.test",
                patient_mobile=mobile,
                raw_message=health_message(f"<bench-{n}@cabinet.test>"),
            )
            made.append((created.link.partition("/portail/")[1] + created.link.split("/")[-1],
                         mobile))  # fmt: skip
    return made


async def _code_for(outbox: Path, mobile: str) -> str:
    for _ in range(200):
        if outbox.exists():
            for line in reversed(outbox.read_text("utf-8").splitlines()):
                entry = json.loads(line)
                if entry["to"] == mobile:
                    found = CODE.search(entry["text"])
                    if found:
                        return found.group(1)
        await asyncio.sleep(0.05)
    raise RuntimeError("no SMS")


async def _patient(base: str, ca: str, path: str, mobile: str, outbox: Path) -> float:
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, verify=ca, timeout=60) as client:
        landing = await client.get(path)
        csrf = CSRF.search(landing.text)
        assert landing.status_code == 200 and csrf, landing.status_code
        asked = await client.post(f"{path}/code", data={"csrf": csrf.group(1)})
        assert asked.status_code == 200, asked.status_code
        code = await _code_for(outbox, mobile)
        done = await client.post(f"{path}/verifier", data={"csrf": csrf.group(1), "code": code})
        assert done.status_code == 303, done.status_code
        page = await client.get(f"{path}/message")
        part = PART.search(page.text)
        assert page.status_code == 200 and part, page.status_code
        download = await client.get(f"{path}/pj/{part.group(1)}")
        assert download.status_code == 200 and download.content.startswith(b"%PDF")
    return time.perf_counter() - started


async def _load(base: str, ca: str, made: list[tuple[str, str]], outbox: Path) -> None:
    started = time.perf_counter()
    results = await asyncio.gather(
        *(_patient(base, ca, path, mobile, outbox) for path, mobile in made),
        return_exceptions=True,
    )
    total = time.perf_counter() - started
    times = sorted(r for r in results if isinstance(r, float))
    errors = [r for r in results if not isinstance(r, float)]
    print(f"{len(made)} concurrent pickups in {total:.1f} s, errors: {len(errors)}")
    if times:
        p99 = times[max(0, int(len(times) * 0.99) - 1)]
        print(f"  per pickup: p50 {statistics.median(times):.2f} s   p99 {p99:.2f} s")
    for error in errors[:5]:
        print(f"  error: {type(error).__name__}: {error}")


def run(count: int, backend: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", hostname="mail.cabinet.test")
        settings.data_dir.mkdir(parents=True)
        settings.deployment = "development"
        settings.sms_provider = "fichier"
        cluster = None
        if backend == "postgres":
            bin_dir = find_pg_bin()
            assert bin_dir is not None, "PostgreSQL binaries not found"
            cluster = PgCluster(bin_dir)
            cluster.start()
            settings.database_url = cluster.url(cluster.create_database())
            settings.blob_store = "database"
        create_master_key_file(settings)
        prepare(settings, {"https": "127.0.0.1:0"})
        made = asyncio.run(_deposit(settings, count))
        proc = subprocess.Popen(
            [sys.executable, "-m", "caducee", "serve", "--data", str(settings.data_dir)],
            stdout=subprocess.DEVNULL,
            env=clean_env(),
        )
        try:
            deadline = time.monotonic() + 30
            while not listeners_file(settings).exists():
                assert proc.poll() is None and time.monotonic() < deadline, "serve failed"
                time.sleep(0.05)
            port = json.loads(listeners_file(settings).read_text())["https"].rpartition(":")[2]
            ca = str(settings.tls_dir / CA_CERT)
            base = f"https://localhost:{port}"
            print(f"{backend}: {count} pickups deposited; {count} patients start")
            asyncio.run(_load(base, ca, made, outbox_path(settings)))
        finally:
            proc.terminate()
            proc.wait(timeout=15)
            if cluster is not None:
                cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    run(args.n, args.backend)


if __name__ == "__main__":
    main()
