"""``caducee doctor``: check an installation and say what to fix."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import typer

from caducee.cli.common import DEFAULT_DATA, DataOption, console, settings_for
from caducee.clients import clamd
from caducee.config import Settings
from caducee.errors import CaduceeError
from caducee.i18n import tr
from caducee.services.cluster import ALIVE_BEATS
from caducee.store import migrate, node_repo, trust_repo
from caducee.store.database import Database
from caducee.store.keyring import load_master_keys
from caducee.store.s3_blobs import S3BlobStore
from caducee.tls import certificate_not_after

CERT_WARNING = timedelta(days=30)
#: ``caducee doctor`` lists the nodes seen within this delay.
NODES_SEEN_WITHIN = timedelta(days=1)


@dataclass
class Report:
    errors: int = 0
    warnings: int = 0
    lines: list[str] = field(default_factory=list)

    def ok(self, fr: str, en: str) -> None:
        self.lines.append(f"[green]OK[/green]        {tr(fr, en)}")

    def warn(self, fr: str, en: str) -> None:
        self.warnings += 1
        self.lines.append(f"[yellow]{tr('ATTENTION', 'WARNING')}[/yellow] {tr(fr, en)}")

    def error(self, fr: str, en: str) -> None:
        self.errors += 1
        self.lines.append(f"[red]{tr('ERREUR', 'ERROR')}[/red]    {tr(fr, en)}")


def check_files(settings: Settings, report: Report) -> set[str]:
    """Configuration, master key, certificate. Returns the ids of the usable master keys."""
    if settings.config_path.exists():
        report.ok(f"configuration {settings.config_path}", f"configuration {settings.config_path}")
    else:
        report.error(
            f"configuration absente ({settings.config_path}) : lancez « caducee init »",
            f"configuration missing ({settings.config_path}): run 'caducee init'",
        )
    key_ids: set[str] = set()
    try:
        keys = load_master_keys(settings)
        key_ids = set(keys.by_id())
        origin = "CADUCEE_MASTER_KEY" if keys.from_env else str(settings.master_key_path)
        report.ok(
            f"clé maîtresse {keys.current.key_id} ({origin}, droits corrects)",
            f"master key {keys.current.key_id} ({origin}, permissions correct)",
        )
    except CaduceeError as error:
        report.error(error.fr, error.en)
    cert = settings.tls_dir / "server.crt"
    if not cert.exists():
        report.error(f"certificat TLS absent ({cert})", f"TLS certificate missing ({cert})")
    else:
        not_after = certificate_not_after(cert)
        left = not_after - datetime.now(UTC)
        day = not_after.date().isoformat()
        if left <= timedelta(0):
            report.error(
                f"certificat TLS expiré le {day} ({cert})",
                f"TLS certificate expired on {day} ({cert})",
            )
        elif left < CERT_WARNING:
            report.warn(
                f"certificat TLS expire le {day}, dans {left.days} jours : renouvelez-le",
                f"TLS certificate expires on {day}, in {left.days} days: renew it",
            )
        else:
            report.ok(f"certificat TLS valide jusqu'au {day}", f"TLS certificate valid until {day}")
    return key_ids


async def check_database(settings: Settings, key_ids: set[str], report: Report) -> None:
    db = Database(settings.effective_database_url)
    try:
        try:
            async with db.read() as conn:
                await node_repo.answers(conn)
        except Exception as error:
            report.error(
                f"base de données injoignable : {type(error).__name__}",
                f"database unreachable: {type(error).__name__}",
            )
            return
        kind = "SQLite" if db.is_sqlite else "PostgreSQL"
        report.ok(f"base de données {kind} joignable", f"{kind} database reachable")
        state = await migrate.schema_state(db)
        current, head = state.current, state.head
        if current == head:
            report.ok(f"schéma à jour (révision {head})", f"schema up to date (revision {head})")
        elif state.status == "ahead_compatible":
            report.warn(
                f"schéma en révision {current}, plus récente que ce nœud ({head}) mais additive "
                f"(compatible depuis {state.oldest_compatible}) : ce nœud sert encore ; "
                "mettez-le à jour",
                f"schema at revision {current}, newer than this node ({head}) but additive "
                f"(compatible from {state.oldest_compatible}): this node still serves; "
                "upgrade it",
            )
        else:
            report.error(
                f"schéma en révision {current or 'vide'}, {head} attendue : lancez "
                "« caducee migrate »",
                f"schema at revision {current or 'empty'}, {head} expected: run 'caducee migrate'",
            )
            return
        async with db.read() as conn:
            used = await node_repo.master_key_ids_in_use(conn)
        missing = used - key_ids
        if key_ids and missing:
            report.error(
                f"clés de données protégées par une clé maîtresse absente : "
                f"{', '.join(sorted(missing))}",
                f"data keys wrapped by a missing master key: {', '.join(sorted(missing))}",
            )
        elif key_ids:
            report.ok("toutes les clés de données sont lisibles", "every data key is readable")
        await check_trust_list(settings, db, report)
        await check_cluster(settings, db, report)
    finally:
        await db.dispose()


async def check_cluster(settings: Settings, db: Database, report: Report) -> None:
    """The nodes that served this database in the last day: alive or not, version, schema
    revision of their code (``cluster_nodes``, see services.cluster)."""
    now = datetime.now(UTC)
    async with db.read() as conn:
        seen = await node_repo.nodes(conn, seen_since=now - NODES_SEEN_WITHIN)
    alive_after = now - timedelta(seconds=ALIVE_BEATS * settings.cluster_heartbeat_seconds)
    alive = [n for n in seen if n.seen_at >= alive_after]
    report.ok(
        f"grappe : {len(alive)} nœud(s) en service, {len(seen)} vu(s) depuis 24 h",
        f"cluster: {len(alive)} node(s) serving, {len(seen)} seen in the last 24 h",
    )
    for node in seen:
        age = int((now - node.seen_at).total_seconds())
        where = f"{node.hostname}:{node.data_dir}"
        if node.seen_at >= alive_after:
            report.ok(
                f"  nœud {where} en service (version {node.version}, schéma "
                f"{node.schema_revision}, blobs {node.blob_store}, vu il y a {age} s)",
                f"  node {where} serving (version {node.version}, schema "
                f"{node.schema_revision}, blobs {node.blob_store}, seen {age} s ago)",
            )
        else:
            report.warn(
                f"  nœud {where} muet depuis {age} s (version {node.version}, schéma "
                f"{node.schema_revision}) : arrêté brutalement ?",
                f"  node {where} silent for {age} s (version {node.version}, schema "
                f"{node.schema_revision}): killed?",
            )


async def check_trust_list(settings: Settings, db: Database, report: Report) -> None:
    """The MSSanté whitelist: present, and generated less than ``trust_list_max_age_days`` ago."""
    async with db.read() as conn:
        info = await trust_repo.active_list(conn)
    if info is None:
        report.warn(
            "aucune liste blanche MSSanté : lancez « caducee trust import » (ou réglez "
            "[trust] list_url)",
            "no MSSanté whitelist: run 'caducee trust import' (or set [trust] list_url)",
        )
        return
    day = info.generated_at.astimezone(UTC).date().isoformat()
    if info.generated_at < datetime.now(UTC) - timedelta(days=settings.trust_list_max_age_days):
        report.warn(
            f"liste blanche MSSanté périmée (générée le {day}, plus de "
            f"{settings.trust_list_max_age_days} jours) : rafraîchissez-la",
            f"stale MSSanté whitelist (generated {day}, more than "
            f"{settings.trust_list_max_age_days} days ago): refresh it",
        )
    else:
        report.ok(
            f"liste blanche MSSanté du {day} ({info.domain_count} domaines)",
            f"MSSanté whitelist of {day} ({info.domain_count} domains)",
        )


async def check_antivirus(settings: Settings, report: Report) -> None:
    """ClamAV's daemon: configured, and answering PING."""
    address = settings.antivirus_clamd
    if not address:
        report.warn(
            "antivirus désactivé : réglez [antivirus] clamd (paquet clamav-daemon)",
            "antivirus off: set [antivirus] clamd (package clamav-daemon)",
        )
    elif await clamd.ping(address):
        report.ok(f"antivirus ClamAV joignable ({address})", f"ClamAV reachable ({address})")
    else:
        then = (
            "le courrier est refusé temporairement (451)"
            if settings.antivirus_on_unavailable == "tempfail"
            else "le courrier est accepté SANS analyse"
        )
        then_en = (
            "mail is temporarily refused (451)"
            if settings.antivirus_on_unavailable == "tempfail"
            else "mail is accepted WITHOUT a scan"
        )
        report.error(
            f"antivirus ClamAV injoignable ({address}) : {then}",
            f"ClamAV unreachable ({address}): {then_en}",
        )


