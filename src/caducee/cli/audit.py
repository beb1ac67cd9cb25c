"""``caducee audit``: verify, export and purge the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from caducee.app import App
from caducee.cli.common import DEFAULT_DATA, DataOption, console, fail, with_app
from caducee.errors import InvalidInput
from caducee.i18n import tr
from caducee.services import audit

app = typer.Typer(help="Journal d'audit / audit trail.")


def parse_when(text: str | None, option: str) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"Date invalide pour {option} : « {text} » (AAAA-MM-JJ ou AAAA-MM-JJTHH:MM).",
            f"Invalid date for {option}: '{text}' (YYYY-MM-DD or YYYY-MM-DDTHH:MM).",
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@app.command("verify")
def verify(data: DataOption = DEFAULT_DATA) -> None:
    """Vérifie la chaîne du journal et sa tête scellée. / Verify the chain and its sealed head."""

    async def action(context: App) -> audit.VerifyResult:
        return await audit.verify(context.db)

    result = with_app(data, action)
    if result.ok:
        console.print(
            tr(
                f"Journal intègre : {result.checked} enregistrement(s) vérifié(s) ; tête n° "
                f"{result.head_seq}, MAC {result.head_hash} (conservez-la ailleurs pour "
                "détecter la restauration d'une copie ancienne).",
                f"Audit trail intact: {result.checked} record(s) verified; head #"
                f"{result.head_seq}, MAC {result.head_hash} (keep it elsewhere to detect the "
                "restoration of an older copy).",
            )
        )
        return
    where_fr = (
        f" (premier enregistrement en cause : n° {result.first_bad_seq})"
        if result.first_bad_seq is not None
        else ""
    )
    where_en = (
        f" (first bad record: #{result.first_bad_seq})" if result.first_bad_seq is not None else ""
    )
    raise fail(
        tr(
            f"Journal altéré : {result.reason_fr}{where_fr}.",
            f"Audit trail tampered with: {result.reason_en}{where_en}.",
        ),
        code=2,
    )


@app.command("export")
def export(
    data: DataOption = DEFAULT_DATA,
    format_: Annotated[str, typer.Option("--format", help="csv ou json.")] = "csv",
    since: Annotated[
        str | None, typer.Option("--since", help="Début (inclus), AAAA-MM-JJ.")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Fin (exclue), AAAA-MM-JJ.")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Fichier de sortie.")
    ] = None,
) -> None:
    """Exporte le journal d'une période en CSV ou JSON. / Export a period as CSV or JSON."""

    async def action(context: App) -> str:
        return await audit.export(
            context.db, format_, parse_when(since, "--since"), parse_when(until, "--until")
        )

    text = with_app(data, action)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, "utf-8")
        console.print(tr(f"Export écrit dans {output}.", f"Export written to {output}."))


@app.command("purge")
def purge(
    data: DataOption = DEFAULT_DATA,
    days: Annotated[int | None, typer.Option("--days", help="Durée de conservation (jours).")] = (
        None
    ),
) -> None:
    """Supprime les enregistrements plus anciens que la durée de conservation.
    / Delete records older than the retention period."""

    async def action(context: App) -> int:
        return await audit.purge(context.db, days or context.settings.audit_retention_days)

    deleted = with_app(data, action)
    console.print(
        tr(
            f"{deleted} enregistrement(s) purgé(s) ; la chaîne reste vérifiable.",
            f"{deleted} record(s) purged; the chain stays verifiable.",
        )
    )
