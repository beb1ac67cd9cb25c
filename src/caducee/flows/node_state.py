"""Is this node ready to serve? The checks ``/readyz`` answers and ``caducee doctor`` prints
(issue 21), and the gauges ``/metrics`` reads from the database at scrape time.

One function per check, each returning a :class:`Check` (its status and a sentence in French
and English saying what is wrong and what to do): the web door and the command line call the
same functions, so a check has one wording and one threshold. ``FAIL`` makes ``/readyz``
answer 503 and ``doctor`` exit 1; ``WARN`` is said but does not take the node out of service.

This module is a flow because it speaks to clamd (``clients.clamd``) and reads the health
layer's state (the trust list, the CRLs, the télétransmission lots).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path

from caducee.app import App
from caducee.clients import clamd
from caducee.config import Settings
from caducee.domain.teletransmission import LotState, arl_overdue_before
from caducee.errors import CaduceeError
from caducee.health import trust_tls
from caducee.services.metrics import Sample
from caducee.store import lots_repo, node_repo, queue_repo, trust_repo
from caducee.store.database import Database
from caducee.tls import SERVER_CERT, certificate_not_after

#: A certificate expiring within this is a warning.
CERT_WARNING = timedelta(days=30)
#: How long a listener's connection test may take.
CONNECT_TIMEOUT = 2.0
LISTENERS_FILE = "listeners.json"


class Status(Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    """One check's verdict: ``name`` is stable (for machines), ``fr``/``en`` for people."""

    name: str
    status: Status
    fr: str
    en: str

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status.value, "message": self.fr,
                "message_en": self.en}  # fmt: skip


def _ok(name: str, fr: str, en: str) -> Check:
    return Check(name, Status.OK, fr, en)


def _warn(name: str, fr: str, en: str) -> Check:
    return Check(name, Status.WARN, fr, en)


def _fail(name: str, fr: str, en: str) -> Check:
    return Check(name, Status.FAIL, fr, en)


def ready(checks: Sequence[Check]) -> bool:
    return all(c.status is not Status.FAIL for c in checks)


# ----- the checks --------------------------------------------------------------------------------


async def check_database(db: Database) -> Check:
    """The database answers ``SELECT 1``."""
    try:
        async with db.read() as conn:
            answered = await node_repo.answers(conn)
    except Exception as error:  # the class only: a driver's message may carry connection details
        answered, reason = False, type(error).__name__
    else:
        reason = "SELECT 1"
    kind = "SQLite" if db.is_sqlite else "PostgreSQL"
    if answered:
        return _ok("database", f"base de données {kind} joignable", f"{kind} database reachable")
    return _fail(
        "database",
        f"base de données injoignable : {reason}",
        f"database unreachable: {reason}",
    )


def check_certificate(settings: Settings, now: datetime) -> Check:
    """The server's TLS certificate exists and is not expired (a warning 30 days before)."""
    cert = settings.tls_dir / SERVER_CERT
    if not cert.exists():
        return _fail(
            "certificate", f"certificat TLS absent ({cert})", f"TLS certificate missing ({cert})"
        )
    try:
        not_after = certificate_not_after(cert)
    except CaduceeError as error:
        return _fail("certificate", error.fr, error.en)
    left = not_after - now
    day = not_after.date().isoformat()
    if left <= timedelta(0):
        return _fail(
            "certificate",
            f"certificat TLS expiré le {day} ({cert})",
            f"TLS certificate expired on {day} ({cert})",
        )
    if left < CERT_WARNING:
        return _warn(
            "certificate",
            f"certificat TLS expire le {day}, dans {left.days} jours : renouvelez-le",
            f"TLS certificate expires on {day}, in {left.days} days: renew it",
        )
    return _ok(
        "certificate", f"certificat TLS valide jusqu'au {day}", f"TLS certificate valid until {day}"
    )


