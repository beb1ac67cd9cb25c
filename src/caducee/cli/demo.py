"""``caducee demo``: a demo practice in ``./var/demo`` (created if absent), then served.

The demo logins and passwords are kept in ``<data>/demo-logins.txt`` (mode 0600) so that they can
be printed again at every start: this is a demonstration installation, never a production one.

A newcomer sees every channel at once: a message between two practitioners, a verified patient
of the registry with a message waiting on the portal (its link is printed; the SMS code goes to
``<data>/sms/outbox.jsonl``), a télétransmission lot (test mode, never sent) with its positive
ARL. The ports are chosen once, the usual demo ports when free (:data:`DEMO_PORTS`), and kept in
``caducee.toml``: they stay the same from one ``make run`` to the next.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import socket
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Annotated

import typer

from caducee.app import App, open_app
from caducee.cli.common import console, fail, run, settings_for
from caducee.cli.serve import configure_logging
from caducee.cli.setup import free_local_port, initialise
from caducee.cli.user import generate_password
from caducee.config import Settings
from caducee.domain.model import MailboxType, Role
from caducee.flows import submission
from caducee.health import patients, pickup, teletransmission
from caducee.i18n import tr
from caducee.server import LISTENER_FACTORIES, listeners_file, serve
from caducee.services import accounts, mailboxes, messages, queue
from caducee.services.app_passwords import create_app_password
from caducee.services.delivery import deliver_local
from caducee.services.envelope import ClientInfo, Envelope, EnvelopeRecipient
from caducee.store.crypto import write_private_file

DEMO_DATA = Path("var/demo")
DEMO_DOMAIN = "cabinet-demo.test"
LOGINS_FILE = "demo-logins.txt"
#: The demo's ports when they are free (docs/operations.md), else any free port; chosen once.
DEMO_PORTS: dict[str, int] = {
    "smtp": 2525,
    "submission": 5587,
    "submissions": 5465,
    "imap": 5143,
    "imaps": 5993,
    "pop3": 5110,
    "pop3s": 5995,
    "https": 8443,
}
#: The sample patient: a fictitious person; ``.invalid`` (RFC 2606) never receives mail, and
#: SMS go to a file in the demo.
PATIENT_EMAIL = "paul.durand@patient-demo.invalid"
PATIENT_MOBILE = "+33612345678"
#: A fund of the test traffic (the lot is recorded, never sent) and the billing sender number.
FUND = "01422@422.01.rss.fr"
SENDER_NUMBER = "12345678901234"
PORTAL_LABEL = "Portail patient de Paul Durand"

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


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def demo_listeners() -> dict[str, str]:
    """Every door on 127.0.0.1: the demo's usual port if free, else a free one."""
    return {
        name: f"127.0.0.1:{port if port_is_free(port) else free_local_port()}"
        for name, port in DEMO_PORTS.items()
    }


def _mail(sender: str, to: str, subject: str, text: str) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=DEMO_DOMAIN)
    message.set_content(text)
    return bytes(message)


def lot_message(sender: str, subject: str) -> bytes:
    """A lot in test mode (``IRISTEST/B2``: a fund would not pay it), as billing software
    writes it; its FSE are fictitious bytes."""
    part = base64.encodebytes(b"FSE de demonstration\r\n" * 8).decode().replace("\n", "\r\n")
    return (
        f"From: {sender}\r\nTo: {FUND}\r\nSubject: {subject}\r\n"
        f"Date: {format_datetime(datetime.now(UTC))}\r\n"
        f"Message-ID: {make_msgid(domain=DEMO_DOMAIN)}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="lot"\r\n\r\n'
        "--lot\r\nContent-Type: application/EDI-consent\r\n"
        "Content-Description: IRISTEST/B2\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        f"{part}--lot--\r\n"
    ).encode()


def arl_message(to: str, compostage: str) -> bytes:
    """The fund's positive ARL for the lot ``compostage`` (gzipped ``application/EDI-consent``)."""
    payload = f"ARL POSITIF {SENDER_NUMBER} LOT {compostage} 00002 FSE\r\n".encode()
    part = base64.encodebytes(gzip.compress(payload)).decode().replace("\n", "\r\n")
    return (
        f"From: {FUND}\r\nTo: {to}\r\nSubject: ARL/{SENDER_NUMBER}\r\n"
        f"Date: {format_datetime(datetime.now(UTC))}\r\n"
        f"Message-ID: {make_msgid(domain='422.01.rss.fr')}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nRetour\r\n"
        "--b1\r\nContent-Type: application/EDI-consent\r\nContent-Description: ARL POSITIF/B2\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n{part}--b1--\r\n"
    ).encode()