async def check_blob_store(settings: Settings, report: Report) -> None:
    """The S3 bucket (``blob_store = "s3"``): reachable with the configured keys."""
    if settings.blob_store != "s3":
        return
    where = f"{settings.s3_bucket} ({settings.s3_endpoint or 'AWS'})"
    store = S3BlobStore(settings)
    try:
        held_since = await store.check()
    except CaduceeError:
        report.error(
            f"stockage objet S3 injoignable : compartiment {where} ; le courrier est refusé "
            "temporairement (451) et les messages ne peuvent être lus (voir le journal)",
            f"S3 object store unreachable: bucket {where}; mail is temporarily refused (451) "
            "and messages cannot be read (see the log)",
        )
    else:
        report.ok(f"stockage objet S3 joignable : {where}", f"S3 object store reachable: {where}")
        if held_since is not None and held_since < datetime.now(UTC) - timedelta(days=1):
            day = held_since.date().isoformat()
            report.warn(
                f"suppressions d'objets S3 suspendues par une sauvegarde depuis le {day} : une "
                "sauvegarde a échoué ? la prochaine « caducee backup » les reprend",
                f"S3 object deletions held by a backup since {day}: did a backup fail? the next "
                "'caducee backup' resumes them",
            )
    finally:
        await store.close()


def doctor_command(data: DataOption = DEFAULT_DATA) -> None:
    """Vérifie l'installation (configuration, clés, certificat, base, migrations).
    / Check the installation."""
    settings = settings_for(data)
    report = Report()
    key_ids = check_files(settings, report)
    asyncio.run(check_database(settings, key_ids, report))
    asyncio.run(check_antivirus(settings, report))
    asyncio.run(check_blob_store(settings, report))
    for line in report.lines:
        console.print(line, soft_wrap=True)
    if report.errors:
        console.print(
            tr(
                f"{report.errors} erreur(s), {report.warnings} avertissement(s).",
                f"{report.errors} error(s), {report.warnings} warning(s).",
            )
        )
        raise typer.Exit(1)
    console.print(
        tr(
            f"Installation en bon état ({report.warnings} avertissement(s)).",
            f"Installation healthy ({report.warnings} warning(s)).",
        )
    )