async def check_trust_list(settings: Settings, db: Database, now: datetime) -> Check:
    """The MSSanté whitelist: present, and generated less than ``[trust] max_age_days`` ago."""
    async with db.read() as conn:
        info = await trust_repo.active_list(conn)
    if info is None:
        return _warn(
            "trust_list",
            "aucune liste blanche MSSanté : lancez « caducee trust import » (ou réglez "
            "[trust] list_url)",
            "no MSSanté whitelist: run 'caducee trust import' (or set [trust] list_url)",
        )
    day = info.generated_at.astimezone(UTC).date().isoformat()
    limit = settings.trust_list_max_age_days
    if info.generated_at < now - timedelta(days=limit):
        return _fail(
            "trust_list",
            f"liste blanche MSSanté périmée (générée le {day}, plus de {limit} jours) : "
            "rafraîchissez-la",
            f"stale MSSanté whitelist (generated {day}, more than {limit} days ago): refresh it",
        )
    return _ok(
        "trust_list",
        f"liste blanche MSSanté du {day} ({info.domain_count} domaines)",
        f"MSSanté whitelist of {day} ({info.domain_count} domains)",
    )


def check_crls(settings: Settings, now: datetime) -> Check:
    """The CRLs of the trust space's CAs (``[trust] crl_dir``): each CA has one, not past its
    ``nextUpdate``. Nothing to check without ``[trust] ca_file``."""
    if not settings.trust_ca_file:
        return _ok(
            "crl",
            "pas d'autorité MSSanté configurée : pas de CRL",
            "no MSSanté CA configured: no CRL",
        )
    try:
        store = trust_tls.load_trust_store(settings, keep=False)
    except CaduceeError as error:
        return _fail("crl", error.fr, error.en)
    missing = [ca for ca in store.cas if ca.subject.public_bytes() not in store.crls]
    if missing:
        names = ", ".join(ca.subject.rfc4514_string() for ca in missing)
        return _fail(
            "crl",
            f"aucune CRL valide pour {names} : déposez-la dans [trust] crl_dir",
            f"no valid CRL for {names}: put it in [trust] crl_dir",
        )
    for crl in store.crls.values():
        next_update = crl.next_update_utc
        if next_update is not None and next_update < now:
            day = next_update.date().isoformat()
            return _fail(
                "crl",
                f"CRL de {crl.issuer.rfc4514_string()} périmée depuis le {day} : mettez-la à jour",
                f"CRL of {crl.issuer.rfc4514_string()} out of date since {day}: update it",
            )
    return _ok("crl", f"{len(store.crls)} CRL à jour", f"{len(store.crls)} CRL(s) up to date")


async def check_antivirus(settings: Settings) -> Check:
    """ClamAV's daemon answers PING, when ``[antivirus] clamd`` is set."""
    address = settings.antivirus_clamd
    if not address:
        return _warn(
            "antivirus",
            "antivirus désactivé : réglez [antivirus] clamd (paquet clamav-daemon)",
            "antivirus off: set [antivirus] clamd (package clamav-daemon)",
        )
    if await clamd.ping(address):
        return _ok(
            "antivirus", f"antivirus ClamAV joignable ({address})", f"ClamAV reachable ({address})"
        )
    tempfail = settings.antivirus_on_unavailable == "tempfail"
    then = (
        "le courrier est refusé temporairement (451)"
        if tempfail
        else "le courrier est accepté SANS analyse"
    )
    then_en = "mail is temporarily refused (451)" if tempfail else "mail is accepted WITHOUT a scan"
    return _fail(
        "antivirus",
        f"antivirus ClamAV injoignable ({address}) : {then}",
        f"ClamAV unreachable ({address}): {then_en}",
    )


