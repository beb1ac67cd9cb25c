"""SMTP ingest benchmark: N ~20 kB messages over K connections to a real `caducee serve`.

Sets up a throwaway installation (SQLite by default, or PostgreSQL with --postgres), starts the
server as a subprocess, sends the load with a lock-step raw-socket client (several messages per
connection, RSET between them), and prints:

- accept rate: messages answered 250 after DATA per second;
- end-to-end rate: messages visible in the mailboxes per second (IMAP STATUS over STARTTLS,
  polled once every message is accepted, as the yardstick does);
- latency p50 / p99 (MAIL FROM → final 250), and the server's memory (RSS, PSS) under load;
- the server's CPU time per message (all its processes): a figure the machine's other work
  changes less than the rates.

Encryption and durable commits are on, as in production, and every message is checked with SPF,
DKIM and DMARC: the senders' domains publish SPF and DMARC records on a local authoritative DNS
server started by the bench (see ``sender_dns``), and the envelope sender is the From: address,
so messages pass SPF and DMARC as a practice's correspondents' mail does. With --yardstick, the
same server is also driven by the peers' script (../shared/peers/smtp_load.py) for a
like-for-like comparison with Postfix → Dovecot (382 msg/s end-to-end on this machine kind).

    python -m bench.smtp_ingest [-n 5000] [-c 8] [--per-session 50] [--users 10] [--postgres]
                                [--workers N]

With ``--workers 2`` the server runs two worker processes (``[server] workers``); memory is then
summed over the workers, and each one's peak RSS is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import imaplib
import json
import os
import quopri
import random
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tests.dnsserver import LocalDNS

from caducee.app import open_app
from caducee.cli.setup import initialise
from caducee.config import Settings, load_settings
from caducee.domain.model import Role
from caducee.services import accounts, mailboxes
from caducee.services.app_passwords import create_app_password

DOMAIN = "bench.test"
IMAP_PASSWORDS = "bench-imap-passwords.json"  # in the data dir: the recipients' app passwords
PEERS = Path(__file__).resolve().parents[2] / "shared" / "peers"
WORDS = [
    "patient",
    "consultation",
    "bilan",
    "sanguin",
    "tension",
    "suivi",
    "courrier",
    "compte",
    "rendu",
    "examen",
    "traitement",
    "posologie",
    "comprimé",
    "matin",
    "soir",
    "allergie",
    "vaccination",
    "rappel",
]


def _own_message(i: int, rcpt: str, size: int = 20_000) -> bytes:
    """A ~20 kB French message shaped like the yardstick's: multipart/mixed, a
    quoted-printable text part and a base64 PDF attachment (~4 kB)."""
    rng = random.Random(i)
    lines, length = [], 0
    while length < size - 6_500:
        line = " ".join(rng.choice(WORDS) for _ in range(9))
        lines.append(line)
        length += len(line) + 2
    text = quopri.encodestring("\n".join(lines).encode()).replace(b"\n", b"\r\n")
    pdf = b"%PDF-1.4\n" + rng.randbytes(4096 - 9)
    attachment = base64.encodebytes(pdf).replace(b"\n", b"\r\n")
    boundary = f"=_bench_{i}".encode()
    return (
        f"From: Dr Bench <dr.bench@ailleurs.test>\r\nTo: <{rcpt}>\r\n"
        f"Subject: =?utf-8?q?Compte_rendu_n=C2=B0{i}?=\r\n"
        f"Message-ID: <{i}.{time.time_ns()}@ailleurs.test>\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="=_bench_{i}"\r\n\r\n'
    ).encode() + b"".join(
        [
            b"--" + boundary + b"\r\nContent-Type: text/plain; charset=utf-8\r\n",
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + text + b"\r\n",
            b"--" + boundary + b'\r\nContent-Type: application/pdf; name="cr.pdf"\r\n',
            b"Content-Transfer-Encoding: base64\r\n\r\n" + attachment,
            b"--" + boundary + b"--\r\n",
        ]
    )


def _load_mailgen() -> Any:
    """The peers' message generator (../shared/peers/mailgen.py), when present: the same
    corpus, byte for byte, as the Postfix → Dovecot figures."""
    if not (PEERS / "mailgen.py").exists():
        return None
    sys.path.insert(0, str(PEERS))
    try:
        import mailgen  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(PEERS))
    return mailgen


_MAILGEN = _load_mailgen()
CORPUS = "yardstick (../shared/peers/mailgen.py)" if _MAILGEN else "own (bench/smtp_ingest.py)"
#: The domains the load's messages come from (envelope and From:).
SENDER_DOMAINS = {"ailleurs.test", *(_MAILGEN.DOMAINS if _MAILGEN else ())}


def sender_dns() -> LocalDNS:
    """An authoritative DNS server for the senders' domains, publishing SPF (the load comes
    from 127.0.0.1) and DMARC with an hour's TTL, as real senders' domains do.

    Without it the server would ask the machine's resolver, which here answers NXDOMAIN
    without an SOA record: such answers must not be cached (RFC 2308 §5), so every message
    would pay two DNS round trips that no real sender's mail pays.
    """
    server = LocalDNS(ttl=3600)
    for domain in sorted(SENDER_DOMAINS):
        server.add(domain, "TXT", "v=spf1 ip4:127.0.0.0/8 -all")
        server.add(f"_dmarc.{domain}", "TXT", "v=DMARC1; p=none")
    server.start()
    return server


def sender_of(i: int) -> str:
    """The envelope sender of message ``i``: its From: address."""
    return str(_MAILGEN.sender(i)[1]) if _MAILGEN else "dr.bench@ailleurs.test"


def make_message(i: int, rcpt: str) -> bytes:
    return bytes(_MAILGEN.make_message(i, rcpt)) if _MAILGEN else _own_message(i, rcpt)


class Client:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")
        self.expect(220)
        self.command("EHLO bench.client", 250)

    def expect(self, code: int) -> None:
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("closed")
            if line[3:4] != b"-":
                break
        if int(line[:3]) != code:
            raise RuntimeError(f"expected {code}, got {line!r}")

    def command(self, line: str, code: int) -> None:
        self.sock.sendall(line.encode() + b"\r\n")
        self.expect(code)

    def send(self, sender: str, rcpt: str, data: bytes) -> float:
        started = time.perf_counter()
        self.command(f"MAIL FROM:<{sender}>", 250)
        self.command(f"RCPT TO:<{rcpt}>", 250)
        self.command("DATA", 354)
        body = data.replace(b"\r\n.", b"\r\n..")
        self.sock.sendall(body + b".\r\n")
        self.expect(250)
        return time.perf_counter() - started

    def close(self) -> None:
        try:
            self.command("QUIT", 221)
        finally:
            self.sock.close()


class ImapCounter:
    """Messages visible in IMAP: STATUS INBOX (MESSAGES) of every recipient, over STARTTLS
    (verified against the installation's test CA), one connection each kept open."""

    def __init__(self, settings: Settings) -> None:
        bound = json.loads((settings.run_dir / "listeners.json").read_text())
        port = int(bound["imap"].rsplit(":", 1)[1])
        context = ssl.create_default_context(cafile=str(settings.tls_dir / "ca.crt"))
        passwords = json.loads((settings.data_dir / IMAP_PASSWORDS).read_text())
        self.connections: list[imaplib.IMAP4] = []
        for login, password in passwords.items():
            connection = imaplib.IMAP4("127.0.0.1", port)
            connection.host = settings.hostname  # the name the certificate is checked against
            connection.starttls(context)
            connection.login(login, password)
            self.connections.append(connection)

    def count(self) -> int:
        total = 0
        for connection in self.connections:
            status, data = connection.status("INBOX", "(MESSAGES)")
            if status != "OK" or not isinstance(data[0], bytes):
                raise RuntimeError(f"STATUS failed: {status} {data!r}")
            total += int(data[0].decode().rsplit("MESSAGES", 1)[1].strip(" )"))
        return total

    def close(self) -> None:
        for connection in self.connections:
            with contextlib.suppress(OSError, imaplib.IMAP4.error):
                connection.logout()


def _count_command(settings: Settings) -> str:
    """A shell command printing the number of stored messages, cheap enough to poll (it does
    not import Caducée: the yardstick runs it until every accepted message is visible)."""
    if settings.is_sqlite:
        query = (
            f"import sqlite3; db = sqlite3.connect('{settings.data_dir / 'db.sqlite3'}'); "
            "print(db.execute('SELECT count(*) FROM messages').fetchone()[0])"
        )
    else:
        url = settings.database_url.replace("postgresql+psycopg://", "postgresql://")
        query = (
            f"import psycopg; db = psycopg.connect('{url}'); "
            "print(db.execute('SELECT count(*) FROM messages').fetchone()[0])"
        )
    return f'{sys.executable} -c "{query}"'


def memory_mb(pid: int) -> tuple[float, float]:
    rss = pss = 0.0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("Pss:"):
                pss = int(line.split()[1]) / 1024
    except OSError:
        pass
    return rss, pss


def serving_pids(pid: int) -> list[int]:
    """The processes serving: ``pid`` itself, or its worker processes when it supervises."""
    workers = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"--worker-index" in cmdline:
            workers.append(int(entry))
    return sorted(workers) or [pid]


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            tree.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    return tree


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of ``pid`` and its descendants (the workers, their MIME pools,
    those that ended included): what the node spent, whatever else the machine was doing."""
    tree, total, todo = _children(), 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, and those of its children that ended (cutime, cstime)
        total += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
        todo.extend(tree.get(current, []))
    return total


async def prepare(
    data: Path, users: int, database_url: str, dns_resolver: str, *, workers: int = 1
) -> Settings:
    settings = Settings(
        data_dir=data,
        hostname=f"mail.{DOMAIN}",
        database_url=database_url,
        blob_store="database" if database_url else "files",
        dns_resolver=dns_resolver,
        workers=workers,
    )
    settings.listeners = {"smtp": "127.0.0.1:0", "imap": "127.0.0.1:0"}
    await initialise(
        settings,
        practice_name="Bench",
        domain=DOMAIN,
        mailbox_limit=users + 5,
        admin_login=f"admin@{DOMAIN}",
        admin_password="Caducee-Bench-Adm1n-2026!",
    )
    passwords: dict[str, str] = {}
    async with open_app(settings) as app:
        for u in range(1, users + 1):
            await accounts.add_account(
                app,
                accounts.NewAccount(
                    login=f"user{u}@{DOMAIN}",
                    last_name=f"User{u}",
                    role=Role.PRATICIEN,
                    password="Bench-User-2026!",
                ),
            )
            await mailboxes.set_quota(app, f"user{u}@{DOMAIN}", 100 * 1024**3)
            passwords[f"user{u}@{DOMAIN}"] = await create_app_password(
                app, f"user{u}@{DOMAIN}", "bench"
            )
    (data / IMAP_PASSWORDS).write_text(json.dumps(passwords))
    with (data / "caducee.toml").open("a") as config:  # a load generator on one address
        config.write(
            "\n[limits]\nconnections_per_address = 1000\nconnections_per_minute = 100000\n"
        )
    return load_settings(data)


def start_server(settings: Settings) -> tuple[subprocess.Popen[bytes], int]:
    ready = settings.run_dir / "listeners.json"
    server = subprocess.Popen(
        [sys.executable, "-m", "caducee", "serve", "--data", str(settings.data_dir)],
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    return server, int(json.loads(ready.read_text())["smtp"].rsplit(":", 1)[1])


def run_load(port: int, settings: Settings, args: argparse.Namespace, pid: int) -> None:
    visible = ImapCounter(settings)
    baseline = visible.count()
    messages = [make_message(i, f"user{i % args.users + 1}@{DOMAIN}") for i in range(args.n)]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    next_index = iter(range(args.n))
    peak = [0.0, 0.0]
    pids = serving_pids(pid)
    peaks = {p: 0.0 for p in pids}

    def worker() -> None:
        while True:
            client = Client(port)
            sent = 0
            try:
                while sent < args.per_session:
                    with lock:
                        i = next(next_index, None)
                    if i is None:
                        return
                    latency = client.send(
                        sender_of(i), f"user{i % args.users + 1}@{DOMAIN}", messages[i]
                    )
                    with lock:
                        latencies.append(latency)
                    sent += 1
                    client.command("RSET", 250)
            except Exception as error:
                with lock:
                    errors.append(str(error)[:200])
                return
            finally:
                client.close()

    def sample_memory(stop: threading.Event) -> None:
        while not stop.is_set():
            total_rss = total_pss = 0.0
            for p in pids:
                rss, pss = memory_mb(p)
                peaks[p] = max(peaks[p], rss)
                total_rss, total_pss = total_rss + rss, total_pss + pss
            peak[0], peak[1] = max(peak[0], total_rss), max(peak[1], total_pss)
            stop.wait(0.2)

    idle = [memory_mb(p) for p in pids]
    idle_rss, idle_pss = sum(m[0] for m in idle), sum(m[1] for m in idle)
    stop = threading.Event()
    sampler = threading.Thread(target=sample_memory, args=(stop,))
    sampler.start()
    cpu_before = cpu_seconds(pid)
    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(args.c)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    accepted_at = time.perf_counter()
    ok = len(latencies)
    seen = baseline
    while seen < baseline + ok and time.perf_counter() - accepted_at < 120:
        seen = visible.count()
        if seen < baseline + ok:
            time.sleep(0.01)
    visible_at = time.perf_counter()
    cpu_used = cpu_seconds(pid) - cpu_before
    visible.close()
    stop.set()
    sampler.join()
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(len(latencies) * q))] * 1000  # noqa: E731
    print(
        f"messages      {ok} accepted of {args.n}, {seen - baseline} visible in IMAP, "
        f"{len(errors)} errors "
        f"({errors[0] if errors else 'none'})"
    )
    print(f"accept        {ok / (accepted_at - started):7.1f} msg/s")
    print(
        f"end-to-end    {ok / (visible_at - started):7.1f} msg/s "
        f"(ratio to Postfix → Dovecot 382 msg/s: {ok / (visible_at - started) / 382:.2f})"
    )
    print(f"latency       p50 {p(0.5):.1f} ms   p99 {p(0.99):.1f} ms")
    print(
        f"cpu           {cpu_used * 1000 / max(ok, 1):.2f} ms per message "
        f"(the server's processes: {cpu_used:.1f} s; load average {os.getloadavg()[0]:.1f})"
    )
    print(
        f"memory        idle RSS {idle_rss:.0f} MB / PSS {idle_pss:.0f} MB; "
        f"under load peak RSS {peak[0]:.0f} MB / PSS {peak[1]:.0f} MB"
        + (" (all workers)" if len(pids) > 1 else "")
    )
    if len(pids) > 1:
        print("memory        peak RSS per worker " + ", ".join(f"{peaks[p]:.0f} MB" for p in pids))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("-c", type=int, default=8)
    parser.add_argument("--per-session", type=int, default=50)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--postgres", action="store_true", help="throwaway PostgreSQL cluster")
    parser.add_argument(
        "--workers", type=int, default=1, help="[server] workers of the server (0: one per core)"
    )
    parser.add_argument(
        "--yardstick",
        action="store_true",
        help="also run ../shared/peers/smtp_load.py against the same server",
    )
    parser.add_argument(
        "--antivirus",
        action="store_true",
        help="scan every message with a local clamd (tests.clamd: the test signatures only; "
        "a full ClamAV database scans slower)",
    )
    args = parser.parse_args()
    cluster = None
    database_url = ""
    if args.postgres:
        from tests.pgcluster import PgCluster, find_pg_bin

        bin_dir = find_pg_bin()
        if bin_dir is None:
            sys.exit("PostgreSQL binaries not found")
        cluster = PgCluster(bin_dir)
        cluster.start()
        database_url = cluster.url(cluster.create_database())
    with tempfile.TemporaryDirectory(prefix="caducee-bench-") as tmp:
        dns = sender_dns()
        settings = asyncio.run(
            prepare(
                Path(tmp) / "data",
                args.users,
                database_url,
                dns.resolver_spec,
                workers=args.workers,
            )
        )
        scanner = None
        if args.antivirus:
            from tests.clamd import start_clamd

            scanner = start_clamd(Path(tmp) / "clamd")
            os.environ["CADUCEE_CLAMD"] = scanner.address  # read by the server it starts
        server, port = start_server(settings)
        try:
            backend = "PostgreSQL" if args.postgres else "SQLite"
            if scanner is not None:
                backend += " + ClamAV (clamd, test signatures)"
            print(
                f"Caducée SMTP ingest — {backend}, {args.n} messages, {args.c} connections, "
                f"{args.per_session} per connection, {args.users} recipients, "
                f"{args.workers} worker process(es); "
                f"messages: {CORPUS}"
            )
            run_load(port, settings, args, server.pid)
            script = PEERS / "smtp_load.py"
            if args.yardstick and script.exists():
                count = _count_command(settings)
                subprocess.run(
                    [
                        sys.executable,
                        str(script),
                        "--port",
                        str(port),
                        "-n",
                        str(args.n),
                        "-c",
                        str(args.c),
                        "--per-session",
                        str(args.per_session),
                        "--users",
                        str(args.users),
                        "--rcpt-fmt",
                        f"user{{u}}@{DOMAIN}",
                        "--count-cmd",
                        count,
                        "--mem-pid",
                        str(server.pid),
                        "--label",
                        "caducee",
                    ],
                    check=False,
                    env={**os.environ, "PYTHONPATH": str(Path.cwd())},
                )
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
            dns.stop()
            if scanner is not None:
                scanner.stop()
            if cluster is not None:
                cluster.stop()


if __name__ == "__main__":
    main()
