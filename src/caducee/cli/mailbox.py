"""``caducee mailbox``: mailboxes, quotas and delegations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from caducee.app import App
from caducee.cli.common import DEFAULT_DATA, DataOption, console, fail, progress_bar, with_app
from caducee.cli.sizes import format_size, parse_size
from caducee.domain.model import Mailbox, MailboxType
from caducee.i18n import tr
from caducee.services import lifecycle, mailboxes, text_index

app = typer.Typer(help="Boîtes aux lettres, quotas et délégations / mailboxes.")


@app.command("add")
def add(
    address: str,
    data: DataOption = DEFAULT_DATA,
    type_: Annotated[
        str,
        typer.Option(
            "--type",
            help="PER (personnelle), ORG (partagée), APP (logiciel), TLT (télétransmission).",
        ),
    ] = "ORG",
    owner: Annotated[str, typer.Option("--owner", help="Identifiant du compte titulaire.")] = "",
    quota: Annotated[str | None, typer.Option("--quota", help="Par exemple 5G.")] = None,
) -> None:
    """Crée une boîte aux lettres. / Create a mailbox."""
    if not owner:
        raise typer.BadParameter(tr("--owner est obligatoire.", "--owner is required."))
    mailbox_type = MailboxType.parse(type_)

    async def action(context: App) -> None:
        mailbox = await mailboxes.add_mailbox(
            context,
            address,
            mailbox_type,
            owner,
            quota_bytes=parse_size(quota) if quota else None,
        )
        console.print(
            tr(
                f"Boîte créée : {mailbox.address} ({mailbox.type.value}).",
                f"Mailbox created: {mailbox.address} ({mailbox.type.value}).",
            )
        )

    with_app(data, action)


@app.command("list")
def list_(data: DataOption = DEFAULT_DATA) -> None:
    """Liste les boîtes aux lettres. / List mailboxes."""

    async def action(context: App) -> None:
        table = Table(
            tr("Adresse", "Address"),
            "Type",
            tr("Utilisé", "Used"),
            "Quota",
            tr("État", "State"),
            tr("Dernière utilisation", "Last used"),
        )
        for mailbox in await mailboxes.list_mailboxes(context):
            table.add_row(
                mailbox.address,
                mailbox.type.value,
                format_size(mailbox.used_bytes),
                format_size(mailbox.quota_bytes),
                tr("désactivée", "disabled") if mailbox.disabled else tr("active", "active"),
                f"{mailbox.last_used_at:%Y-%m-%d %H:%M} UTC" if mailbox.last_used_at else "—",
            )
        console.print(table)

    with_app(data, action)


@app.command("quota")
def quota(address: str, size: str, data: DataOption = DEFAULT_DATA) -> None:
    """Fixe le quota d'une boîte (ex. 5G). / Set a mailbox's quota."""

    async def action(context: App) -> None:
        mailbox = await mailboxes.set_quota(context, address, parse_size(size))
        console.print(
            tr(
                f"Quota de {mailbox.address} : {format_size(mailbox.quota_bytes)}.",
                f"Quota of {mailbox.address}: {format_size(mailbox.quota_bytes)}.",
            )
        )

    with_app(data, action)


def _set_disabled(address: str, data: DataOption, disabled: bool) -> None:
    async def action(context: App) -> None:
        mailbox = await mailboxes.set_mailbox_disabled(context, address, disabled)
        state = tr("désactivée", "disabled") if mailbox.disabled else tr("réactivée", "enabled")
        console.print(
            tr(f"Boîte {mailbox.address} {state}.", f"Mailbox {mailbox.address} {state}.")
        )

    with_app(data, action)


@app.command("disable")
def disable(address: str, data: DataOption = DEFAULT_DATA) -> None:
    """Désactive une boîte (plus aucun accès ; le courrier reste reçu sauf
    [lifecycle] disabled_mailbox_mail = "refuse"). / Disable a mailbox."""
    _set_disabled(address, data, True)


@app.command("enable")
def enable(address: str, data: DataOption = DEFAULT_DATA) -> None:
    """Réactive une boîte. / Enable a mailbox."""
    _set_disabled(address, data, False)


YesOption = Annotated[
    bool, typer.Option("--yes", help="Ne pas demander de retaper l'adresse / do not ask.")
]


def confirmation(address: str, yes: bool) -> str:
    """The address typed again (``--yes``: the address itself)."""
    if yes:
        return address
    return str(
        typer.prompt(
            tr(
                f"Suppression définitive de {address} et de tous ses messages. "
                "Retapez l'adresse pour confirmer",
                f"{address} and all its messages will be deleted for good. "
                "Type the address again to confirm",
            )
        )
    )


@app.command("delete")
def delete(address: str, data: DataOption = DEFAULT_DATA, yes: YesOption = False) -> None:
    """Supprime une boîte et ses messages (clé de données détruite d'abord).
    / Delete a mailbox and its messages (its data key destroyed first)."""
    typed = confirmation(address, yes)

    async def action(context: App) -> None:
        deleted = await lifecycle.delete_mailbox(context, address, confirm=typed)
        console.print(
            tr(
                f"Boîte {deleted.address} supprimée ({deleted.messages} message(s)).",
                f"Mailbox {deleted.address} deleted ({deleted.messages} message(s)).",
            )
        )

    with_app(data, action)


def _checkpoint_path(context: App, mailbox: Mailbox | None) -> Path:
    """Where an interrupted rebuild of ``mailbox`` (``None``: all) left off: the last message
    id done, in the data dir, removed once the rebuild is complete."""
    name = f"reindex-{mailbox.id if mailbox is not None else 'all'}.json"
    return context.settings.data_dir / name


def _read_checkpoint(path: Path) -> int:
    try:
        return int(json.loads(path.read_text("utf-8"))["after"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _write_checkpoint(path: Path, after: int) -> None:
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps({"after": after}), "utf-8")
    partial.replace(path)


@app.command("reindex")
def reindex(
    address: Annotated[str | None, typer.Argument()] = None,
    all_: Annotated[bool, typer.Option("--all", help="Toutes les boîtes / every mailbox.")] = False,
    data: DataOption = DEFAULT_DATA,
) -> None:
    """Reconstruit l'index de recherche (SEARCH TEXT / BODY) d'une boîte ou de toutes, serveur
    en marche ; une reconstruction interrompue reprend où elle s'était arrêtée.
    / Rebuild the search index of a mailbox or of all, while the server runs; an interrupted
    rebuild resumes where it stopped."""
    if (address is None) == (not all_):
        raise fail(
            tr(
                "Indiquez une adresse ou --all (pas les deux).",
                "Give an address or --all (not both).",
            )
        )
    with progress_bar(tr("Réindexation", "Reindexing")) as progress:

        async def action(context: App) -> text_index.Rebuilt:
            mailbox = await mailboxes.get_mailbox(context, address) if address else None
            path = _checkpoint_path(context, mailbox)
            after = _read_checkpoint(path) if path.exists() else 0
            if after:
                console.print(
                    tr(
                        f"Reprise de la réindexation interrompue (après le message n° {after}).",
                        f"Resuming the interrupted reindexing (after message #{after}).",
                    )
                )
            done = await text_index.rebuild(
                context,
                mailbox,
                after=after,
                actor="cli",
                source="cli",
                progress=progress,
                checkpoint=lambda last: _write_checkpoint(path, last),
            )
            path.unlink(missing_ok=True)
            return done

        done = with_app(data, action)
    target = address or tr("toutes les boîtes", "every mailbox")
    console.print(
        tr(
            f"Index de recherche reconstruit ({target}) : {done.messages} message(s) relu(s), "
            f"{done.missing} filtre(s) manquant(s) recréé(s), {done.changed} filtre(s) "
            "différent(s) remplacé(s).",
            f"Search index rebuilt ({target}): {done.messages} message(s) read, "
            f"{done.missing} missing filter(s) recreated, {done.changed} differing filter(s) "
            "replaced.",
        )
    )
    if done.changed:
        console.print(
            tr(
                "Des filtres différaient : les nœuds en marche gardent en mémoire ceux qu'ils ont "
                "déjà lus. Redémarrez-les (systemctl reload caducee, ou restart avec workers = 1).",
                "Some filters differed: running nodes keep those they already read in memory. "
                "Restart them (systemctl reload caducee, or restart with workers = 1).",
            )
        )


@app.command("delegate")
def delegate(
    address: str,
    data: DataOption = DEFAULT_DATA,
    to: Annotated[str, typer.Option("--to", help="Compte qui reçoit l'accès.")] = "",
    send: Annotated[
        bool, typer.Option("--send/--read-only", help="Autoriser l'envoi de la part du titulaire.")
    ] = False,
) -> None:
    """Délègue l'accès à une boîte (lecture, ou lecture et envoi). / Delegate a mailbox."""
    if not to:
        raise typer.BadParameter(tr("--to est obligatoire.", "--to is required."))

    async def action(context: App) -> None:
        delegation = await mailboxes.delegate(context, address, to, can_send=send)
        rights = (
            tr("lecture et envoi", "read and send")
            if delegation.can_send
            else tr("lecture", "read")
        )
        console.print(
            tr(
                f"{delegation.account_login} a accès à {delegation.mailbox_address} ({rights}).",
                f"{delegation.account_login} can access {delegation.mailbox_address} ({rights}).",
            )
        )

    with_app(data, action)


@app.command("undelegate")
def undelegate(
    address: str,
    data: DataOption = DEFAULT_DATA,
    from_: Annotated[str, typer.Option("--from", help="Compte qui perd l'accès.")] = "",
) -> None:
    """Retire une délégation. / Revoke a delegation."""

    async def action(context: App) -> None:
        await mailboxes.revoke_delegation(context, address, from_)
        console.print(tr("Délégation retirée.", "Delegation revoked."))

    with_app(data, action)


@app.command("delegations")
def delegations(
    address: Annotated[str | None, typer.Argument()] = None, data: DataOption = DEFAULT_DATA
) -> None:
    """Liste les délégations. / List delegations."""

    async def action(context: App) -> None:
        table = Table(
            tr("Boîte", "Mailbox"), tr("Délégué à", "Delegated to"), tr("Droits", "Rights")
        )
        for item in await mailboxes.list_delegations(context, address):
            table.add_row(
                item.mailbox_address,
                item.account_login,
                tr("lecture et envoi", "read and send") if item.can_send else tr("lecture", "read"),
            )
        console.print(table)

    with_app(data, action)
