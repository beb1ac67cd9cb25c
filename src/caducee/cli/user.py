"""``caducee user``: accounts of people (add, list, disable, enable, delete, passwd)."""

from __future__ import annotations

import secrets
import string
import sys
from typing import Annotated

import typer
from rich.table import Table

from caducee.app import App
from caducee.cli.common import DEFAULT_DATA, DataOption, console, read_secret_stdin, with_app
from caducee.cli.mailbox import YesOption, confirmation
from caducee.domain.model import Role
from caducee.errors import InvalidInput
from caducee.i18n import tr
from caducee.services import accounts, lifecycle

app = typer.Typer(help="Comptes des personnes (praticiens, secrétaires, admins) / user accounts.")


def generate_password(length: int = 20) -> str:
    """A random password that passes the strength rule (letters, digits, symbols)."""
    alphabet = string.ascii_letters + string.digits + "-_.!?"
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(length))
        if (
            any(c.islower() for c in password)
            and any(c.isupper() for c in password)
            and any(c.isdigit() for c in password)
        ):
            return password


def obtain_password(password_stdin: bool) -> tuple[str, bool]:
    """The new password and whether it was generated (and so must be shown once)."""
    if password_stdin:
        password = read_secret_stdin()
        if not password:
            raise InvalidInput(
                "Aucun mot de passe reçu sur l'entrée standard.", "No password on standard input."
            )
        return password, False
    if sys.stdin.isatty():
        password = typer.prompt(
            tr("Mot de passe", "Password"), hide_input=True, confirmation_prompt=True
        )
        return password, False
    return generate_password(), True


@app.command("add")
def add(
    address: Annotated[str, typer.Argument(help="Adresse de messagerie, qui sert d'identifiant.")],
    data: DataOption = DEFAULT_DATA,
    name: Annotated[str, typer.Option("--name", help="« Prénom Nom ».")] = "",
    first_name: Annotated[str, typer.Option("--first-name", help="Prénom.")] = "",
    last_name: Annotated[str, typer.Option("--last-name", help="Nom (remplace --name).")] = "",
    civility: Annotated[str, typer.Option("--civility", help="Dr, Mme, M., Pr…")] = "",
    profession: Annotated[str, typer.Option("--profession", help="Médecin, infirmier…")] = "",
    role: Annotated[str, typer.Option("--role", help="praticien, secretaire ou admin.")] = (
        "praticien"
    ),
    rpps: Annotated[str | None, typer.Option("--rpps", help="Numéro RPPS (11 chiffres).")] = None,
    adeli: Annotated[str | None, typer.Option("--adeli", help="Numéro ADELI (9 car.).")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Lire le mot de passe sur l'entrée standard.")
    ] = False,
) -> None:
    """Crée un compte et sa boîte personnelle (PER). / Create an account and its PER mailbox."""
    first, last = accounts.split_name(name)
    new = accounts.NewAccount(
        login=address,
        first_name=first_name or first,
        last_name=last_name or last,
        civility=civility,
        profession=profession,
        role=Role.parse(role),
        rpps=rpps,
        adeli=adeli,
        password="",
    )
    if not new.last_name:
        raise typer.BadParameter(
            tr("--name ou --last-name est obligatoire.", "--name or --last-name is required.")
        )
    password, generated = obtain_password(password_stdin)

    async def action(context: App) -> None:
        account, mailbox = await accounts.add_account(
            context, accounts.NewAccount(**{**new.__dict__, "password": password})
        )
        console.print(
            tr(
                f"Compte créé : {account.login} ({account.role.value}), boîte {mailbox.address}.",
                f"Account created: {account.login} ({account.role.value}), mailbox "
                f"{mailbox.address}.",
            )
        )
        if generated:
            console.print(
                tr("Mot de passe (affiché une seule fois) :", "Password (shown only once):")
            )
            console.print(password, markup=False)

    with_app(data, action)


@app.command("list")
def list_(data: DataOption = DEFAULT_DATA) -> None:
    """Liste les comptes. / List accounts."""

    async def action(context: App) -> None:
        table = Table(
            tr("Identifiant", "Login"),
            tr("Nom", "Name"),
            tr("Rôle", "Role"),
            "RPPS/ADELI",
            "2FA",
            tr("État", "State"),
            tr("Dernière utilisation", "Last used"),
        )
        for account in await accounts.list_accounts(context):
            table.add_row(
                account.login,
                account.display_name,
                account.role.value,
                account.rpps or account.adeli or "",
                "TOTP" if account.totp_enabled else "",
                tr("désactivé", "disabled") if account.disabled else tr("actif", "active"),
                f"{account.last_used_at:%Y-%m-%d %H:%M} UTC" if account.last_used_at else "—",
            )
        console.print(table)

    with_app(data, action)


def _set_disabled(address: str, data: DataOption, disabled: bool) -> None:
    async def action(context: App) -> None:
        account = await accounts.set_disabled(context, address, disabled)
        state = tr("désactivé", "disabled") if account.disabled else tr("réactivé", "enabled")
        console.print(tr(f"Compte {account.login} {state}.", f"Account {account.login} {state}."))

    with_app(data, action)


@app.command("disable")
def disable(address: str, data: DataOption = DEFAULT_DATA) -> None:
    """Désactive un compte (plus aucune connexion). / Disable an account."""
    _set_disabled(address, data, True)


@app.command("enable")
def enable(address: str, data: DataOption = DEFAULT_DATA) -> None:
    """Réactive un compte. / Enable an account."""
    _set_disabled(address, data, False)


@app.command("delete")
def delete(address: str, data: DataOption = DEFAULT_DATA, yes: YesOption = False) -> None:
    """Supprime un compte, sa boîte personnelle et ses accès.
    / Delete an account, its personal mailbox and its accesses."""
    typed = confirmation(address, yes)

    async def action(context: App) -> None:
        deleted = await lifecycle.delete_account(context, address, confirm=typed)
        console.print(
            tr(
                f"Compte {deleted.address} supprimé ({deleted.messages} message(s)).",
                f"Account {deleted.address} deleted ({deleted.messages} message(s)).",
            )
        )

    with_app(data, action)


@app.command("passwd")
def passwd(
    address: str,
    data: DataOption = DEFAULT_DATA,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Lire le mot de passe sur l'entrée standard.")
    ] = False,
) -> None:
    """Change le mot de passe d'un compte. / Change an account's password."""
    password, generated = obtain_password(password_stdin)

    async def action(context: App) -> None:
        await accounts.set_password(context, address, password)
        console.print(tr("Mot de passe changé.", "Password changed."))
        if generated:
            console.print(
                tr(
                    "Nouveau mot de passe (affiché une seule fois) :",
                    "New password (shown only once):",
                )
            )
            console.print(password, markup=False)

    with_app(data, action)
