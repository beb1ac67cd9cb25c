"""``caducee init`` and ``caducee migrate``: create an installation, upgrade its schema."""

from __future__ import annotations

import os
import socket
from typing import Annotated

import typer

from caducee.app import open_app
from caducee.cli.common import DEFAULT_DATA, DataOption, console, fail, run, settings_for
from caducee.cli.user import generate_password
from caducee.config import PRODUCTION_LISTENERS, Settings, render_config
from caducee.domain.addresses import normalize_domain
from caducee.domain.model import DEFAULT_MAILBOX_LIMIT, Role
from caducee.errors import AlreadyExists, CaduceeError
from caducee.flows import maintenance
from caducee.i18n import tr
from caducee.services import accounts, practices
from caducee.services.audit import AuditEvent, record
from caducee.services.dkim_keys import ensure_dkim_key
from caducee.store import migrate as migrations
from caducee.store.keyring import ENV_KEY, create_master_key_file
from caducee.tls import create_dev_ca


def free_local_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dev_listeners() -> dict[str, str]:
    """Free unprivileged ports on 127.0.0.1 for every door (development and demo)."""
    return {name: f"127.0.0.1:{free_local_port()}" for name in PRODUCTION_LISTENERS}


async def initialise(
    settings: Settings,
    *,
    practice_name: str,
    domain: str,
    admin_login: str,
    admin_password: str,
    finess: str | None = None,
    siret: str | None = None,
    mailbox_limit: int = DEFAULT_MAILBOX_LIMIT,
) -> None:
    """Create keys, TLS material, configuration, schema, the practice and its admin account."""
    if settings.config_path.exists():
        raise AlreadyExists(
            f"Une installation existe déjà dans {settings.data_dir}.",
            f"An installation already exists in {settings.data_dir}.",
        )
    settings.data_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
    if not os.environ.get(ENV_KEY) and not settings.master_key_path.exists():
        create_master_key_file(settings)
    if not (settings.tls_dir / "server.crt").exists():
        create_dev_ca(settings.tls_dir, settings.hostname, [domain])
    ensure_dkim_key(settings, domain)  # its DNS record: caducee dns
    async with open_app(settings, upgrade=True) as app:
        practice = await practices.create_practice(
            app, practice_name, [domain], finess=finess, siret=siret, mailbox_limit=mailbox_limit
        )
        await accounts.add_account(
            app,
            accounts.NewAccount(
                login=admin_login,
                last_name="Administrateur",
                role=Role.ADMIN,
                password=admin_password,
            ),
        )
        await record(
            app.db,
            AuditEvent(
                actor="cli", action="install.init", source="cli", details={"practice": practice.id}
            ),
        )
    # Written last: its presence means "initialised".
    settings.config_path.write_text(render_config(settings), "utf-8")


def init_command(
    data: DataOption = DEFAULT_DATA,
    domain: Annotated[str, typer.Option("--domain", help="Domaine de messagerie du cabinet.")] = "",
    practice: Annotated[str, typer.Option("--practice", help="Nom du cabinet.")] = "",
    hostname: Annotated[
        str | None, typer.Option("--hostname", help="Nom du serveur (défaut : mail.DOMAINE).")
    ] = None,
    admin: Annotated[
        str | None, typer.Option("--admin", help="Identifiant admin (défaut : admin@DOMAINE).")
    ] = None,
    finess: Annotated[str | None, typer.Option("--finess")] = None,
    siret: Annotated[str | None, typer.Option("--siret")] = None,
    mailbox_limit: Annotated[int, typer.Option("--mailbox-limit")] = DEFAULT_MAILBOX_LIMIT,
    database_url: Annotated[
        str, typer.Option("--database-url", help="PostgreSQL (vide : SQLite intégré).")
    ] = "",
    blob_store: Annotated[
        str,
        typer.Option("--blob-store", help="files ou database (défaut : database avec PostgreSQL)."),
    ] = "",
    dev_ports: Annotated[
        bool, typer.Option("--dev-ports", help="Ports libres non privilégiés sur 127.0.0.1.")
    ] = False,
) -> None:
    """Crée une installation : clés, AC de test et certificat, base, cabinet, compte admin.
    / Create an installation."""
    if not domain or not practice:
        raise fail(
            tr("--domain et --practice sont obligatoires.", "--domain and --practice are required.")
        )
    try:
        clean_domain = normalize_domain(domain)
    except CaduceeError as error:
        raise fail(error) from None
    settings = settings_for(data)
    settings.hostname = hostname or f"mail.{clean_domain}"
    settings.database_url = database_url or settings.database_url
    # PostgreSQL is for several nodes, which see each other's blobs only in the database.
    settings.blob_store = blob_store or ("files" if settings.is_sqlite else "database")
    settings.listeners = dev_listeners() if dev_ports else dict(PRODUCTION_LISTENERS)
    admin_login = admin or f"admin@{clean_domain}"
    password = generate_password()
    run(
        initialise(
            settings,
            practice_name=practice,
            domain=clean_domain,
            admin_login=admin_login,
            admin_password=password,
            finess=finess,
            siret=siret,
            mailbox_limit=mailbox_limit,
        )
    )
    console.print(
        tr(
            f"Installation créée dans {settings.data_dir}.",
            f"Installation created in {settings.data_dir}.",
        )
    )
    console.print(tr(f"Compte administrateur : {admin_login}", f"Admin account: {admin_login}"))
    console.print(
        tr(
            "Mot de passe (affiché une seule fois, notez-le) :",
            "Password (shown only once, write it down):",
        )
    )
    console.print(password, markup=False)
    console.print(
        tr(
            f"Certificat de l'AC de test : {settings.tls_dir / 'ca.crt'}",
            f"Test CA certificate: {settings.tls_dir / 'ca.crt'}",
        )
    )


def migrate_command(data: DataOption = DEFAULT_DATA) -> None:
    """Met le schéma de la base à jour. / Upgrade the database schema."""
    settings = settings_for(data)

    async def go() -> str:
        async with open_app(settings, upgrade=True) as app:
            # revision 0019: addresses written in clear before it (needs the master key)
            await maintenance.conceal_clear_addresses(app)
            return await migrations.current_revision(app.db) or ""

    revision = run(go())
    console.print(
        tr(f"Schéma à jour (révision {revision}).", f"Schema up to date (revision {revision}).")
    )
