"""``caducee lots``: télétransmission lots and their returns as the operator sees them (every
TLT mailbox, or one, or a practice's), CSV to standard output, and the insurer domains a
practice's TLT mailboxes may write to. The rules are in :mod:`caducee.health.teletransmission`
and :mod:`caducee.health.insurers`; this only parses and prints."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from caducee.app import App
from caducee.cli.common import DEFAULT_DATA, DataOption, console, with_app
from caducee.domain.model import Mailbox
from caducee.domain.teletransmission import (
    DELIVERY_LABELS,
    LOT_STATE_LABELS,
    RETURN_KIND_LABELS,
    LotReturn,
)
from caducee.health import insurers, teletransmission
from caducee.health.teletransmission import LotView, local_time, returns_text
from caducee.i18n import language, tr
from caducee.services import practices

app = typer.Typer(help="Lots de télétransmission et leurs retours / télétransmission lots.")
insurer_app = typer.Typer(help="Domaines des organismes d'assurance / insurer domains.")
app.add_typer(insurer_app, name="insurer")

MailboxOption = Annotated[
    str | None, typer.Option("--mailbox", help="Boîte de télétransmission / TLT mailbox")
]
PracticeFilter = Annotated[
    int | None, typer.Option("--practice", help="N° du cabinet / practice id")
]
SinceOption = Annotated[
    str | None, typer.Option("--since", help="Envoyés depuis le (AAAA-MM-JJ) / since")
]
STATES = ", ".join(state.value for state in LOT_STATE_LABELS)


def _english() -> bool:
    return language() == "en"


async def _boxes(context: App, mailbox: str | None, practice: int | None) -> list[Mailbox]:
    return await teletransmission.operator_mailboxes(context, address=mailbox, practice_id=practice)


@app.command("list")
def list_(
    data: DataOption = DEFAULT_DATA,
    mailbox: MailboxOption = None,
    practice: PracticeFilter = None,
    state: Annotated[str | None, typer.Option("--state", help=f"État / state : {STATES}")] = None,
    since: SinceOption = None,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="CSV sur la sortie standard / CSV to stdout")
    ] = False,
) -> None:
    """Liste les lots, ceux à réémettre en évidence. / List the lots."""

    async def action(context: App) -> list[LotView] | str:
        wanted = teletransmission.parse_state_filter(state)
        start = teletransmission.parse_since(since)
        boxes = await _boxes(context, mailbox, practice)
        if as_csv:
            return await teletransmission.export_csv(
                context, boxes, state=wanted, since=start, english=_english()
            )
        return await teletransmission.list_lots(context, boxes, state=wanted, since=start)

    found = with_app(data, action)
    if isinstance(found, str):
        sys.stdout.write(found)
        return
    if not found:
        console.print(tr("Aucun lot.", "No lot."))
        return
    english = _english()
    table = Table()
    for header, keep_whole in (
        (tr("Boîte", "Mailbox"), True),
        (tr("N° émetteur", "Sender number"), True),
        ("Compostage", True),
        (tr("Factures", "Invoices"), False),
        (tr("Organisme", "Fund"), False),
        (tr("Envoyé le", "Sent"), False),
        (tr("Remise", "Delivery"), False),
        (tr("État", "State"), True),
        (tr("À réémettre avant", "Send again before"), False),
        (tr("Retours", "Returns"), False),
    ):
        table.add_column(header, no_wrap=keep_whole)
    for view in found:
        lot = view.lot
        label = LOT_STATE_LABELS[view.state][english]
        style = "bold red" if view.state.needs_action else None
        table.add_row(
            view.mailbox_address,
            lot.sender_number or "—",
            lot.compostage or tr("(objet non reconnu)", "(subject not recognised)"),
            "—" if lot.invoice_count is None else str(lot.invoice_count),
            lot.fund,
            local_time(lot.sent_at),
            DELIVERY_LABELS.get(lot.delivery, (lot.delivery,) * 2)[english],
            f"[{style}]{label}[/{style}]" if style else label,
            local_time(view.deadline) or "—",
            returns_text(view, english) or "—",
        )
    console.print(table)
    action_count = sum(1 for v in found if v.state.needs_action)
    if action_count:
        console.print(
            tr(
                f"{action_count} lot(s) à réémettre depuis le logiciel de facturation.",
                f"{action_count} lot(s) to send again from the billing software.",
            )
        )


@app.command("returns")
def returns(
    data: DataOption = DEFAULT_DATA,
    mailbox: MailboxOption = None,
    practice: PracticeFilter = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Reçus depuis le (AAAA-MM-JJ) / since")
    ] = None,
    unmatched: Annotated[
        bool,
        typer.Option("--unmatched", help="Seulement ceux sans lot / only those matching no lot"),
    ] = False,
) -> None:
    """Liste les retours reçus (ARL, NOEMIE…). / List the returns received."""

    async def action(context: App) -> tuple[list[Mailbox], list[LotReturn]]:
        start = teletransmission.parse_since(since)
        boxes = await _boxes(context, mailbox, practice)
        found = await teletransmission.list_returns(
            context, boxes, unmatched=unmatched, since=start
        )
        return boxes, found

    boxes, found = with_app(data, action)
    if not found:
        console.print(tr("Aucun retour.", "No return."))
        return
    english = _english()
    address = {b.id: b.address for b in boxes}
    table = Table(
        "ID",
        tr("Boîte", "Mailbox"),
        tr("Reçu le", "Received"),
        tr("Type", "Kind"),
        tr("N° émetteur", "Sender number"),
        "Compostage",
        "Lot",
        tr("Description", "Description"),
    )
    for item in found:
        table.add_row(
            str(item.id),
            address.get(item.mailbox_id, "?"),
            local_time(item.received_at),
            RETURN_KIND_LABELS[item.kind][english],
            item.sender_number or "—",
            item.compostage or "—",
            str(item.lot_id) if item.lot_id is not None else tr("non rapproché", "unmatched"),
            item.description or "—",
        )
    console.print(table)


PracticeOption = Annotated[int, typer.Option("--practice", help="N° du cabinet / practice id")]
PatternArgument = Annotated[
    str, typer.Argument(help="Domaine (mutuelle.fr) ou *.domaine / domain or *.domain")
]


@insurer_app.command("add")
def insurer_add(
    practice: PracticeOption, pattern: PatternArgument, data: DataOption = DEFAULT_DATA
) -> None:
    """Autorise un domaine d'organisme au cabinet. / Allow an insurer domain."""

    async def action(context: App) -> str:
        return await insurers.add_insurer_domain(context, practice, pattern, actor="cli")

    added = with_app(data, action)
    console.print(
        tr(
            f"Les boîtes de télétransmission du cabinet n° {practice} peuvent écrire à {added}.",
            f"The TLT mailboxes of practice #{practice} may write to {added}.",
        )
    )


