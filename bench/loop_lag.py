"""Event-loop lag under hostile load (issue 17): does one command freeze every door of a node?

Sets up a throwaway installation, starts a real ``caducee serve`` (SQLite, files), and:

1. plants ``-n`` deeply nested ~110 kB messages through the MX (SMTP port 25's door, from an
   outside sender whose SPF passes), as anyone on the Internet could;
2. lets the node's background text indexer work on them;
3. runs ``SEARCH HEADER Message-ID x`` and other header searches (X-Mailer, Received,
   Content-Type) on the mailbox over IMAP, then a BODY search;
4. ``dlp``: submits (SMTP submission, authenticated) ``--dlp`` messages of ``--dlp-mb`` MB of
   text with health data to a colleague outside the trust space (the sensitive-data scan);
5. ``patient``: submits ``--big`` messages with one ``--big-mb`` MB attachment each, a PDF to a
   verified patient in ``pdf`` mode and a ZIP to one in ``zip`` mode, alternately (the
   protected PDF / ZIP, the DLP scan, the notice, the Sent copy);
6. ``small``: ``--small`` small messages through the MX, then the background indexer on them;

while two other connections — one SMTP, one IMAP — send NOOPs in a loop (the big submissions
come from a child process, whose work never holds the NOOP threads). It prints, per phase,
the worst and p99 NOOP latency seen on those other doors, each search's duration and answer,
and the server's memory (RSS): idle, peak (sampled every 0.2 s) and after the load.

    python -m bench.loop_lag [-n 20] [--depth 600] [--size 110000] [--searches 3]
                             [--dlp 5] [--dlp-mb 2] [--big 10] [--big-mb 15] [--small 2000]

Figures only: the bench never fails on a threshold (see docs/operations.md for what they were).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import imaplib
import io
import json
import multiprocessing
import os
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
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
    make_message,
    memory_mb,
    prepare,
    sender_dns,
)
from caducee.app import open_app
from caducee.config import Settings, load_settings, render_config
from caducee.health import patients

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


#: Verified patients of the bench's practice, one per protected delivery mode.
PATIENTS = {"pdf": "patient.pdf@patient-mail.test", "zip": "patient.zip@patient-mail.test"}
COLLEAGUE = "confrere@ailleurs.test"  # outside the trust space: the DLP scan applies
HEALTH_LINE = (
    "Patient suivi pour diabète de type 2 (CIM-10 E11.9), NIR 1 85 05 78 006 084 91, "
    "né le 14/07/1985 ; sérologie VIH négative, traitement par metformine.\n"
)


async def add_patients(data: Path) -> None:
    """The protected delivery modes need a development SMS provider (« fichier »), the
    submission door, and verified patients in ``pdf`` and ``zip`` mode."""
    settings = load_settings(data)
    settings.deployment = "development"
    settings.sms_provider = "fichier"
    settings.listeners["submission"] = "127.0.0.1:0"
    (data / "caducee.toml").write_text(render_config(settings), "utf-8")
    async with open_app(settings) as app:
        from caducee.services import practices

        [practice] = await practices.list_practices(app)
        for mode, address in PATIENTS.items():
            patient = await patients.add_patient(
                app,
                practice.id,
                patients.PatientData(
                    last_name="Bench",
                    first_name=mode.upper(),
                    birth_date="1985-07-14",
                    email=address,
                    mobile="06 12 34 56 78",
                    delivery_mode=mode,
                ),
                actor=RCPT,
                source="bench",
            )
            link = await patients.send_verification(
                app, practice.id, patient.id, actor=RCPT, source="bench"
            )
            await patients.confirm_verification(app, link.rsplit("/", 1)[1], source="bench")


def big_pdf(megabytes: int) -> bytes:
    """A real PDF of about ``megabytes`` MB (one page, a big uncompressible image stream)."""
    import pikepdf

    pdf = pikepdf.new()
    pdf.add_blank_page()
    image = pikepdf.Stream(pdf, os.urandom(megabytes * 1_000_000))
    image.Type, image.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
    image.Width, image.Height = 1000, megabytes * 333
    image.ColorSpace, image.BitsPerComponent = pikepdf.Name.DeviceRGB, 8
    pdf.pages[0].Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image))
    output = io.BytesIO()
    pdf.save(output)
    return output.getvalue()


def big_zip(megabytes: int) -> bytes:
    import zipfile

    output = io.BytesIO()
    with zipfile.ZipFile(output, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("examens.bin", os.urandom(megabytes * 1_000_000))
    return output.getvalue()


def with_attachment(to: str, body: str, name: str, kind: str, data: bytes) -> bytes:
    from email import policy
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = RCPT, to, "Compte rendu"
    message["Message-ID"] = f"<big{time.time_ns()}@{DOMAIN}>"
    message.set_content(body)
    if data:
        maintype, subtype = kind.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message.as_bytes(policy=policy.SMTP)  # CRLF (RFC 5321 §2.3.8)


def submitter(settings: Settings) -> smtplib.SMTP:
    """An authenticated SMTP submission session (STARTTLS, RFC 6409) as the bench's user."""
    bound = json.loads((settings.run_dir / "listeners.json").read_text())
    port = int(bound["submission"].rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(settings.tls_dir / "ca.crt"))
    context.check_hostname = False  # connected by address; the chain is still checked
    client = smtplib.SMTP("127.0.0.1", port, timeout=600)
    client.starttls(context=context)
    password = json.loads((settings.data_dir / IMAP_PASSWORDS).read_text())[RCPT]
    client.login(RCPT, password)
    return client


