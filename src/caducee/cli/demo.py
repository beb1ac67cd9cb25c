"""``caducee demo``: a demo practice in ``./var/demo`` (created if absent), then served.

The demo logins and passwords are kept in ``<data>/demo-logins.txt`` (mode 0600) so that they can
be printed again at every start: this is a demonstration installation, never a production one.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Annotated

import typer

from caducee.app import App, open_app
from caducee.cli.common import console, fail, run, settings_for
from caducee.cli.serve import configure_logging
from caducee.cli.setup import dev_listeners, initialise
from caducee.cli.user import generate_password
from caducee.config import Settings
from caducee.domain.model import MailboxType, Role
from caducee.i18n import tr
from caducee.server import LISTENER_FACTORIES, listeners_file, serve
from caducee.services import accounts, mailboxes, messages
from caducee.services.app_passwords import create_app_password
from caducee.store.crypto import write_private_file

DEMO_DATA = Path("var/demo")
DEMO_DOMAIN = "cabinet-demo.test"
LOGINS_FILE = "demo-logins.txt"

#: (login, first, last, civility, profession, role, rpps, adeli)
DEMO_PEOPLE = (
    (
        "dr.martin",
        "Jeanne",
        "Martin",
        "Dr",
        "Médecin généraliste",
        Role.PRATICIEN,
        "10001234565",
        None,
    ),
    ("inf.durand", "Paul", "Durand", "M.", "Infirmier", Role.PRATICIEN, None, "751234567"),
    ("secretariat", "Claire", "Petit", "Mme", "Secrétaire médicale", Role.SECRETAIRE, None, None),
)


def welcome_message(to: str, name: str) -> bytes:
    message = EmailMessage()
    message["From"] = f"Caducée <ne-pas-repondre@{DEMO_DOMAIN}>"
    message["To"] = to
    message["Subject"] = "Bienvenue dans Caducée"
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=DEMO_DOMAIN)
    message.set_content(
        f"Bonjour {name},\n\nCeci est la messagerie de démonstration de Caducée.\n"
        "Rien de ce qui est ici n'est réel.\n"
    )
    return bytes(message)


async def populate(app: App) -> list[tuple[str, str]]:
    """Demo accounts, mailboxes, a delegation, an app password and a welcome message."""
    logins: list[tuple[str, str]] = []
    for local, first, last, civility, profession, role, rpps, adeli in DEMO_PEOPLE:
        password = generate_password(16)
        address = f"{local}@{DEMO_DOMAIN}"
        _, mailbox = await accounts.add_account(
            app,
            accounts.NewAccount(
                login=address,
                first_name=first,
                last_name=last,
                civility=civility,
                profession=profession,
                role=role,
                rpps=rpps,
                adeli=adeli,
                password=password,
            ),
        )
        await messages.store_message(
            app, mailbox.id, "INBOX", welcome_message(address, f"{first} {last}")
        )
        logins.append((address, password))
    doctor = f"dr.martin@{DEMO_DOMAIN}"
    await mailboxes.add_mailbox(
        app, f"accueil@{DEMO_DOMAIN}", MailboxType.ORG, f"secretariat@{DEMO_DOMAIN}"
    )
    await mailboxes.add_mailbox(app, f"tlt.martin@{DEMO_DOMAIN}", MailboxType.TLT, doctor)
    await mailboxes.add_mailbox(app, f"logiciel@{DEMO_DOMAIN}", MailboxType.APP, doctor)
    await mailboxes.delegate(app, doctor, f"secretariat@{DEMO_DOMAIN}", can_send=True)
    app_password = await create_app_password(app, doctor, "Démo Thunderbird")
    logins.append((f"{doctor} (mot de passe d'application IMAP/POP/SMTP)", app_password))
    return logins


async def create_demo(settings: Settings) -> None:
    settings.hostname = f"mail.{DEMO_DOMAIN}"
    settings.listeners = dev_listeners()
    # SMS (portal codes, attachment passwords) are written to <data>/sms/outbox.jsonl.
    settings.deployment = "development"
    settings.sms_provider = "fichier"
    admin_password = generate_password(16)
    await initialise(
        settings,
        practice_name="Cabinet médical de démonstration",
        domain=DEMO_DOMAIN,
        admin_login=f"admin@{DEMO_DOMAIN}",
        admin_password=admin_password,
    )
    async with open_app(settings) as app:
        logins = [(f"admin@{DEMO_DOMAIN}", admin_password), *await populate(app)]
    write_private_file(
        settings.data_dir / LOGINS_FILE, "".join(f"{login}\t{pw}\n" for login, pw in logins)
    )


def print_banner(settings: Settings, bound: dict[str, str]) -> None:
    console.print(
        tr(
            "[bold]Caducée — démonstration[/bold] (données fictives)",
            "[bold]Caducée — demo[/bold] (fictitious data)",
        )
    )
    console.print(tr(f"Répertoire : {settings.data_dir}", f"Directory: {settings.data_dir}"))
    for name, address in sorted(bound.items()):
        url = f"https://{address}/" if name == "https" else address
        console.print(f"  {name:<12} {url}")
    pending = sorted(set(settings.listeners) - set(LISTENER_FACTORIES))
    if pending:
        console.print(
            tr(
                f"  (ports réservés, pas encore disponibles : {', '.join(pending)})",
                f"  (reserved ports, not available yet: {', '.join(pending)})",
            )
        )
    console.print(
        tr(
            f"AC de test à faire confiance : {settings.tls_dir / 'ca.crt'}",
            f"Test CA to trust: {settings.tls_dir / 'ca.crt'}",
        )
    )
    console.print(tr("Identifiants de démonstration :", "Demo logins:"))
    for line in (settings.data_dir / LOGINS_FILE).read_text("utf-8").splitlines():
        login, _, password = line.partition("\t")
        console.print(f"  {login:<60} {password}", markup=False)
    console.print(
        tr(
            "Webmail : le cabinet exige un second facteur ; la première connexion affiche le QR "
            "code à scanner avec une application TOTP (ou enregistre une clé de sécurité). Les "
            "logiciels de messagerie utilisent le mot de passe d'application ci-dessus.",
            "Webmail: the practice requires a second factor; the first login shows the QR code "
            "to scan with a TOTP app (or registers a security key). Mail clients use the app "
            "password above.",
        )
    )
    console.print(tr("Ctrl+C pour arrêter.", "Ctrl+C to stop."))


async def serve_demo(settings: Settings) -> None:
    ready = listeners_file(settings)
    ready.unlink(missing_ok=True)
    server = asyncio.create_task(serve(settings))
    while not ready.exists() and not server.done():
        await asyncio.sleep(0.05)
    if ready.exists():
        print_banner(settings, json.loads(ready.read_text("utf-8")))
    await server


def demo_command(
    data: Annotated[Path, typer.Option("--data", help="Répertoire de la démonstration.")] = (
        DEMO_DATA
    ),
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Créer la démonstration sans la servir.")
    ] = False,
) -> None:
    """Crée (si absente) puis sert une installation de démonstration. / Create and serve a demo."""
    settings = settings_for(data)
    if not settings.config_path.exists():
        if settings.data_dir.exists() and any(settings.data_dir.iterdir()):
            raise fail(
                tr(
                    f"{settings.data_dir} existe mais n'est pas une installation complète : "
                    "supprimez-le pour recréer la démonstration.",
                    f"{settings.data_dir} exists but is not a complete installation: "
                    "delete it to recreate the demo.",
                )
            )
        run(create_demo(settings))
        settings = settings_for(data)
    if no_serve:
        print_banner(settings, {})
        return
    configure_logging()
    try:
        run(serve_demo(settings))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