@insurer_app.command("remove")
def insurer_remove(
    practice: PracticeOption, pattern: PatternArgument, data: DataOption = DEFAULT_DATA
) -> None:
    """Retire un domaine ajouté par le cabinet. / Remove a domain the practice added."""

    async def action(context: App) -> None:
        await insurers.remove_insurer_domain(context, practice, pattern, actor="cli")

    with_app(data, action)
    console.print(tr(f"Domaine {pattern} retiré.", f"Domain {pattern} removed."))


@insurer_app.command("list")
def insurer_list(practice: PracticeOption, data: DataOption = DEFAULT_DATA) -> None:
    """Liste les domaines autorisés. / List the allowed domains."""

    async def action(context: App) -> tuple[list[str], list[str]]:
        await practices.get_practice(context, practice)
        own = await insurers.practice_insurer_domains(context, practice)
        return list(context.settings.tlt_insurer_domains), own

    defaults, own = with_app(data, action)
    table = Table(tr("Domaine", "Domain"), tr("Origine", "Origin"))
    for pattern in defaults:
        table.add_row(pattern, tr("configuration (par défaut)", "settings (default)"))
    for pattern in own:
        if pattern not in defaults:
            table.add_row(pattern, tr("ajouté par le cabinet", "added by the practice"))
    console.print(table)