class Memory:
    """The node's RSS and its worker processes': sampled every 0.2 s for the peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_node = self.peak_workers = 0.0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def now(self) -> tuple[float, float]:
        workers = sum(memory_mb(child)[0] for child in descendants(self.pid))
        return memory_mb(self.pid)[0], workers

    def _sample(self) -> None:
        while not self.stop.wait(0.2):
            node, workers = self.now()
            self.peak_node = max(self.peak_node, node)
            self.peak_workers = max(self.peak_workers, workers)


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


def start_server(settings: Settings, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """``caducee serve`` with its log (stderr) in ``log``; its pid and MX port."""
    ready = settings.run_dir / "listeners.json"
    with log.open("wb") as errors:
        server = subprocess.Popen(
            [sys.executable, "-m", "caducee", "serve", "--data", str(settings.data_dir)],
            stderr=errors,
        )
    deadline = time.monotonic() + 30
    while not ready.exists():
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    return server, int(json.loads(ready.read_text())["smtp"].rsplit(":", 1)[1])


def descendants(pid: int) -> list[int]:
    """The processes started by ``pid``, at any depth (the node's fork server and workers)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                children = [int(c) for c in task.read_text().split()]
                found += children
                todo += children
    return found


def memory(pid: int) -> str:
    """The node's RSS, and its worker processes' (MB)."""
    own = memory_mb(pid)[0]
    workers = [memory_mb(child)[0] for child in descendants(pid)]
    return f"RSS {own:.0f} MB (+ {len(workers)} worker processes {sum(workers):.0f} MB)"


def _submit(data: str, kind: str, count: int, megabytes: int) -> None:
    """``count`` messages of one hostile kind (``dlp`` or ``patient``), in a child process:
    building a 20 MB message (base64) and smtplib's dot-stuffing (one ``re.sub`` over the whole
    message) hold this interpreter's lock for 0.1–0.3 s at a time, which the NOOP threads of the
    bench would otherwise count as the node's lag."""
    client = submitter(load_settings(Path(data)))
    if kind == "dlp":
        body = HEALTH_LINE * (megabytes * 1_000_000 // len(HEALTH_LINE.encode()))
        for _ in range(count):
            started = time.perf_counter()
            client.sendmail(RCPT, [COLLEAGUE], with_attachment(COLLEAGUE, body, "", "", b""))
            print(f"dlp           {megabytes} MB of text    {time.perf_counter() - started:7.2f} s")
    else:
        files = {"pdf": big_pdf(megabytes), "zip": big_zip(megabytes)}
        kinds = {"pdf": "application/pdf", "zip": "application/zip"}
        for i in range(count):
            mode = "pdf" if i % 2 == 0 else "zip"
            raw = with_attachment(
                PATIENTS[mode], HEALTH_LINE, f"examens.{mode}", kinds[mode], files[mode]
            )
            started = time.perf_counter()
            try:
                client.sendmail(RCPT, [PATIENTS[mode]], raw)
                answer = "OK"
            except smtplib.SMTPException as error:
                answer = f"refused: {str(error)[:90]}"
            print(
                f"patient {mode}   {len(raw) / 1e6:5.1f} MB message "
                f"{time.perf_counter() - started:7.2f} s  {answer}"
            )
    sys.stdout.flush()
    client.quit()


def hostile_submissions(settings: Settings, args: argparse.Namespace, phases: Phases) -> None:
    """The ``dlp`` and ``patient`` phases: big messages through SMTP submission, sent by a
    child process (:func:`_submit`)."""
    context = multiprocessing.get_context("spawn")  # this process runs threads: never forked
    for kind, count, megabytes in (
        ("dlp", args.dlp, args.dlp_mb),
        ("patient", args.big, args.big_mb),
    ):
        phases.current = kind
        if not count:
            continue
        sys.stdout.flush()
        child = context.Process(
            target=_submit, args=(str(settings.data_dir), kind, count, megabytes)
        )
        child.start()
        child.join()


def probe_report(log: Path) -> None:
    """What the node's lag probe logged (``--lag-warn-ms``): counts, worst lag, where."""
    lags, stalls = [], []
    for line in log.read_text("utf-8", "replace").splitlines():
        if "event loop lag lag_ms=" in line:
            lags.append(int(line.rsplit("lag_ms=", 1)[1].split()[0]))
        elif "event loop stalled" in line or "Executing <" in line:
            stalls.append(line[:900])  # the innermost frames first
    print(f"probe         {len(lags)} lags logged, worst {max(lags, default=0)} ms")
    for line in stalls[:30]:
        print(f"  {line}")


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
    idle = memory(pid)
    sampler = Memory(pid)
    idle_node, idle_workers = sampler.now()
    sampler.thread.start()
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
    if messages:
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
                text = (data[0] or b"").decode("utf-8", "replace")
                answer = f"OK {len(text.split())} found" if status == "OK" else f"NO {text}"
            except imaplib.IMAP4.error as error:
                answer = f"refused: {str(error)[:90]}"
            print(
                f"search {round_ + 1}     {criteria:<24} {time.perf_counter() - begun:7.2f} s"
                f"  {answer}"
            )
    searcher.logout()
    if args.dlp or args.big:
        hostile_submissions(settings, args, phases)
    if args.small:
        phases.current = "small"
        baseline = counter.count()
        sender = Client(smtp_port)
        started = time.perf_counter()
        for i in range(args.small):
            sender.send(SENDER, RCPT, make_message(i, RCPT))
        sender.close()
        while counter.count() < baseline + args.small and time.perf_counter() - started < 600:
            time.sleep(0.1)
        print(f"small         {args.small} messages in {time.perf_counter() - started:.1f} s")
        time.sleep(args.index_wait)  # the background indexer on them
    phases.current = "after"
    time.sleep(1.0)
    phases.stop.set()
    for thread in threads:
        thread.join()
    counter.close()
    time.sleep(args.settle)
    sampler.stop.set()
    after = memory(pid)
    after_node, after_workers = sampler.now()
    report(
        [smtp_probe, imap_probe],
        ["idle", "deliver", "index", "search", "dlp", "patient", "small", "after"],
    )
    print(f"memory        idle {idle}; after the load {after}")
    print(
        f"node RSS      idle {idle_node:.0f} MB, peak {sampler.peak_node:.0f} MB, after "
        f"{after_node:.0f} MB ({after_node - idle_node:+.0f} MB); worker processes idle "
        f"{idle_workers:.0f} MB, peak {sampler.peak_workers:.0f} MB, after {after_workers:.0f} MB"
    )


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
    parser.add_argument("--dlp", type=int, default=5, help="big text messages (DLP)")
    parser.add_argument("--dlp-mb", type=int, default=2, help="MB of text per DLP message")
    parser.add_argument("--big", type=int, default=10, help="messages with a big attachment")
    parser.add_argument("--big-mb", type=int, default=15, help="MB per attachment")
    parser.add_argument("--small", type=int, default=2000, help="small messages (indexing)")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds before 'after'")
    parser.add_argument(
        "--lag-warn-ms", type=int, default=0, help="[server] loop_lag_warn_ms of the node"
    )
    args = parser.parse_args()
    dns = sender_dns()
    with tempfile.TemporaryDirectory(prefix="caducee-lag-") as tmp:
        data = Path(tmp) / "data"
        settings = asyncio.run(prepare(data, 1, "", dns.resolver_spec))
        asyncio.run(add_patients(data))
        settings = load_settings(data)
        if args.lag_warn_ms:
            config = data / "caducee.toml"
            text = config.read_text("utf-8")
            wanted = f"loop_lag_warn_ms = {args.lag_warn_ms}"
            if "loop_lag_warn_ms = 0" in text:  # written by caducee init
                text = text.replace("loop_lag_warn_ms = 0", wanted)
            else:
                text += f"\n[server]\n{wanted}\n"
            config.write_text(text, "utf-8")
            settings = load_settings(data)
        log = Path(tmp) / "serve.err"
        server, smtp_port = start_server(settings, log)
        try:
            run(settings, args, smtp_port, server.pid)
        finally:
            server.send_signal(signal.SIGTERM)
            with contextlib.suppress(Exception):
                server.wait(30)
            dns.stop()
        if args.lag_warn_ms:
            probe_report(log)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        socket.setdefaulttimeout(300)
        main()
