"""``caducee export``: RGPD exports (issue 19). ``caducee export mailbox ADDRESS --to FILE.zip``
writes a mailbox as mbox or Maildir in a ZIP with its manifest (services.mailbox_export)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from caducee.app import App
from caducee.cli.common import DEFAULT_DATA, DataOption, console, fail, progress_bar, with_app
from caducee.cli.sizes import format_size
from caducee.i18n import tr
from caducee.services import mailbox_export, mailboxes

app = typer.Typer(help="Exports RGPD / RGPD exports.")


@app.command("mailbox")
def mailbox(
    address: str,
    to: Annotated[Path, typer.Option("--to", help="Fichier ZIP à créer / ZIP file to write.")],
    fmt: Annotated[
        str, typer.Option("--format", help="mbox (un fichier par dossier) ou maildir.")
    ] = "mbox",
    data: DataOption = DEFAULT_DATA,
) -> None:
    """Exporte une boîte (mbox ou Maildir, dans un ZIP avec son manifeste). / Export a
    mailbox (mbox or Maildir, in a ZIP with its manifest)."""
    if to.exists():
        raise fail(tr(f"{to} existe déjà : choisissez un autre fichier.", f"{to} already exists."))
    mailbox_export.check_format(fmt)

    with progress_bar(tr("Export", "Export"), unit="bytes") as progress:

        async def action(context: App) -> mailbox_export.ExportDone:
            box = await mailboxes.get_mailbox(context, address)
            return await mailbox_export.export_mailbox(
                context, box, to, fmt=fmt, actor="cli", source="cli", progress=progress
            )

        done = with_app(data, action)
    console.print(
        tr(
            f"Boîte {done.address} exportée ({done.format}) : {done.messages} message(s), "
            f"{format_size(done.bytes)}, dans {done.path}.",
            f"Mailbox {done.address} exported ({done.format}): {done.messages} message(s), "
            f"{format_size(done.bytes)}, in {done.path}.",
        )
    )