async def populate_channels(app: App, practice_id: int) -> str:
    """A message in every channel; returns the patient's portal link."""
    doctor = f"dr.martin@{DEMO_DOMAIN}"
    nurse = f"inf.durand@{DEMO_DOMAIN}"
    # Between professionals, through the submission every door uses.
    await submission.submit(
        app,
        nurse,
        Envelope(nurse, (EnvelopeRecipient(doctor),)),
        _mail(
            f"Paul Durand <{nurse}>",
            doctor,
            "Pansement de M. Durand",
            "Bonjour Docteur,\n\nLe pansement de M. Durand est refait ; la plaie est propre.\n"
            "Je repasse jeudi.\n\nPaul Durand, infirmier\n",
        ),
        ClientInfo(ip="127.0.0.1", login=nurse, protocol="ESMTPSA"),
    )
    # A verified patient of the registry, and a message waiting for him on the portal.
    patient = await patients.add_patient(
        app,
        practice_id,
        patients.PatientData(
            last_name="Durand",
            first_name="Paul",
            birth_date="1958-04-12",
            email=PATIENT_EMAIL,
            mobile=PATIENT_MOBILE,
            consent_date=datetime.now(UTC).date().isoformat(),
        ),
        actor="demo",
        source="cli",
    )
    link = await patients.send_verification(
        app, practice_id, patient.id, actor="demo", source="cli"
    )
    await patients.confirm_verification(app, link.rpartition("/")[2], source="cli")
    box = await mailboxes.get_mailbox(app, doctor)
    deposited = await pickup.create_pickup(
        app,
        practice_id=practice_id,
        sender_mailbox_id=box.id,
        sender_address=doctor,
        patient_email=PATIENT_EMAIL,
        patient_mobile=PATIENT_MOBILE,
        patient_id=patient.id,
        raw_message=_mail(
            f"Dr Jeanne Martin <{doctor}>",
            PATIENT_EMAIL,
            "Vos résultats de prise de sang",
            "Bonjour Monsieur Durand,\n\nVos résultats sont normaux. Rien à changer à votre "
            "traitement.\n\nDr Jeanne Martin\n",
        ),
        source="cli",
    )
    # Télétransmission: a lot (recorded as the submission records it, never sent) and its ARL.
    tlt = await mailboxes.get_mailbox(app, f"tlt.martin@{DEMO_DOMAIN}")
    now = datetime.now(UTC)
    compostage = now.strftime("%Y%m%d%H%M%S") + "00001"
    subject = f"IR000001/{SENDER_NUMBER}/{compostage}/00002"
    lot = lot_message(tlt.address, subject)
    await teletransmission.record_lot(
        app,
        tlt,
        subject=subject,
        funds=[FUND],
        message=lot,
        message_id=make_msgid(domain=DEMO_DOMAIN),
        queue_id=None,
        source="cli",
        actor="demo",
        now=now,
    )
    arl = arl_message(tlt.address, compostage)
    stored = await deliver_local(app, arl, [tlt.address], sender=FUND)
    await teletransmission.record_returns(app, arl, stored, [tlt])
    # The mail to the fictitious patient (address check, portal notice) would only bounce.
    for message_id in {e.message_id for e in await queue.list_queue(app)}:
        await queue.delete(app, message_id, actor="demo")
    return deposited.link


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
    settings.listeners = demo_listeners()
    # Links in the demo's mail (portal, address check) open here: the certificate names localhost.
    settings.public_url = f"https://localhost:{settings.listeners['https'].rpartition(':')[2]}"
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
        box = await mailboxes.get_mailbox(app, f"dr.martin@{DEMO_DOMAIN}")
        logins.append((PORTAL_LABEL, await populate_channels(app, box.practice_id)))
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
    for name, address in sorted((bound or settings.listeners).items()):
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
    console.print(
        tr(
            "Portail patient : ouvrez le lien ci-dessus ; le code envoyé « par SMS » est écrit "
            f"dans {settings.data_dir / 'sms' / 'outbox.jsonl'}.",
            "Patient portal: open the link above; the code sent « by SMS » is written to "
            f"{settings.data_dir / 'sms' / 'outbox.jsonl'}.",
        ),
        markup=False,
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
