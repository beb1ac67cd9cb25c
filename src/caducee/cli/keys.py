"""``caducee keys``: master key rotation."""

from __future__ import annotations

from typing import Annotated

import typer

from caducee.app import App
from caducee.cli.common import DEFAULT_DATA, DataOption, console, with_app
from caducee.i18n import tr
from caducee.store.crypto import MasterKey
from caducee.store.keyring import rewrap_all, rotate_master_key

app = typer.Typer(help="Clés de chiffrement / encryption keys.")


@app.command("rotate")
def rotate(
    data: DataOption = DEFAULT_DATA,
    keep_previous: Annotated[
        bool, typer.Option("--keep-previous", help="Garder l'ancienne clé dans keys/previous/.")
    ] = False,
    rewrap_only: Annotated[
        bool,
        typer.Option(
            "--rewrap-only",
            help="Ne pas créer de clé : rechiffrer les clés de données "
            "sous la clé courante (clé fournie par CADUCEE_MASTER_KEY).",
        ),
    ] = False,
) -> None:
    """Remplace la clé maîtresse et rechiffre les clés de données, sans arrêt du service.
    / Replace the master key and re-wrap every data key, without downtime."""

    async def action(context: App) -> None:
        if rewrap_only:
            count = await rewrap_all(context.db, context.keyring)
            console.print(
                tr(
                    f"{count} clé(s) de données rechiffrée(s) sous la clé "
                    f"{context.keyring.keys.current.key_id}.",
                    f"{count} data key(s) re-wrapped under key "
                    f"{context.keyring.keys.current.key_id}.",
                )
            )
            return
        old, new, count = await rotate_master_key(
            context.db, context.settings, keep_previous=keep_previous
        )
        console.print(
            tr(
                f"Clé maîtresse remplacée : {old} → {new} ; {count} clé(s) de données "
                "rechiffrée(s).",
                f"Master key replaced: {old} → {new}; {count} data key(s) re-wrapped.",
            )
        )

    with_app(data, action)


@app.command("generate")
def generate() -> None:
    """Affiche une nouvelle clé maîtresse (pour CADUCEE_MASTER_KEY). / Print a new master key."""
    console.print(MasterKey.generate().encoded(), markup=False)
