"""``caducee api-token``: API tokens of practice software (create, list, revoke)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from caducee.app import App
from caducee.cli.common import DEFAULT_DATA, DataOption, console, with_app
from caducee.i18n import tr
from caducee.services import api_tokens

app = typer.Typer(help="Jetons d'API des logiciels métier / API tokens.")


@app.command("create")
def create(
    login: Annotated[str, typer.Argument(help="Compte titulaire / owner account")],
    label: Annotated[str, typer.Option("--label", help="Logiciel / software")],
    mailbox: Annotated[list[str], typer.Option("--mailbox", help="Boîte (répétable)")],
    scope: Annotated[
        list[str],
        typer.Option("--scope", help="lecture, marquage, envoi, patients, lots, admin (répétable)"),
    ],
    days: Annotated[int | None, typer.Option("--days", help="Validité en jours")] = None,
    data: DataOption = DEFAULT_DATA,
) -> None:
    """Crée un jeton et l'affiche (une seule fois). / Create a token (shown once)."""

    async def action(context: App) -> str:
        token, _created = await api_tokens.create_token(
            context, login, label, mailbox, scope, expires_days=days, actor="cli", source="cli"
        )
        return token

    console.print(with_app(data, action), markup=False)


@app.command("list")
def list_(
    login: Annotated[str, typer.Argument(help="Compte / account")],
    data: DataOption = DEFAULT_DATA,
) -> None:
    """Liste les jetons d'un compte. / List an account's tokens."""

    async def action(context: App) -> list[api_tokens.ApiToken]:
        return await api_tokens.tokens_of(context, login)

    tokens = with_app(data, action)
    table = Table("ID", tr("Logiciel", "Software"), tr("Droits", "Scopes"), tr("État", "State"))
    for token in tokens:
        state = tr("révoqué", "revoked") if token.revoked_at else tr("actif", "active")
        table.add_row(str(token.id), token.label, ",".join(token.scopes), state)
    console.print(table)


@app.command("revoke")
def revoke(
    login: Annotated[str, typer.Argument(help="Compte / account")],
    token_id: Annotated[int, typer.Argument(help="ID du jeton / token id")],
    data: DataOption = DEFAULT_DATA,
) -> None:
    """Révoque un jeton. / Revoke a token."""

    async def action(context: App) -> None:
        await api_tokens.revoke_token(context, login, token_id, actor="cli", source="cli")

    with_app(data, action)
    console.print(tr(f"Jeton {token_id} révoqué.", f"Token {token_id} revoked."))
