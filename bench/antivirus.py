"""Antivirus cost (issue 19): what scanning with ClamAV's daemon costs per message.

Starts a real clamd the way the tests do (``tests.clamd.start_clamd``: a signature database
the bench writes itself, nothing downloaded), optionally with ``--signatures N`` synthetic
body signatures and ten times as many hash signatures so that clamd's matcher is nearer the
size of a real database, and prints:

1. clamd's start: wall time until its socket answers, CPU and resident memory spent loading
   the signatures — measured apart, never counted in the per-message figures below;
2. the cost of one scan by message size — the yardstick's 20 kB message, a 1 MB and a 10 MB
   attachment, a ZIP attachment (clamd opens it) — through the client the server uses
   (``caducee.clients.clamd.scan``): wall time per scan (median, p90), clamd's CPU per scan
   (its ``/proc`` counters over the scans) and the node's own CPU per scan (sending the
   stream), after a detection check of each shape (the test marker inside it is found);
3. SMTP ingest to a real ``caducee serve`` with ``[antivirus] clamd`` off and on, in
   alternating runs (and Postfix → Dovecot's with ``--peers DIR``, the yardstick of
   ``../shared/peers``, before each pair): end-to-end rate (messages visible over IMAP),
   latency p50, CPU per message of the node (its process tree, less its idle rate measured
   for 5 s before the load) and of clamd.

    python -m bench.antivirus [-n 2000] [-c 8] [--rounds 3] [--scans 30] [--signatures 0]
                              [--peers /tmp/peers] [--skip-ingest] [--skip-scans]

The figures drift with the machine's load (printed with them): compare the off / on pairs of
one sitting, not runs of different days.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tests.clamd import MARKER, Clamd, find_clamd, start_clamd

from bench.smtp_ingest import (
    DOMAIN,
    Client,
    ImapCounter,
    make_message,
    prepare,
    sender_dns,
    sender_of,
)
from caducee.clients import clamd as clamd_client
from caducee.config import Settings, load_settings

TICKS = os.sysconf("SC_CLK_TCK")


# --- process accounting ----------------------------------------------------------------------


def cpu_seconds(pid: int, *, reaped: bool = False) -> float:
    """User + system CPU of ``pid`` (all its threads), plus its reaped children's."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if reaped:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / TICKS


def descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        children = [p for p, parent in parents.items() if parent == current]
        found.extend(children)
        frontier.extend(children)
    return found


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process tree: the root with its reaped children, and the live ones
    (the node's worker processes, its MIME pool)."""
    return cpu_seconds(pid, reaped=True) + sum(
        cpu_seconds(child, reaped=True) for child in descendants(pid)
    )


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --- clamd -----------------------------------------------------------------------------------


def synthetic_databases(count: int, seed: int = 2026) -> dict[str, str]:
    """``count`` random body signatures (16 to 32 bytes, anywhere in any file) and ten times
    as many MD5 hash signatures: what makes a real database's matcher big, without any real
    signature (none matches mail)."""
    if count <= 0:
        return {}
    rng = random.Random(seed)
    body = "".join(
        f"Bench.Synthetic.Body.{i}:0:*:{rng.randbytes(rng.randint(16, 32)).hex()}\n"
        for i in range(count)
    )
    hashes = "".join(
        f"{rng.randbytes(16).hex()}:{rng.randint(1_000, 5_000_000)}:Bench.Synthetic.Hash.{i}\n"
        for i in range(count * 10)
    )
    return {"bench-synthetic.ndb": body, "bench-synthetic.hdb": hashes}


@dataclass
class Started:
    clamd: Clamd
    seconds: float
    cpu: float
    rss: float


def start(directory: Path, signatures: int) -> Started:
    began = time.perf_counter()
    server = start_clamd(directory, synthetic_databases(signatures), start_timeout=600)
    # The socket exists once the database is loaded; wait until it answers.
    while not asyncio.run(clamd_client.ping(server.address)):
        time.sleep(0.05)
    seconds = time.perf_counter() - began
    return Started(server, seconds, cpu_seconds(server.process.pid), rss_mb(server.process.pid))


# --- scan cost by size -----------------------------------------------------------------------


def _mime(subject: str, parts: list[tuple[str, str, bytes]]) -> bytes:
    """A multipart/mixed message: a short French text, then each (type, name, content) as a
    base64 attachment."""
    boundary = "=_bench_av"
    out = [
        f"From: Dr Bench <dr.bench@ailleurs.test>\r\nTo: <user1@{DOMAIN}>\r\n"
        f"Subject: {subject}\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "Bonjour, veuillez trouver ci-joint le compte rendu.\r\n".encode()
    ]
    for content_type, name, content in parts:
        encoded = base64.encodebytes(content).replace(b"\n", b"\r\n")
        out.append(
            f'--{boundary}\r\nContent-Type: {content_type}; name="{name}"\r\n'
            f'Content-Disposition: attachment; filename="{name}"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n".encode()
            + encoded
        )
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


def _pdf(size: int, rng: random.Random, payload: bytes = b"") -> bytes:
    return b"%PDF-1.4\n" + rng.randbytes(size // 2) + payload + rng.randbytes(size - size // 2)


def _zip(rng: random.Random, payload: bytes = b"") -> bytes:
    """A practice's typical archive: a scanned PDF and four text reports, deflated."""
    buffer = io.BytesIO()
    words = ["patient", "bilan", "sanguin", "tension", "suivi", "traitement", "posologie"]
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("scan.pdf", _pdf(600_000, rng))
        for n in range(4):
            text = " ".join(rng.choice(words) for _ in range(60_000)).encode()
            archive.writestr(f"compte-rendu-{n}.txt", text + (payload if n == 3 else b""))
    return buffer.getvalue()


SHAPES = ("20 kB (yardstick)", "1 MB attachment", "10 MB attachment", "ZIP attachment")


def shape(name: str, index: int, payload: bytes = b"") -> bytes:
    """Message ``index`` of a measured shape (each index its own content: clamd remembers the
    digests of clean content it scanned and skips them, and a practice's mail rarely repeats
    an attachment); with ``payload`` (the test marker), it carries it where a virus would be:
    in the text, inside the attachment, inside a ZIP member."""
    rng = random.Random(index)
    if name == SHAPES[0]:
        small = make_message(index, f"user1@{DOMAIN}")
        return small.replace(b"\r\n\r\n", b"\r\n\r\n" + payload + b"\r\n", 1) if payload else small
    if name == SHAPES[1]:
        return _mime("cr 1 Mo", [("application/pdf", "cr.pdf", _pdf(1 << 20, rng, payload))])
    if name == SHAPES[2]:
        return _mime("cr 10 Mo", [("application/pdf", "img.pdf", _pdf(10 << 20, rng, payload))])
    return _mime("dossier", [("application/zip", "dossier.zip", _zip(rng, payload))])


def scan_costs(server: Clamd, scans: int, rounds: int) -> None:
    address = server.address
    pid = server.process.pid
    for name in SHAPES:
        verdict = asyncio.run(clamd_client.scan(address, shape(name, 0, MARKER), 120))
        print(f"  detection check, {name:<18} {verdict.verdict} {verdict.detail}")
    print(
        f"  {'message':<18} {'size':>9} {'wall p50':>9} {'wall p90':>9} "
        f"{'clamd CPU':>10} {'node CPU':>9}   (per scan, each message new; "
        f"load {load_average()})"
    )
    for round_ in range(1, rounds + 1):
        for name in SHAPES:
            # clamd's CPU is counted in ticks (10 ms): small messages need many scans.
            count = {SHAPES[0]: scans * 5, SHAPES[2]: max(3, scans // 5)}.get(name, scans)
            batch = [shape(name, round_ * 100_000 + k) for k in range(count)]

            async def run(batch: list[bytes] = batch, name: str = name) -> list[float]:
                walls = []
                for raw in batch:
                    began = time.perf_counter()
                    result = await clamd_client.scan(address, raw, 120)
                    walls.append(time.perf_counter() - began)
                    if result.verdict != "clean":
                        raise RuntimeError(f"{name}: {result}")
                return walls

            asyncio.run(clamd_client.scan(address, shape(name, 1), 120))  # warm-up
            clamd_before, own_before = cpu_seconds(pid), time.process_time()
            walls = asyncio.run(run())
            clamd_cpu = (cpu_seconds(pid) - clamd_before) / count
            own_cpu = (time.process_time() - own_before) / count
            walls.sort()
            print(
                f"  {name:<18} {len(batch[0]) / 1e6:>7.2f}MB "
                f"{walls[len(walls) // 2] * 1000:>7.1f}ms "
                f"{walls[int(len(walls) * 0.9)] * 1000:>7.1f}ms {clamd_cpu * 1000:>8.1f}ms "
                f"{own_cpu * 1000:>7.1f}ms   round {round_}, {count} scans"
            )


# --- SMTP ingest, antivirus off / on ---------------------------------------------------------


@dataclass
class Ingest:
    label: str
    rate: float
    p50_ms: float
    node_cpu_ms: float
    clamd_cpu_ms: float
    errors: int
    idle_cpu_ms_per_s: float = 0.0


def start_server(settings: Settings, timeout: float = 300) -> tuple[subprocess.Popen[bytes], int]:
    """``caducee serve`` (as bench.smtp_ingest starts it, with a longer wait: on a loaded
    machine a start takes more than its 30 s); the process and its SMTP port."""
    ready = settings.run_dir / "listeners.json"
    ready.unlink(missing_ok=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "caducee", "serve", "--data", str(settings.data_dir)],
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    return server, int(json.loads(ready.read_text())["smtp"].rsplit(":", 1)[1])


def ingest(
    offset: int,
    settings: Settings,
    n: int,
    c: int,
    per_session: int,
    users: int,
    scanner: Clamd | None,
    label: str,
) -> Ingest:
    server, port = start_server(settings)
    try:
        visible = ImapCounter(settings)
        baseline = visible.count()
        # Messages offset.. of the corpus: a round's runs send the same ones, and each round
        # new ones (clamd would skip attachments it already found clean).
        messages = [make_message(offset + i, f"user{i % users + 1}@{DOMAIN}") for i in range(n)]
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        order = iter(range(n))

        def worker() -> None:
            while True:
                client = Client(port)
                sent = 0
                try:
                    while sent < per_session:
                        with lock:
                            i = next(order, None)
                        if i is None:
                            return
                        latency = client.send(
                            sender_of(offset + i), f"user{i % users + 1}@{DOMAIN}", messages[i]
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

        # The node's own background work (timers, workers, the IMAP sessions held open),
        # measured idle, so that it is not counted per message when runs last longer.
        time.sleep(3)  # the start's own work (a dictionary loaded in a thread) settles
        idle_began, idle_before = time.perf_counter(), tree_cpu(server.pid)
        time.sleep(5)
        idle_rate = (tree_cpu(server.pid) - idle_before) / (time.perf_counter() - idle_began)
        node_before = tree_cpu(server.pid)
        clamd_before = cpu_seconds(scanner.process.pid) if scanner else 0.0
        began = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(c)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        accepted = len(latencies)
        seen = baseline
        deadline = time.perf_counter() + 300
        while seen < baseline + accepted and time.perf_counter() < deadline:
            seen = visible.count()
            if seen < baseline + accepted:
                time.sleep(0.01)
        elapsed = time.perf_counter() - began
        node_cpu = tree_cpu(server.pid) - node_before - idle_rate * elapsed
        clamd_cpu = (cpu_seconds(scanner.process.pid) - clamd_before) if scanner else 0.0
        visible.close()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(300)  # a loaded machine stops slowly
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    latencies.sort()
    return Ingest(
        label,
        accepted / elapsed,
        latencies[len(latencies) // 2] * 1000 if latencies else 0.0,
        node_cpu / max(accepted, 1) * 1000,
        clamd_cpu / max(accepted, 1) * 1000,
        len(errors) + n - accepted,
        idle_rate * 1000,
    )


def peer_run(peers: Path, offset: int, n: int, c: int, per_session: int, out: Path) -> Ingest:
    """One run of Postfix → Dovecot as ``../shared/peers/run_all.sh`` does it: empty
    mailboxes, empty queue, servers freshly started."""
    ctl = str(peers / "ctl.sh")
    subprocess.run([ctl, "wait-queue"], check=True)
    users = [f"user{u}" for u in range(1, 11)]
    subprocess.run([ctl, "wipe-user", *users], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([ctl, "restart"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["sync"], check=True)
    time.sleep(3)
    run = os.environ.get("PEERS_RUN", str(peers / "run"))
    subprocess.run(
        [
            "python3", str(peers / "smtp_load.py"), "-n", str(n), "-c", str(c),
            "--per-session", str(per_session), "--offset", str(offset),
            "--count-maildir", f"{run}/vmail/bench.test/user*/Maildir",
            "--json", str(out), "-q", "--port", "2525", "--label", "postfix",
        ],
        check=False,
    )  # fmt: skip
    result = json.loads(out.read_text())
    return Ingest(
        "Postfix → Dovecot",
        float(result.get("e2e_rate") or 0.0),
        float(result["lat_ms_p50"]),
        0.0,
        0.0,
        int(result["errors"]),
    )


def ingest_rounds(args: argparse.Namespace, scanner: Clamd, tmp: Path) -> None:
    dns = sender_dns()
    try:
        dirs = {}
        for mode in ("off", "on"):
            settings = asyncio.run(prepare(tmp / f"data-{mode}", args.users, "", dns.resolver_spec))
            if mode == "on":
                text = settings.config_path.read_text("utf-8")  # [antivirus] clamd = ""
                on = text.replace('clamd = ""', f"clamd = {json.dumps(scanner.address)}", 1)
                settings.config_path.write_text(on, "utf-8")
                settings = load_settings(settings.data_dir)
                assert settings.antivirus_clamd == scanner.address
            dirs[mode] = settings
        print(
            f"SMTP ingest, {args.n} messages of the yardstick's corpus over {args.c} connections, "
            f"SQLite, end-to-end over IMAP; CPU per message: the node's process tree / clamd"
        )
        results: list[Ingest] = []
        for round_ in range(1, args.rounds + 1):
            offset = (round_ - 1) * args.n
            plan: list[tuple[str, Settings | None]] = [("off", dirs["off"]), ("on", dirs["on"])]
            if round_ % 2 == 0:
                plan.reverse()
            if args.peers:
                plan.insert(0, ("peer", None))
            for mode, settings in plan:
                load = load_average()
                if settings is None:
                    done = peer_run(
                        Path(args.peers), offset, args.n, args.c, args.per_session,
                        tmp / "peer.json",
                    )  # fmt: skip
                else:
                    done = ingest(
                        offset, settings, args.n, args.c, args.per_session, args.users,
                        scanner if mode == "on" else None,
                        f"Caducée, antivirus {mode}",
                    )  # fmt: skip
                results.append(done)
                print(
                    f"  round {round_}  {done.label:<22} {done.rate:7.1f} msg/s  "
                    f"p50 {done.p50_ms:5.1f} ms  node CPU {done.node_cpu_ms:5.2f} ms/msg  "
                    f"clamd CPU {done.clamd_cpu_ms:5.2f} ms/msg  errors {done.errors}  "
                    f"(node idle {done.idle_cpu_ms_per_s:.0f} ms/s, not counted) "
                    f"(load {load})",
                    flush=True,
                )
        for label in sorted({r.label for r in results}):
            mine = [r for r in results if r.label == label]
            print(
                f"  median  {label:<22} {statistics.median(r.rate for r in mine):7.1f} msg/s  "
                f"node CPU {statistics.median(r.node_cpu_ms for r in mine):5.2f} ms/msg  "
                f"clamd CPU {statistics.median(r.clamd_cpu_ms for r in mine):5.2f} ms/msg"
            )
    finally:
        dns.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=2000, help="messages per ingest run")
    parser.add_argument("-c", type=int, default=8, help="SMTP connections")
    parser.add_argument("--per-session", type=int, default=50)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument(
        "--scans",
        type=int,
        default=30,
        help="scans per size (20 kB: five times more, 10 MB: a fifth)",
    )
    parser.add_argument(
        "--signatures", type=int, default=0, help="synthetic body signatures (and 10× hashes)"
    )
    parser.add_argument("--peers", help="the peers' folder (ctl.sh, smtp_load.py): also run them")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-scans", action="store_true")
    args = parser.parse_args()
    if find_clamd() is None:
        sys.exit("clamd not found (Debian package clamav-daemon)")
    with tempfile.TemporaryDirectory(prefix="caducee-bench-av-") as name:
        tmp = Path(name)
        print(f"load average {load_average()}, {os.cpu_count()} cores")
        started = start(tmp / "clamd", args.signatures)
        try:
            print(
                f"clamd start ({2 + args.signatures * 11} signatures): {started.seconds:.1f} s, "
                f"{started.cpu:.2f} s CPU, {started.rss:.0f} MB RSS — not counted below"
            )
            if not args.skip_scans:
                print("One scan (caducee.clients.clamd.scan, INSTREAM over the Unix socket):")
                scan_costs(started.clamd, args.scans, 2)
            if not args.skip_ingest:
                ingest_rounds(args, started.clamd, tmp)
            print(f"clamd RSS at the end: {rss_mb(started.clamd.process.pid):.0f} MB")
        finally:
            started.clamd.stop()


if __name__ == "__main__":
    main()
