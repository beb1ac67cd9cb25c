"""The ``caducee`` command line. Every command accepts ``--data DIR`` (default ./var/caducee)."""

from __future__ import annotations

import os

import typer

from caducee.cli import (
    api_token,
    app_password,
    audit,
    backup,
    directory,
    export,
    keys,
    lifecycle,
    lots,
    mailbox,
    patient,
    practice,
    queue,
    trust,
    user,
)
from caducee.cli.backup import restore_command
from caducee.cli.common import fail
from caducee.cli.demo import demo_command
from caducee.cli.dns import dns_command
from caducee.cli.doctor import doctor_command
from caducee.cli.serve import HELP as SERVE_HELP
from caducee.cli.serve import serve_command
from caducee.cli.setup import init_command, migrate_command
from caducee.cli.triage import triage_command
from caducee.errors import CaduceeError

app = typer.Typer(
    name="caducee",
    help="Caducée — messagerie sécurisée de santé. / Secure health messaging server.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("init")(init_command)
app.command("serve", help=SERVE_HELP)(serve_command)
app.command("demo")(demo_command)
app.command("doctor")(doctor_command)
app.command("migrate")(migrate_command)
app.command("dns")(dns_command)
app.command("triage")(triage_command)
app.add_typer(practice.app, name="practice")
app.add_typer(user.app, name="user")
app.add_typer(mailbox.app, name="mailbox")
app.add_typer(app_password.app, name="app-password")
app.add_typer(keys.app, name="keys")
app.add_typer(audit.app, name="audit")
app.add_typer(queue.app, name="queue")
app.add_typer(trust.app, name="trust")
app.add_typer(directory.app, name="directory")
app.add_typer(api_token.app, name="api-token")
app.add_typer(patient.app, name="patient")
app.add_typer(lots.app, name="lots")
app.add_typer(backup.app, name="backup")
app.add_typer(lifecycle.app, name="lifecycle")
app.add_typer(export.app, name="export")
app.command("restore")(restore_command)


def main() -> None:
    # Files we create (database, blobs, configuration) are never world-readable.
    os.umask(0o027)
    try:
        app()
    except CaduceeError as error:  # raised while reading options, before any command ran
        raise SystemExit(fail(error).exit_code) from None
