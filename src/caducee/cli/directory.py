"""``caducee directory``: the national MSSanté directory (import, search, show)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from caducee.app import App
from caducee.cli.common import DEFAULT_DATA, DataOption, console, fail, progress_bar, with_app
from caducee.domain.annuaire import Professional
from caducee.health import annuaire
from caducee.i18n import language, tr
from caducee.store.annuaire_repo import ImportInfo

app = typer.Typer(help="Annuaire national MSSanté / National MSSanté directory.")

#: Refused lines printed in full; beyond, only their number.
_REPORT_LINES = 20


@app.command("import")
def import_(
    source: Annotated[
        str | None,
        typer.Argument(help="Fichier extraction-correspondance-mssante.txt / extraction file."),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option("--url", help="Adresse http(s) de l'extraction / extraction URL."),
    ] = None,
    data: DataOption = DEFAULT_DATA,
) -> None:
    """Importe l'annuaire (remplace l'actuel d'un coup). / Import the directory (replaces the
    current one at once)."""
    location = url or source
    if not location or (url and source):
        raise fail(
            tr(
                "Indiquez un fichier ou --url ADRESSE (pas les deux).",
                "Give a file or --url ADDRESS (not both).",
            )
        )
    with progress_bar(tr("Annuaire", "Directory"), unit="bytes") as progress:

        async def action(context: App) -> annuaire.ImportReport:
            executor = annuaire.import_executor()
            try:
                return await annuaire.import_from(
                    context, location, actor="cli", progress=progress, executor=executor
                )
            finally:
                executor.shutdown(cancel_futures=True)

        report = with_app(data, action)
    console.print(
        tr(
            f"Annuaire importé : {report.rows} adresses, {report.rejected_count} ligne(s) "
            f"refusée(s), en {report.seconds:.0f} s.",
            f"Directory imported: {report.rows} addresses, {report.rejected_count} line(s) "
            f"refused, in {report.seconds:.0f} s.",
        )
    )
    if report.replaced is not None:
        console.print(
            tr(
                f"L'annuaire précédent est remplacé ({report.purged_rows} lignes supprimées).",
                f"The previous directory is replaced ({report.purged_rows} rows deleted).",
            )
        )
    if report.rejected_count:
        console.print(tr("Lignes refusées :", "Refused lines:"))
        english = language() == "en"
        for line, fr, en in report.rejected[:_REPORT_LINES]:
            console.print(f"  {tr('ligne', 'line')} {line} : {en if english else fr}", markup=False)
        if report.rejected_count > _REPORT_LINES:
            console.print(f"  … (+{report.rejected_count - _REPORT_LINES})")


def _table(found: list[Professional]) -> Table:
    table = Table(
        tr("Nom", "Name"),
        tr("Profession", "Profession"),
        tr("Savoir-faire", "Specialty"),
        "Structure",
        tr("Ville", "City"),
        tr("Adresse MSSanté", "MSSanté address"),
        "RPPS",
    )
    for p in found:
        table.add_row(
            p.display_name,
            p.profession,
            p.specialty,
            p.structure,
            f"{p.postcode} {p.city}".strip(),
            p.email,
            p.rpps,
        )
    return table


@app.command("search")
def search(
    words: Annotated[list[str], typer.Argument(help="Mots cherchés / words (« cardio lyon »).")],
    data: DataOption = DEFAULT_DATA,
) -> None:
    """Cherche dans l'annuaire (nom, profession, ville, RPPS…). / Search the directory."""

    async def action(context: App) -> tuple[ImportInfo | None, list[Professional]]:
        return await annuaire.status(context), await annuaire.search(context, " ".join(words))

    info, found = with_app(data, action)
    if info is None:
        raise fail(
            tr(
                "Aucun annuaire importé : lancez « caducee directory import FICHIER ».",
                "No directory imported: run 'caducee directory import FILE'.",
            )
        )
    if not found:
        console.print(tr("Aucun résultat.", "No result."))
        raise typer.Exit(1)
    console.print(_table(found))


@app.command("show")
def show(data: DataOption = DEFAULT_DATA) -> None:
    """Affiche l'annuaire en place. / Show the directory in force."""
    info = with_app(data, annuaire.status)
    if info is None:
        raise fail(
            tr(
                "Aucun annuaire importé : lancez « caducee directory import FICHIER ».",
                "No directory imported: run 'caducee directory import FILE'.",
            )
        )
    when = info.finished_at or info.started_at
    console.print(
        tr(
            f"Annuaire importé le {when:%Y-%m-%d %H:%M} UTC depuis {info.source or '—'} : "
            f"{info.row_count} adresses, {info.rejected_count} ligne(s) refusée(s), "
            f"SHA-256 {info.sha256}",
            f"Directory imported {when:%Y-%m-%d %H:%M} UTC from {info.source or '—'}: "
            f"{info.row_count} addresses, {info.rejected_count} line(s) refused, "
            f"SHA-256 {info.sha256}",
        ),
        markup=False,
    )
