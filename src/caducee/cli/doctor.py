"""``caducee doctor``: check an installation and say what to fix."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import typer

from caducee.cli.common import DEFAULT_DATA, DataOption, console, settings_for
from caducee.config import Settings
from caducee.errors import CaduceeError
from caducee.flows import node_state
from caducee.i18n import tr
from caducee.services.cluster import ALIVE_BEATS
from caducee.store import migrate, node_repo
from caducee.store.database import Database
from caducee.store.keyring import load_master_keys

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

    def add(self, check: node_state.Check) -> None:
        {
            node_state.Status.OK: self.ok,
            node_state.Status.WARN: self.warn,
            node_state.Status.FAIL: self.error,
        }[check.status](check.fr, check.en)


def check_files(settings: Settings, report: Report) -> set[str]:
    """Configuration and master key. Returns the ids of the usable master keys."""
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
    return key_ids


async def check_node(settings: Settings, key_ids: set[str], report: Report) -> None:
    """The checks ``/readyz`` answers (:mod:`caducee.flows.node_state`, one place for each),
    then what only an installation has: the schema's revision and the master keys in use."""
    db = Database(settings.effective_database_url)
    try:
        checks = await node_state.readiness(settings, db, serving=False)
        for check in checks:
            report.add(check)
        if checks[0].status is not node_state.Status.OK:  # the database
            return
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


async def check_blob_store(settings: Settings, report: Report) -> None:
    """The S3 bucket (``blob_store = "s3"``): reachable with the configured keys."""
    if settings.blob_store != "s3":
        return
    where = f"{settings.s3_bucket} ({settings.s3_endpoint or 'AWS'})"
    from caducee.store.s3_blobs import S3BlobStore  # botocore: S3 nodes only

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
    """Vérifie l'installation (configuration, clés, certificat, base, migrations, ports, file
    d'envoi, liste blanche, CRL, antivirus : les vérifications de /readyz).
    / Check the installation (the checks of /readyz, and more)."""
    settings = settings_for(data)
    report = Report()
    key_ids = check_files(settings, report)
    asyncio.run(check_node(settings, key_ids, report))
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
