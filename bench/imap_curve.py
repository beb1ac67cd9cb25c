"""IMAP read path as the mailbox grows (issue 17): 1,000 / 10,000 / 100,000 messages of the shared
corpus (``../shared/peers/mailgen.py``), each size in its own mailbox of one data dir, served by
a real ``caducee serve`` started afresh for each size and measured with the shared yardstick
``../shared/peers/imap_bench.py`` (STARTTLS): SELECT, full sync (first run after start: cold;
then warm), SEARCH SUBJECT / FROM / TEXT, FETCH of 100 bodies, and the server's memory (RSS
after the commands, and its peak; the node runs one worker process, ``CADUCEE_WORKERS=1``, so
that this is the memory of the process serving the mailbox, not of a supervisor).

With ``--dovecot PEERS`` the peer Dovecot of the yardstick (a writable copy of
``../shared/peers`` with its instances set up, ``ctl.sh``) gets the same N messages through its
LMTP listener (``smtplib.LMTP``, messages 0..N-1 as Caducée's mailbox of that size) and is
measured alternately with Caducée, restarted before each run like Caducée.

With ``--compare DATA=SRC`` a second Caducée (another data dir, served by the code in SRC, e.g.
a worktree of the base commit) is measured too, alternately: before / after / Dovecot.

Filling is done once per data dir (``--data``; messages delivered 1,000 at a time, as the
delivery pipeline commits them in groups), then reused: ``--fill-only`` fills and stops.

Prints figures; never decides pass or fail.

    python -m bench.imap_curve --data /tmp/curve [--sizes 1000,10000,100000] [--rounds 2]
        [--dovecot /tmp/peers] [--compare /tmp/curve-base=/work/wt-base/src] [--fill-only]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import smtplib
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.serving import clean_env, prepare

from bench.imap_sync import PEERS, _mailgen
from caducee.app import open_app
from caducee.config import Settings, load_settings
from caducee.domain.model import Role
from caducee.server import listeners_file
from caducee.services import accounts, cpu_pool, practices, text_index
from caducee.services.app_passwords import create_app_password
from caducee.services.delivery import deliver_local
from caducee.store.keyring import create_master_key_file

PASSWORDS = "bench-curve.json"
BATCH = 1000
#: SEARCH TEXT is left out by default (``--metrics`` adds it): issue 17 keeps it as it is, and
#: a text extraction that waits for the node's worker processes can hold a run for minutes.
METRICS = "select,sync,search_subject,search_from,fetch100"
#: The peer's users (they exist in its passwd file), one per size: wiped, then filled.
DOVECOT_USERS = {1000: "user8@bench.test", 10000: "user9@bench.test"}
DOVECOT_DEFAULT_USER = "imapbench@bench.test"


def dovecot_user(size: int) -> str:
    return DOVECOT_USERS.get(size, DOVECOT_DEFAULT_USER)


def user_of(size: int) -> str:
    return f"curve{size}@bench.test"


# --- filling ---------------------------------------------------------------------------------


async def _fill(settings: Settings, sizes: list[int]) -> dict[str, str]:
    mailgen = _mailgen()
    # the indexing below runs in this process's threads: worker processes started from a
    # ``python -m bench...`` main module re-import it and its test helpers (and hung here)
    cpu_pool._broken = True
    path = settings.data_dir / PASSWORDS
    passwords: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    async with open_app(settings, upgrade=True) as app:
        if not passwords:
            await practices.create_practice(app, "Bench", ["bench.test"], mailbox_limit=19)
        for size in sizes:
            user = user_of(size)
            if user in passwords:
                continue
            await accounts.add_account(
                app,
                accounts.NewAccount(
                    login=user, last_name="Bench", role=Role.PRATICIEN, password="Bench-Pass-2026!"
                ),
            )
            started = time.perf_counter()
            for first in range(0, size, BATCH):
                await asyncio.gather(
                    *(
                        deliver_local(app, mailgen.make_message(i, user), [user])
                        for i in range(first, min(size, first + BATCH))
                    )
                )
            took = time.perf_counter() - started
            print(f"{user}: {size} messages stored in {took:.1f} s ({size / took:.0f} msg/s)")
            started = time.perf_counter()
            while await text_index.index_unindexed(app, limit=5000):
                pass  # what the node's maintenance task does in the background
            print(f"{user}: indexed for SEARCH TEXT in {time.perf_counter() - started:.1f} s")
            passwords[user] = await create_app_password(app, user, "bench")
            path.write_text(json.dumps(passwords))
    return passwords


def fill(data_dir: Path, sizes: list[int]) -> dict[str, str]:
    if (data_dir / "caducee.toml").exists():
        settings = load_settings(data_dir)
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        settings = Settings(data_dir=data_dir)
        create_master_key_file(settings)
        settings.hostname = "localhost"
        prepare(settings, {"imap": "127.0.0.1:0"}, migrate=False)
    return asyncio.run(_fill(settings, sizes))


# --- measuring -------------------------------------------------------------------------------


def _rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in kB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def yardstick(
    port: int, user: str, password: str, runs: int, label: str, *, cafile: str | None
) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        tls = ["--cafile", cafile] if cafile else ["--insecure"]
        subprocess.run(
            [
                sys.executable, str(PEERS / "imap_bench.py"),
                "--host", "localhost" if cafile else "127.0.0.1", "--port", str(port),
                "--starttls", *tls, "--user", user, "--password", password,
                "--runs", str(runs), "--only", METRICS, "--label", label,
                "--json", out.name, "--quiet",
            ],
            check=True,
            timeout=3600,
        )  # fmt: skip
        return dict(json.loads(Path(out.name).read_text()))


def measure_caducee(
    data_dir: Path, src: str | None, size: int, runs: int, label: str
) -> dict[str, Any]:
    passwords = json.loads((data_dir / PASSWORDS).read_text())
    settings = load_settings(data_dir)
    listeners_file(settings).unlink(missing_ok=True)
    env = clean_env()
    # one serving process, no supervisor: the RSS measured is the process serving the mailbox
    env["CADUCEE_WORKERS"] = "1"
    if src is not None:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    with (data_dir / "serve.err").open("ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "caducee", "serve", "--data", str(data_dir)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )
        try:
            deadline = time.monotonic() + 120
            while not listeners_file(settings).exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"serve did not start (see {data_dir}/serve.err)")
                time.sleep(0.05)
            bound = json.loads(listeners_file(settings).read_text())
            port = int(bound["imap"].rpartition(":")[2])
            idle_rss, _ = _rss_kb(proc.pid)
            result = yardstick(
                port,
                user_of(size),
                passwords[user_of(size)],
                runs,
                label,
                cafile=str(settings.tls_dir / "ca.crt"),
            )
            rss, peak = _rss_kb(proc.pid)
            result["rss_mb"] = {
                "idle": idle_rss // 1024,
                "after": rss // 1024,
                "peak": peak // 1024,
            }
            return result
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def _ctl(peers: Path, *args: str) -> None:
    subprocess.run([str(peers / "ctl.sh"), *args], check=True, stdout=subprocess.DEVNULL)


def _dovecot_count(user: str, port: int = 10143) -> int:
    import imaplib

    client = imaplib.IMAP4("127.0.0.1", port)
    try:
        client.login(user, "benchpass")
        typ, data = client.select("INBOX", readonly=True)
        return int(data[0] or 0) if typ == "OK" else 0
    finally:
        client.logout()


def _first_subject(user: str) -> str | None:
    """The first message's Message-ID if it is the corpus's message 0 (else None)."""
    import imaplib

    client = imaplib.IMAP4("127.0.0.1", 10143)
    try:
        client.login(user, "benchpass")
        client.select("INBOX", readonly=True)
        _, data = client.fetch("1", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        item = data[0]
        text = item[1].decode("latin-1") if isinstance(item, tuple) else ""
        wanted = _mailgen().make_message(0, user).decode("latin-1")
        mid = [line for line in wanted.splitlines() if line.lower().startswith("message-id")]
        return text if mid and mid[0].split(":", 1)[1].strip() in text else None
    finally:
        client.logout()


def fill_dovecot(peers: Path, size: int) -> None:
    """Messages 0..size-1 in the INBOX of the peer's user for that size, through Dovecot's
    LMTP listener (a user with other messages is wiped first)."""
    user = dovecot_user(size)
    count = _dovecot_count(user)
    if count > size or (count and count < size and _first_subject(user) is None):
        _ctl(peers, "wipe-user", user.partition("@")[0])
        count = 0
    if count == size:
        return
    mailgen = _mailgen()
    started = time.perf_counter()

    def send(indices: range) -> None:
        with smtplib.LMTP("127.0.0.1", 2424) as lmtp:
            for i in indices:
                lmtp.sendmail("loadgen@bench.test", [user], mailgen.make_message(i, user))

    from concurrent.futures import ThreadPoolExecutor

    chunks = [range(i, min(size, i + 500)) for i in range(count, size, 500)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, chunks))
    took = time.perf_counter() - started
    print(f"dovecot: {size - count} messages delivered by LMTP in {took:.1f} s")


def measure_dovecot(peers: Path, size: int, runs: int) -> dict[str, Any]:
    _ctl(peers, "restart")  # cold like a freshly started Caducée (the OS cache stays warm)
    user = dovecot_user(size)
    return yardstick(10143, user, "benchpass", runs, f"dovecot-{size}", cafile=None)


# --- the curve -------------------------------------------------------------------------------


def _ms(result: dict[str, Any], metric: str) -> str:
    item = result.get(metric)
    if not isinstance(item, dict) or item.get("ms") is None:
        return "-"
    return f"{item['ms']['median']:.1f}"


def row_of(name: str, size: int, result: dict[str, Any]) -> str:
    sync = result.get("sync") or {}
    rss = result.get("rss_mb") or {}
    cells = [
        name,
        f"{size:,}",
        _ms(result, "select"),
        f"{sync.get('cold_ms', 0):.0f}",
        _ms(result, "sync"),
        _ms(result, "search_subject"),
        _ms(result, "search_from"),
        _ms(result, "search_text"),
        _ms(result, "fetch100"),
        f"{rss.get('after', '-')} / {rss.get('peak', '-')}",
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| server | messages | SELECT | sync cold | sync warm | SEARCH SUBJECT | SEARCH FROM "
    "| SEARCH TEXT | FETCH 100 bodies | RSS after / peak (MB) |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="data dir, filled once, reused")
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per yardstick call")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per size")
    parser.add_argument("--dovecot", type=Path, help="the peers' writable copy (ctl.sh)")
    parser.add_argument("--compare", help="DATA=SRC: another data dir served by the code in SRC")
    parser.add_argument("--fill-only", action="store_true")
    parser.add_argument("--metrics", help="the yardstick's --only (default: METRICS)")
    parser.add_argument("--json", type=Path, help="write every result here")
    args = parser.parse_args()
    global METRICS
    METRICS = args.metrics or METRICS
    sizes = sorted(int(s) for s in args.sizes.split(","))
    fill(args.data, sizes)
    if args.fill_only:
        return
    compare: tuple[Path, str] | None = None
    if args.compare:
        data, _, src = args.compare.partition("=")
        compare = (Path(data), src)
    results: list[tuple[str, int, dict[str, Any]]] = []
    try:
        for size in sizes:
            if args.dovecot:
                _ctl(args.dovecot, "start")
                fill_dovecot(args.dovecot, size)
            for rnd in range(args.rounds):
                if compare is not None:
                    got = measure_caducee(compare[0], compare[1], size, args.runs, "before")
                    results.append(("caducee before", size, got))
                    print(row_of("caducee before", size, got), flush=True)
                got = measure_caducee(args.data, None, size, args.runs, f"caducee-{size}")
                results.append(("caducee", size, got))
                print(row_of("caducee", size, got), flush=True)
                if args.dovecot:
                    got = measure_dovecot(args.dovecot, size, args.runs)
                    results.append(("dovecot", size, got))
                    print(row_of("dovecot", size, got), flush=True)
                print(f"(size {size:,}, round {rnd + 1} done)", flush=True)
    finally:
        if args.dovecot:
            _ctl(args.dovecot, "stop")
    print(HEADER)
    for name, size, result in results:
        print(row_of(name, size, result))
    if args.json:
        args.json.write_text(json.dumps([[n, s, r] for n, s, r in results], indent=1))


if __name__ == "__main__":
    main()
