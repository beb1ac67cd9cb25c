"""``caducee practice``: practices (cabinets, établissements) and their domains."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from caducee.app import App
from caducee.cli.common import DEFAULT_DATA, DataOption, console, with_app
from caducee.domain.model import DEFAULT_MAILBOX_LIMIT, Practice
from caducee.i18n import tr
from caducee.services import mfa, practices
from caducee.store import directory_repo

app = typer.Typer(help="Cabinets et établissements / practices.")


def _show(practice: Practice, mailbox_count: int | None = None) -> None:
    used = f"{mailbox_count}/" if mailbox_count is not None else ""
    console.print(
        tr(
            f"Cabinet n° {practice.id} : {practice.name}\n  domaines : "
            f"{', '.join(practice.domains)}\n  FINESS : {practice.finess or '—'}   SIRET : "
            f"{practice.siret or '—'}\n  boîtes : {used}{practice.mailbox_limit}",
            f"Practice #{practice.id}: {practice.name}\n  domains: "
            f"{', '.join(practice.domains)}\n  FINESS: {practice.finess or '—'}   SIRET: "
            f"{practice.siret or '—'}\n  mailboxes: {used}{practice.mailbox_limit}",
        )
    )


async def _show_second_factor(context: App, practice_id: int) -> None:
    if await mfa.second_factor_required(context, practice_id):
        console.print(
            tr(
                "  second facteur : exigé pour le webmail (TOTP ou clé de sécurité, enrôlé à la "
                "première connexion) ; les logiciels de messagerie utilisent des mots de passe "
                "d'application",
                "  second factor: required for the webmail (TOTP or a security key, enrolled at "
                "the first login); mail clients use app passwords",
            )
        )
    else:
        console.print(
            tr(
                "  second facteur : facultatif (--second-factor pour l'exiger)",
                "  second factor: optional (--second-factor to require it)",
            )
        )


@app.command("create")
def create(
    data: DataOption = DEFAULT_DATA,
    name: Annotated[str, typer.Option("--name", help="Nom du cabinet.")] = "",
    domain: Annotated[
        list[str] | None, typer.Option("--domain", help="Domaine (répétable).")
    ] = None,
    finess: Annotated[str | None, typer.Option("--finess")] = None,
    siret: Annotated[str | None, typer.Option("--siret")] = None,
    mailbox_limit: Annotated[int, typer.Option("--mailbox-limit")] = DEFAULT_MAILBOX_LIMIT,
) -> None:
    """Crée un cabinet (hébergement de plusieurs cabinets). / Create a practice."""

    async def action(context: App) -> None:
        practice = await practices.create_practice(
            context, name, domain or [], finess=finess, siret=siret, mailbox_limit=mailbox_limit
        )
        _show(practice)
        await _show_second_factor(context, practice.id)

    with_app(data, action)


@app.command("list")
def list_(data: DataOption = DEFAULT_DATA) -> None:
    """Liste les cabinets. / List practices."""

    async def action(context: App) -> None:
        table = Table(
            "N°",
            tr("Nom", "Name"),
            tr("Domaines", "Domains"),
            "FINESS",
            "SIRET",
            tr("Limite de boîtes", "Mailbox limit"),
        )
        for practice in await practices.list_practices(context):
            table.add_row(
                str(practice.id),
                practice.name,
                ", ".join(practice.domains),
                practice.finess or "",
                practice.siret or "",
                str(practice.mailbox_limit),
            )
        console.print(table)

    with_app(data, action)


@app.command("show")
def show(
    practice_id: Annotated[int, typer.Argument()] = 1, data: DataOption = DEFAULT_DATA
) -> None:
    """Affiche un cabinet. / Show a practice."""

    async def action(context: App) -> None:
        practice = await practices.get_practice(context, practice_id)
        async with context.db.read() as conn:
            count = await directory_repo.count_mailboxes(conn, practice.id)
        _show(practice, count)
        await _show_second_factor(context, practice.id)

    with_app(data, action)


@app.command("update")
def update(
    practice_id: Annotated[int, typer.Argument()] = 1,
    data: DataOption = DEFAULT_DATA,
    name: Annotated[str | None, typer.Option("--name")] = None,
    finess: Annotated[str | None, typer.Option("--finess", help="Vide pour effacer.")] = None,
    siret: Annotated[str | None, typer.Option("--siret", help="Vide pour effacer.")] = None,
    mailbox_limit: Annotated[int | None, typer.Option("--mailbox-limit")] = None,
    add_domain: Annotated[list[str] | None, typer.Option("--add-domain")] = None,
    second_factor: Annotated[
        bool | None,
        typer.Option(
            "--second-factor/--no-second-factor",
            help="Exiger un second facteur pour le webmail (audité). / Require a second factor.",
        ),
    ] = None,
) -> None:
    """Modifie un cabinet. / Update a practice."""

    async def action(context: App) -> None:
        changes = (name, finess, siret, mailbox_limit, add_domain)
        if second_factor is not None and all(change is None for change in changes):
            practice = await practices.get_practice(context, practice_id)
        else:
            practice = await practices.update_practice(
                context,
                practice_id,
                name=name,
                finess=finess,
                siret=siret,
                mailbox_limit=mailbox_limit,
                add_domains=add_domain,
            )
        if second_factor is not None:
            await mfa.set_second_factor_required(
                context, practice.id, second_factor, actor="cli", source="cli"
            )
        _show(practice)
        await _show_second_factor(context, practice.id)

    with_app(data, action)
