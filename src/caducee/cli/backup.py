"""``caducee backup`` (archive, verify, key) and ``caducee restore``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from caducee.app import App, open_app
from caducee.cli.common import (
    DEFAULT_DATA,
    DataOption,
    console,
    err_console,
    fail,
    progress_bar,
    with_app,
)
from caducee.config import load_settings
from caducee.errors import CaduceeError
from caducee.i18n import tr
from caducee.services import backup
from caducee.store.backup_crypto import BackupPrivateKey
from caducee.store.crypto import write_private_file

app = typer.Typer(
    help="Sauvegardes chiffrées / encrypted backups.",
    invoke_without_command=True,
    no_args_is_help=False,
)
key_app = typer.Typer(help="Clé de sauvegarde / backup key.")
app.add_typer(key_app, name="key")

KeyOption = Annotated[
    Path | None,
    typer.Option(
        "--key",
        help="Fichier de la clé privée de sauvegarde / backup private key file.",
        exists=False,
    ),
]


def _size(count: int) -> str:
    return f"{count / 1024**2:.1f} Mo" if count >= 1024**2 else f"{count / 1024:.1f} ko"


@app.callback()
def backup_command(
    ctx: typer.Context,
    to: Annotated[
        Path | None,
        typer.Option("--to", help="Répertoire des archives / directory of the archives."),
    ] = None,
    data: DataOption = DEFAULT_DATA,
) -> None:
    """Écrit une archive chiffrée et vérifiable, serveur en marche. / Write an encrypted,
    verifiable archive while the server runs."""
    if ctx.invoked_subcommand is not None:
        return
    if to is None:
        raise fail(
            tr(
                "Indiquez le répertoire des archives : caducee backup --to RÉPERTOIRE.",
                "Give the directory of the archives: caducee backup --to DIRECTORY.",
            )
        )
    destination = to.resolve()

    with progress_bar(tr("Sauvegarde", "Backup")) as progress:

        async def action(context: App) -> backup.ArchiveReport:
            return await backup.back_up(context, destination, progress=progress)

        report = with_app(data, action)
    console.print(
        tr(
            f"Archive écrite : {report.path} ({report.files} fichiers, {_size(report.bytes)} ; "
            f"{report.counts.get('messages', 0)} messages, "
            f"{report.counts.get('mailboxes', 0)} boîtes).",
            f"Archive written: {report.path} ({report.files} files, {_size(report.bytes)}; "
            f"{report.counts.get('messages', 0)} messages, "
            f"{report.counts.get('mailboxes', 0)} mailboxes).",
        ),
        markup=False,
    )
    if not report.master_key_included:
        err_console.print(
            tr(
                "Attention : la clé maîtresse vient de CADUCEE_MASTER_KEY et n'est pas dans "
                "l'archive ; gardez-la à part, sans elle l'archive est illisible.",
                "Warning: the master key comes from CADUCEE_MASTER_KEY and is not in the "
                "archive; keep it separately, without it the archive is unreadable.",
            ),
            markup=False,
        )


def _load_key(path: Path | None) -> BackupPrivateKey | None:
    if path is None:
        return None
    try:
        return backup.read_private_key(path)
    except OSError as error:
        raise fail(
            tr(
                f"Fichier de clé {path} illisible : {error.strerror}.",
                f"Key file {path} unreadable: {error.strerror}.",
            )
        ) from None
    except CaduceeError as error:
        raise fail(error) from None


@app.command("verify")
def verify_command(
    archive: Annotated[Path, typer.Argument(help="Archive (ou répertoire des archives).")],
    key: KeyOption = None,
) -> None:
    """Vérifie une archive : sommes de contrôle ; avec --key, déchiffrement complet et
    authentification. / Check an archive: checksums; with --key, full decryption and
    authentication."""
    private = _load_key(key)
    try:
        report = backup.verify(archive, private)
    except CaduceeError as error:
        raise fail(error) from None
    depth = (
        tr("déchiffrée et authentifiée", "decrypted and authenticated")
        if report.authenticated
        else tr(
            "sommes de contrôle justes (authentification : --key)",
            "checksums right (authentication: --key)",
        )
    )
    console.print(
        tr(
            f"Archive {report.archive} intacte : {report.files} fichiers, {_size(report.bytes)}, "
            f"{depth} ; {report.backend}, {report.created_at}.",
            f"Archive {report.archive} intact: {report.files} files, {_size(report.bytes)}, "
            f"{depth}; {report.backend}, {report.created_at}.",
        ),
        markup=False,
    )


@key_app.command("create")
def key_create(
    data: DataOption = DEFAULT_DATA,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Écrire la clé privée dans ce fichier (mode 0600)."),
    ] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Remplacer la clé existante.")] = False,
) -> None:
    """Crée la clé de sauvegarde : la clé publique reste sur le serveur, la clé privée est
    affichée une seule fois. / Create the backup key: the public key stays on the server, the
    private key is shown once."""
    if out is not None and out.exists():
        raise fail(tr(f"{out} existe déjà.", f"{out} already exists."))

    async def action(context: App) -> BackupPrivateKey:
        return await backup.create_key(context, replace=replace)

    private = with_app(data, action)
    if out is not None:
        write_private_file(out.resolve(), private.encoded() + "\n")
        console.print(
            tr(
                f"Clé privée de sauvegarde écrite dans {out} (empreinte "
                f"{private.public.fingerprint}). Rangez-la hors de ce serveur : elle seule "
                "permet de restaurer.",
                f"Backup private key written to {out} (fingerprint "
                f"{private.public.fingerprint}). Keep it away from this server: only it can "
                "restore.",
            ),
            markup=False,
        )
        return
    console.print(private.encoded(), markup=False)
    err_console.print(
        tr(
            f"Clé privée de sauvegarde (empreinte {private.public.fingerprint}), affichée cette "
            "seule fois : rangez-la hors de ce serveur (coffre, papier). Elle seule permet de "
            "restaurer.",
            f"Backup private key (fingerprint {private.public.fingerprint}), shown this once: "
            "keep it away from this server (vault, paper). Only it can restore.",
        ),
        markup=False,
    )


def restore_command(
    from_: Annotated[
        Path, typer.Option("--from", help="Archive (ou répertoire des archives : la plus récente).")
    ],
    data: Annotated[
        Path, typer.Option("--data", help="Nouveau répertoire de données (absent ou vide).")
    ],
    key: Annotated[Path, typer.Option("--key", help="Fichier de la clé privée de sauvegarde.")],
    database_url: Annotated[
        str,
        typer.Option(
            "--database-url", help="PostgreSQL : base neuve et vide où restaurer la base."
        ),
    ] = "",
) -> None:
    """Restaure une archive dans un nouveau répertoire de données, tout ou rien. / Restore an
    archive into a new data directory, all or nothing."""
    private = _load_key(key)
    assert private is not None
    try:
        with progress_bar(tr("Restauration", "Restore")) as progress:
            report = backup.restore(
                from_, data, private, database_url=database_url, progress=progress
            )
    except CaduceeError as error:
        raise fail(error) from None
    try:

        async def record() -> None:
            async with open_app(load_settings(report.path)) as restored:
                await backup.audit_restore(restored, report)

        asyncio.run(record())
    except CaduceeError as error:
        err_console.print(error.message(), markup=False)
    console.print(
        tr(
            f"Restauré dans {report.path} : {report.files} fichiers, "
            f"{report.counts.get('messages', 0)} messages. Vérifiez avec « caducee audit verify "
            f"--data {report.path} », puis démarrez avec « caducee serve --data {report.path} ».",
            f"Restored into {report.path}: {report.files} files, "
            f"{report.counts.get('messages', 0)} messages. Check with 'caducee audit verify "
            f"--data {report.path}', then start with 'caducee serve --data {report.path}'.",
        ),
        markup=False,
    )
