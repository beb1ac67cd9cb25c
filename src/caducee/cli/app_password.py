"""``caducee app-password``: app passwords for mail clients (create, list, revoke).

ADDRESS is an account's login, or the address of a mailbox that logs in with its own address
(TLT, ORG, APP: e.g. ``caducee app-password create tlt-dupont@cabinet.fr --label "Logiciel de
facturation"``); the billing software then logs in with that address and opens that mailbox only.

``create`` prints the new password alone on standard output (so a script can capture it);
every other message goes to standard error.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from caducee.app import App
from caducee.cli.common import DEFAULT_DATA, DataOption, console, err_console, with_app
from caducee.i18n import tr
from caducee.services import app_passwords

app = typer.Typer(help="Mots de passe d'application (IMAP, POP3, SMTP) / app passwords")

ADDRESS_HELP = (
    "Identifiant du compte, ou adresse d'une boîte TLT, ORG ou APP qui se connecte avec sa "
    "propre adresse. / An account's login, or the address of a TLT, ORG or APP mailbox."
)


def _when(ts: datetime | None) -> str:
    return ts.astimezone().strftime("%d/%m/%Y %H:%M") if ts is not None else ""


@app.command("create")
def create(
    address: Annotated[str, typer.Argument(help=ADDRESS_HELP)],
    label: Annotated[
        str, typer.Option("--label", help="Libellé : l'appareil ou le logiciel (1 à 100 car.).")
    ],
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="Protocole autorisé : imap, pop3 ou smtp (répétable ; défaut : les trois).",
        ),
    ] = None,
    data: DataOption = DEFAULT_DATA,
) -> None:
    """Crée un mot de passe d'application et l'affiche une seule fois.
    / Create an app password and show it once."""
    scopes = scope or sorted(app_passwords.MAIL_SCOPES)

    async def action(context: App) -> str:
        return await app_passwords.create_app_password(
            context, address, label, scopes, actor="cli", source="cli"
        )

    password = with_app(data, action)
    typer.echo(password)
    err_console.print(
        tr(
            "Mot de passe d'application créé (affiché une seule fois) : saisissez-le dans le "
            "logiciel de messagerie à la place du mot de passe du compte.",
            "App password created (shown only once): enter it in the mail client instead of "
            "the account password.",
        )
    )


@app.command("list")
def list_(
    address: Annotated[str, typer.Argument(help=ADDRESS_HELP)],
    data: DataOption = DEFAULT_DATA,
) -> None:
    """Liste les mots de passe d'application d'un compte ou d'une boîte.
    / List the app passwords of an account or a mailbox."""

    async def action(context: App) -> list[app_passwords.AppPasswordInfo]:
        return await app_passwords.list_app_passwords(context, address)

    items = with_app(data, action)
    if not items:
        console.print(
            tr(
                f"Aucun mot de passe d'application pour {address}.",
                f"No app password for {address}.",
            )
        )
        return
    table = Table(
        tr("N°", "Id"),
        tr("Libellé", "Label"),
        tr("Protocoles", "Protocols"),
        tr("Créé le", "Created"),
        tr("Dernière utilisation", "Last used"),
        tr("Créé par", "Created by"),
        tr("État", "State"),
        title=tr(f"Mots de passe d'application de {address}", f"App passwords of {address}"),
    )
    for item in items:
        state = (
            tr(f"révoqué le {_when(item.revoked_at)}", f"revoked on {_when(item.revoked_at)}")
            if item.revoked
            else tr("actif", "active")
        )
        table.add_row(
            str(item.id),
            Text(item.label),
            ", ".join(item.scopes),
            _when(item.created_at),
            _when(item.last_used_at) or tr("jamais", "never"),
            Text(item.created_by or "—"),
            state,
        )
    console.print(table)


@app.command("revoke")
def revoke(
    address: Annotated[str, typer.Argument(help=ADDRESS_HELP)],
    app_password_id: Annotated[
        int, typer.Argument(metavar="ID", help="Numéro affiché par « list ».")
    ],
    data: DataOption = DEFAULT_DATA,
) -> None:
    """Révoque un mot de passe d'application. / Revoke an app password."""

    async def action(context: App) -> None:
        await app_passwords.revoke_app_password(
            context, address, app_password_id, "cli", source="cli"
        )

    with_app(data, action)
    console.print(
        tr(
            f"Mot de passe d'application n° {app_password_id} révoqué : les logiciels qui "
            "l'utilisent sont refusés dès maintenant.",
            f"App password #{app_password_id} revoked: clients using it are refused from now on.",
        )
    )
