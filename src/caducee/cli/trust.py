"""``caducee trust``: the MSSanté whitelist (import, show, lookup)."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated

import typer
from rich.table import Table

from caducee.app import App
from caducee.cli.common import DEFAULT_DATA, DataOption, console, fail, progress_bar, with_app
from caducee.health import trust_list
from caducee.i18n import tr
from caducee.store import trust_repo

app = typer.Typer(help="Espace de confiance MSSanté (liste blanche) / MSSanté trust space.")

#: Rejected entries printed in full; beyond, only their number.
_REPORT_LINES = 20


@app.command("import")
def import_(
    source: Annotated[str, typer.Argument(help="Fichier ou adresse http(s) / file or URL.")],
    data: DataOption = DEFAULT_DATA,
    checksum: Annotated[
        str | None,
        typer.Option(
            "--checksum",
            help="Fichier ou adresse de l'empreinte SHA-256 / SHA-256 checksum file or URL.",
        ),
    ] = None,
) -> None:
    """Importe la liste blanche MSSanté. / Import the MSSanté whitelist."""

    async def action(context: App) -> trust_list.ImportReport:
        return await trust_list.import_from(
            context, source, checksum_location=checksum, actor="cli"
        )

    # Download, checksum, parsing and installation: one step whose length is not known.
    with progress_bar(tr("Liste blanche", "Whitelist")):
        report = with_app(data, action)
    day = report.generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if report.unchanged:
        console.print(
            tr(
                f"Liste déjà en place (générée le {day}, {report.domain_count} domaines).",
                f"List already in force (generated {day}, {report.domain_count} domains).",
            )
        )
    else:
        console.print(
            tr(
                f"Liste blanche importée : {report.domain_count} domaines, "
                f"{report.entry_count} certificats d'opérateur, générée le {day}.",
                f"Whitelist imported: {report.domain_count} domains, "
                f"{report.entry_count} operator certificates, generated {day}.",
            )
        )
    if report.rejected:
        console.print(
            tr(
                f"{len(report.rejected)} entrée(s) ignorée(s) :",
                f"{len(report.rejected)} entry(ies) skipped:",
            )
        )
        for line in report.rejected[:_REPORT_LINES]:
            console.print(f"  {line}", markup=False)
        if len(report.rejected) > _REPORT_LINES:
            console.print(f"  … (+{len(report.rejected) - _REPORT_LINES})")


@app.command("show")
def show(data: DataOption = DEFAULT_DATA) -> None:
    """Affiche la liste en place et son âge. / Show the list in force and its age."""

    state = with_app(data, trust_list.status)
    if state.info is None:
        raise fail(
            tr(
                "Aucune liste blanche importée : lancez « caducee trust import FICHIER|URL ».",
                "No whitelist imported: run 'caducee trust import FILE|URL'.",
            )
        )
    info = state.info
    console.print(
        tr(
            f"Liste générée le {info.generated_at:%Y-%m-%d %H:%M} UTC, importée le "
            f"{info.imported_at:%Y-%m-%d %H:%M} UTC depuis {info.source or '—'}",
            f"List generated {info.generated_at:%Y-%m-%d %H:%M} UTC, imported "
            f"{info.imported_at:%Y-%m-%d %H:%M} UTC from {info.source or '—'}",
        ),
        markup=False,
    )
    console.print(
        tr(
            f"{info.domain_count} domaines, {info.entry_count} certificats, SHA-256 {info.sha256}",
            f"{info.domain_count} domains, {info.entry_count} certificates, SHA-256 {info.sha256}",
        )
    )
    if state.stale:
        console.print(
            tr(
                f"ATTENTION : liste de plus de {state.max_age_days} jours, à rafraîchir.",
                f"WARNING: list older than {state.max_age_days} days, refresh it.",
            )
        )
        raise typer.Exit(2)


@app.command("lookup")
def lookup(
    domain: Annotated[str, typer.Argument(help="Domaine / domain")],
    data: DataOption = DEFAULT_DATA,
) -> None:
    """Dit si un domaine est dans l'espace de confiance. / Is a domain in the trust space?"""

    async def action(context: App) -> list[trust_repo.DomainRow]:
        return await trust_list.entries(context, domain)

    rows = with_app(data, action)
    if not rows:
        console.print(
            tr(
                f"{domain} n'est pas dans l'espace de confiance.",
                f"{domain} is not in the trust space.",
            ),
            markup=False,
        )
        raise typer.Exit(1)
    table = Table(tr("DN du certificat d'opérateur", "Operator certificate DN"), "Description")
    for row in rows:
        table.add_row(row.dn, row.description)
    console.print(table)
