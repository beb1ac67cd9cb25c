"""Event-loop lag under hostile load (issue 17): does one command freeze every door of a node?

Sets up a throwaway installation, starts a real ``caducee serve`` (SQLite, files), and:

1. plants ``-n`` deeply nested ~110 kB messages through the MX (SMTP port 25's door, from an
   outside sender whose SPF passes), as anyone on the Internet could;
2. lets the node's background text indexer work on them;
3. runs ``SEARCH HEADER Message-ID x`` and other header searches (X-Mailer, Received,
   Content-Type) on the mailbox over IMAP, then a BODY search;

while two other connections — one SMTP, one IMAP — send NOOPs in a loop. It prints, per phase,
the worst and p99 NOOP latency seen on those other doors, each search's duration and answer,
and the server's memory (RSS) before and after.

    python -m bench.loop_lag [-n 20] [--depth 600] [--size 110000] [--searches 3]

Figures only: the bench never fails on a threshold (see docs/operations.md for what they were).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import imaplib
import json
import signal
import socket
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.smtp_ingest import (
    DOMAIN,
    IMAP_PASSWORDS,
    Client,
    ImapCounter,
    memory_mb,
    prepare,
    sender_dns,
    start_server,
)
from caducee.config import Settings, load_settings

SENDER = "dr.bench@ailleurs.test"
RCPT = f"user1@{DOMAIN}"
HEADER_SEARCHES = (
    "HEADER Message-ID x",
    "HEADER X-Mailer x",
    "HEADER Received x",
    "HEADER Content-Type x",
)


def hostile_message(i: int, size: int = 110_000, depth: int = 600) -> bytes:
    """A ~``size``-byte message of ``depth`` nested multipart/mixed entities, each level with
    small quoted-printable text parts: cheap to send, costly for a recursive MIME parser."""
    head = (
        f"From: Expediteur <{SENDER}>\r\nTo: <{RCPT}>\r\nSubject: Dossier {i}\r\n"
        f"Message-ID: <deep{i}.{time.time_ns()}@ailleurs.test>\r\n"
        f"X-Mailer: Bench {i}\r\nMIME-Version: 1.0\r\n"
    )
    per_level = max(1, (size // depth) // 120)
    tail: list[str] = []
    body: list[str] = []
    for level in range(depth + 1):
        boundary = f"b{level}x"
        body.append(f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n')
        for k in range(per_level):
            body.append(
                f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                f"niveau {level} partie {k} =C3=A9t=C3=A9 suivi\r\n"
            )
        if level < depth:
            body.append(f"--{boundary}\r\n")
        tail.append(f"--{boundary}--\r\n")
    return (head + "".join(body) + "".join(reversed(tail))).encode()


@dataclass
class Probe:
    """NOOP latencies (seconds) on one door, each with the phase it was measured in."""

    name: str
    samples: list[tuple[str, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def of(self, phase: str) -> list[float]:
        return sorted(latency for p, latency in self.samples if p == phase)


class Phases:
    def __init__(self) -> None:
        self.current = "idle"
        self.stop = threading.Event()


def smtp_noops(port: int, probe: Probe, phases: Phases, pause: float) -> None:
    try:
        client = Client(port)
        while not phases.stop.is_set():
            phase = phases.current
            started = time.perf_counter()
            client.command("NOOP", 250)
            probe.samples.append((phase, time.perf_counter() - started))
            time.sleep(pause)
        client.close()
    except Exception as error:  # reported, never raised: the figures say what happened
        probe.errors.append(str(error)[:200])


def imap_connection(settings: Settings) -> imaplib.IMAP4:
    bound = json.loads((settings.run_dir / "listeners.json").read_text())
    port = int(bound["imap"].rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(settings.tls_dir / "ca.crt"))
    password = json.loads((settings.data_dir / IMAP_PASSWORDS).read_text())[RCPT]
    connection = imaplib.IMAP4("127.0.0.1", port, timeout=300)
    connection.host = settings.hostname  # the name the certificate is checked against
    connection.starttls(context)
    connection.login(RCPT, password)
    return connection


def imap_noops(settings: Settings, probe: Probe, phases: Phases, pause: float) -> None:
    try:
        connection = imap_connection(settings)
        while not phases.stop.is_set():
            phase = phases.current
            started = time.perf_counter()
            status, _ = connection.noop()
            probe.samples.append((phase, time.perf_counter() - started))
            if status != "OK":
                probe.errors.append(f"NOOP {status}")
            time.sleep(pause)
        connection.logout()
    except Exception as error:
        probe.errors.append(str(error)[:200])


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(len(values) * q))] * 1000


def report(probes: list[Probe], phase_names: list[str]) -> None:
    print(f"{'phase':<10} {'door':<5} {'NOOPs':>6} {'p50 ms':>8} {'p99 ms':>8} {'worst ms':>9}")
    for phase in phase_names:
        for probe in probes:
            values = probe.of(phase)
            print(
                f"{phase:<10} {probe.name:<5} {len(values):>6} {_quantile(values, 0.5):>8.1f} "
                f"{_quantile(values, 0.99):>8.1f} {(values[-1] * 1000 if values else 0):>9.1f}"
            )
    for probe in probes:
        if probe.errors:
            print(f"{probe.name} errors: {probe.errors[:3]}")


def run(settings: Settings, args: argparse.Namespace, smtp_port: int, pid: int) -> None:
    phases = Phases()
    smtp_probe, imap_probe = Probe("smtp"), Probe("imap")
    counter = ImapCounter(settings)
    baseline = counter.count()
    time.sleep(1.0)
    idle_rss, _ = memory_mb(pid)
    threads = [
        threading.Thread(target=smtp_noops, args=(smtp_port, smtp_probe, phases, args.pause)),
        threading.Thread(target=imap_noops, args=(settings, imap_probe, phases, args.pause)),
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # an idle baseline
    phases.current = "deliver"
    messages = [hostile_message(i, args.size, args.depth) for i in range(args.n)]
    sender = Client(smtp_port)
    started = time.perf_counter()
    for raw in messages:
        sender.send(SENDER, RCPT, raw)
        sender.command("RSET", 250)
    sender.close()
    while counter.count() < baseline + args.n and time.perf_counter() - started < 300:
        time.sleep(0.05)
    print(
        f"planted       {args.n} messages of {len(messages[0]) / 1000:.0f} kB, depth "
        f"{args.depth}, in {time.perf_counter() - started:.1f} s"
    )
    phases.current = "index"
    time.sleep(args.index_wait)  # the background indexer works once deliveries pause
    phases.current = "search"
    searcher = imap_connection(settings)
    searcher.select("INBOX")
    for round_ in range(args.searches):
        for criteria in (*HEADER_SEARCHES, "BODY introuvable"):
            begun = time.perf_counter()
            try:
                status, data = searcher.search(None, criteria)
                answer = f"{status} {len((data[0] or b'').split())} found"
            except imaplib.IMAP4.error as error:
                answer = f"error {str(error)[:80]}"
            print(
                f"search {round_ + 1}     {criteria:<24} {time.perf_counter() - begun:7.2f} s"
                f"  {answer}"
            )
    searcher.logout()
    phases.current = "after"
    time.sleep(1.0)
    phases.stop.set()
    for thread in threads:
        thread.join()
    counter.close()
    time.sleep(2.0)
    after_rss, _ = memory_mb(pid)
    report([smtp_probe, imap_probe], ["idle", "deliver", "index", "search", "after"])
    print(f"memory        idle RSS {idle_rss:.0f} MB, after the load {after_rss:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=20, help="hostile messages planted")
    parser.add_argument("--depth", type=int, default=600, help="MIME nesting depth")
    parser.add_argument("--size", type=int, default=110_000, help="bytes per message, about")
    parser.add_argument("--searches", type=int, default=2, help="rounds of searches")
    parser.add_argument("--index-wait", type=float, default=4.0, help="seconds after delivery")
    parser.add_argument("--pause", type=float, default=0.02, help="seconds between NOOPs")
    parser.add_argument(
        "--lag-warn-ms", type=int, default=0, help="[server] loop_lag_warn_ms of the node"
    )
    args = parser.parse_args()
    dns = sender_dns()
    with tempfile.TemporaryDirectory(prefix="caducee-lag-") as tmp:
        data = Path(tmp) / "data"
        settings = asyncio.run(prepare(data, 1, "", dns.resolver_spec))
        if args.lag_warn_ms:
            with (data / "caducee.toml").open("a") as config:
                config.write(f"\n[server]\nloop_lag_warn_ms = {args.lag_warn_ms}\n")
            settings = load_settings(data)
        server, smtp_port = start_server(settings)
        try:
            run(settings, args, smtp_port, server.pid)
        finally:
            server.send_signal(signal.SIGTERM)
            with contextlib.suppress(Exception):
                server.wait(30)
            dns.stop()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        socket.setdefaulttimeout(300)
        main()
