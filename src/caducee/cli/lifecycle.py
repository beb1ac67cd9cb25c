"""``caducee lifecycle``: the CNIL inactivity rule (issue 19) — what the maintenance task will
do (``report``), and the practice's exemptions (``exempt``, ``unexempt``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from caducee.app import App
from caducee.cli.common import DEFAULT_DATA, DataOption, console, fail, with_app
from caducee.domain.working_days import PARIS
from caducee.i18n import tr
from caducee.services import inactivity

app = typer.Typer(help="Règle d'inactivité (CNIL) / the inactivity rule.")


def _day(moment: datetime | None) -> str:
    return f"{moment.astimezone(PARIS):%Y-%m-%d}" if moment else "—"


def _at(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise fail(
            tr(
                f"Date invalide : {text!r} (attendu AAAA-MM-JJ).",
                f"Invalid date: {text!r} (expected YYYY-MM-DD).",
            )
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command("report")
def report(
    data: DataOption = DEFAULT_DATA,
    at: Annotated[
        str | None,
        typer.Option("--at", help="Date du calcul (AAAA-MM-JJ), aujourd'hui par défaut."),
    ] = None,
) -> None:
    """Ce que la tâche d'inactivité va faire. / What the inactivity task will do."""
    now = _at(at)

    async def action(context: App) -> None:
        settings = context.settings
        found = await inactivity.report(context, now)
        console.print(
            tr(
                f"Règle : suppression après {settings.inactive_months} mois sans utilisation, "
                f"préavis de {settings.notice_days} jours (au {_day(found.now)}).",
                f"Rule: deletion after {settings.inactive_months} months unused, notice "
                f"{settings.notice_days} days before (as of {_day(found.now)}).",
            ),
            highlight=False,
        )
        console.print(tr("Préavis à envoyer :", "Notices due:"), len(found.notices))
        for entry in found.notices:
            console.print(
                f"  {entry.address}  "
                + tr(
                    f"dernière utilisation {_day(entry.last_use)}, "
                    f"suppression le {_day(entry.deletion_at)}",
                    f"last used {_day(entry.last_use)}, deletion on {_day(entry.deletion_at)}",
                ),
                highlight=False,
            )
        console.print(tr("Suppressions dues :", "Deletions due:"), len(found.deletions))
        for entry in found.deletions:
            line = f"  {entry.address}  " + tr(
                f"dernière utilisation {_day(entry.last_use)}, préavis du {_day(entry.notice_at)}",
                f"last used {_day(entry.last_use)}, notice of {_day(entry.notice_at)}",
            )
            if entry.personal:
                line += tr(" (avec son compte)", " (with its account)")
            if entry.held_until:
                line += tr(
                    f" — conservation légale jusqu'au {_day(entry.held_until)}",
                    f" — legal retention until {_day(entry.held_until)}",
                )
            console.print(line, highlight=False)
        console.print(tr("Préavis en cours :", "Notices standing:"), len(found.waiting))
        for entry in found.waiting:
            console.print(
                f"  {entry.address}  "
                + tr(
                    f"préavis du {_day(entry.notice_at)}, suppression le {_day(entry.deletion_at)}",
                    f"notice of {_day(entry.notice_at)}, deletion on {_day(entry.deletion_at)}",
                ),
                highlight=False,
            )
        console.print(tr("Boîtes exemptées :", "Exempted mailboxes:"), len(found.exempted))
        for entry in found.exempted:
            console.print(
                f"  {entry.address}  "
                + tr(
                    f"« {entry.exempt_reason} » ({entry.exempt_by}, {_day(entry.exempt_at)}), "
                    f"dernière utilisation {_day(entry.last_use)}",
                    f"'{entry.exempt_reason}' ({entry.exempt_by}, {_day(entry.exempt_at)}), "
                    f"last used {_day(entry.last_use)}",
                ),
                highlight=False,
            )

    with_app(data, action)


@app.command("exempt")
def exempt(
    address: str,
    reason: Annotated[str, typer.Option("--reason", help="Motif de l'exemption (obligatoire).")],
    data: DataOption = DEFAULT_DATA,
) -> None:
    """Exempte une boîte de la règle d'inactivité. / Exempt a mailbox from the rule."""

    async def action(context: App) -> None:
        await inactivity.exempt(context, address, reason)
        console.print(
            tr(f"{address} est exemptée : {reason}", f"{address} is exempted: {reason}"),
            highlight=False,
        )

    with_app(data, action)


@app.command("unexempt")
def unexempt(address: str, data: DataOption = DEFAULT_DATA) -> None:
    """Retire l'exemption d'une boîte. / End a mailbox's exemption."""

    async def action(context: App) -> None:
        await inactivity.unexempt(context, address)
        console.print(
            tr(
                f"{address} n'est plus exemptée : la règle s'applique depuis sa dernière "
                "utilisation.",
                f"{address} is no longer exempted: the rule applies from its last use.",
            ),
            highlight=False,
        )

    with_app(data, action)


@app.command("run")
def run(data: DataOption = DEFAULT_DATA) -> None:
    """Exécute la tâche maintenant (préavis et suppressions dus). / Run the task now."""

    async def action(context: App) -> None:
        done = await inactivity.sweep(context)
        console.print(tr(f"{done} préavis ou suppression(s).", f"{done} notice(s) or deletion(s)."))

    with_app(data, action)