def _connect(address: str) -> bool:
    """Whether a TCP connection to a bound ``host:port`` (a wildcard: the loopback) opens."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    wildcard = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 (not a bind)
    host = wildcard.get(host, host)
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT):
            return True
    except (OSError, ValueError):
        return False


async def check_listeners(settings: Settings, *, serving: bool) -> Check:
    """Every configured listener is bound (``run/listeners.json``) and accepts a connection.
    ``serving``: this process is the server (its absence is a failure, not a stopped server)."""
    path: Path = settings.run_dir / LISTENERS_FILE
    try:
        bound: dict[str, str] = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        if serving:
            return _fail("listeners", "le serveur démarre : ports pas encore ouverts",
                         "the server is starting: ports not open yet")  # fmt: skip
        return _warn("listeners", "serveur arrêté (pas de run/listeners.json)",
                     "server not running (no run/listeners.json)")  # fmt: skip
    down = []
    for name in settings.listeners:
        address = bound.get(name)
        if address is None or not await asyncio.to_thread(_connect, address):
            down.append(name)
    if down:
        names = ", ".join(sorted(down))
        return _fail("listeners", f"ports fermés : {names}", f"listeners down: {names}")
    names = ", ".join(f"{n} {bound[n]}" for n in sorted(settings.listeners))
    return _ok("listeners", f"ports ouverts : {names}", f"listeners up: {names}")


async def check_queue(settings: Settings, db: Database, now: datetime) -> Check:
    """No recipient due for an attempt waits unclaimed longer than
    ``[health] queue_stuck_minutes`` (the delivery workers are not running, or are stuck)."""
    async with db.read() as conn:
        summary = await queue_repo.summary(conn, now)
    limit = timedelta(minutes=settings.health_queue_stuck_minutes)
    due = summary.oldest_due_free_at
    if due is not None and now - due > limit:
        minutes = int((now - due).total_seconds() // 60)
        return _fail(
            "queue",
            f"file d'envoi bloquée : un envoi attend depuis {minutes} min "
            f"({summary.depth} en attente) ; vérifiez que le serveur tourne",
            f"outbound queue stuck: a delivery due {minutes} min ago "
            f"({summary.depth} waiting); check that the server runs",
        )
    return _ok(
        "queue",
        f"file d'envoi : {summary.depth} destinataire(s) en attente",
        f"outbound queue: {summary.depth} recipient(s) waiting",
    )


async def readiness(settings: Settings, db: Database, *, serving: bool) -> list[Check]:
    """Every check, in the order ``doctor`` prints them."""
    now = datetime.now(UTC)
    database = await check_database(db)
    checks = [database, await asyncio.to_thread(check_certificate, settings, now)]
    checks.append(await check_listeners(settings, serving=serving))
    if database.status is Status.OK:
        checks.append(await check_queue(settings, db, now))
        checks.append(await check_trust_list(settings, db, now))
    checks.append(await asyncio.to_thread(check_crls, settings, now))
    checks.append(await check_antivirus(settings))
    return checks


# ----- the database's gauges, read at scrape time -------------------------------------------------


async def gauges(app: App) -> list[Sample]:
    """The queue's depth and oldest age, the lots awaiting their ARL (every node alike)."""
    now = datetime.now(UTC)
    settings = app.settings
    overdue = arl_overdue_before(
        now, settings.tlt_arl_working_days, settings.tlt_holiday_region or None
    )
    async with app.db.read() as conn:
        summary = await queue_repo.summary(conn, now)
        lots = await lots_repo.count_awaiting_arl(conn, overdue_before=overdue)
    oldest = (now - summary.oldest_created_at).total_seconds() if summary.oldest_created_at else 0
    lots_help = "Télétransmission lots without their ARL: within the delay, or past it."
    return [
        Sample("caducee_queue_depth", "Outbound recipients waiting.", summary.depth),
        Sample(
            "caducee_queue_oldest_seconds", "Age of the oldest waiting message.", max(0.0, oldest)
        ),
        Sample("caducee_lots_awaiting_arl", lots_help, lots[LotState.SENT], (("delay", "within"),)),
        Sample("caducee_lots_awaiting_arl", lots_help, lots[LotState.NO_ARL], (("delay", "past"),)),
    ]
