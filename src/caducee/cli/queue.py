"""``caducee queue``: the outbound delivery queue (list, retry, delete)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from caducee.app import App
from caducee.cli.common import DEFAULT_DATA, DataOption, console, with_app
from caducee.i18n import tr
from caducee.services import queue

app = typer.Typer(help="File d'attente d'envoi vers d'autres serveurs / outbound queue.")

_STATES = {
    "queued": ("en attente", "queued"),
    "deferred": ("différé", "deferred"),
    "delivered": ("remis", "delivered"),
    "bounced": ("rejeté", "bounced"),
    "expired": ("expiré", "expired"),
}


def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _reply(entry: queue.QueueEntry) -> str:
    if not entry.last_reply and entry.last_code is None:
        return "—"
    code = f"{entry.last_code} " if entry.last_code is not None else ""
    return f"{code}{entry.last_reply or ''}".strip()


@app.command("list")
def list_(
    data: DataOption = DEFAULT_DATA,
    all_: Annotated[
        bool,
        typer.Option("--all", help="Inclut les messages remis, rejetés ou expirés (7 jours)."),
    ] = False,
) -> None:
    """Liste les messages en attente d'envoi. / List queued messages."""

    async def action(context: App) -> None:
        entries = await queue.list_queue(context, include_finished=all_)
        if not entries:
            console.print(tr("La file d'attente est vide.", "The queue is empty."))
            return
        table = Table(
            "ID",
            tr("Expéditeur", "Sender"),
            tr("Destinataire", "Recipient"),
            tr("État", "State"),
            tr("Essais", "Attempts"),
            tr("Prochain essai", "Next attempt"),
            tr("Dernière réponse", "Last reply"),
        )
        for entry in entries:
            fr, en = _STATES.get(entry.state, (entry.state, entry.state))
            waiting = entry.state in ("queued", "deferred")
            table.add_row(
                str(entry.message_id),
                entry.mail_from or "<>",
                entry.address,
                tr(fr, en),
                str(entry.attempts),
                _when(entry.next_attempt_at) if waiting else "—",
                _reply(entry),
            )
        console.print(table)

    with_app(data, action)


@app.command("retry")
def retry(
    queue_id: Annotated[int | None, typer.Argument(help="Identifiant du message.")] = None,
    data: DataOption = DEFAULT_DATA,
    all_: Annotated[bool, typer.Option("--all", help="Tous les messages en attente.")] = False,
) -> None:
    """Réessaie l'envoi maintenant. / Retry delivery now."""
    if (queue_id is None) == (not all_):
        raise typer.BadParameter(
            tr(
                "Indiquez un identifiant de message ou --all (pas les deux).",
                "Give a message id or --all (not both).",
            )
        )

    async def action(context: App) -> int:
        return await queue.retry(context, None if all_ else queue_id)

    count = with_app(data, action)
    console.print(
        tr(
            f"{count} destinataire(s) à réessayer dès maintenant.",
            f"{count} recipient(s) will be retried now.",
        )
    )


@app.command("delete")
def delete(
    queue_id: Annotated[int, typer.Argument(help="Identifiant du message.")],
    data: DataOption = DEFAULT_DATA,
    bounce: Annotated[
        bool,
        typer.Option("--bounce", help="Prévenir l'expéditeur par un avis de non-remise."),
    ] = False,
) -> None:
    """Retire un message de la file. / Delete a message from the queue."""

    async def action(context: App) -> int:
        return await queue.delete(context, queue_id, bounce=bounce)

    count = with_app(data, action)
    if bounce:
        console.print(
            tr(
                f"Message {queue_id} retiré ; {count} destinataire(s) non remis, l'expéditeur "
                "sera prévenu.",
                f"Message {queue_id} removed; {count} undelivered recipient(s), the sender "
                "will be notified.",
            )
        )
    else:
        console.print(
            tr(
                f"Message {queue_id} supprimé ({count} destinataire(s) non remis).",
                f"Message {queue_id} deleted ({count} undelivered recipient(s)).",
            )
        )
