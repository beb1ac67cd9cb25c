"""``caducee serve``: run the node in the foreground until SIGTERM or Ctrl+C."""

from __future__ import annotations

import logging
import sys

import typer

from caducee.cli.common import DEFAULT_DATA, DataOption, fail, run, settings_for
from caducee.i18n import tr
from caducee.server import serve

HELP = (
    "Démarre le serveur (HTTPS, puis SMTP, IMAP, POP3) au premier plan ; SIGTERM ou Ctrl+C "
    "l'arrête proprement. / Run the server in the foreground; SIGTERM or Ctrl+C stops it cleanly."
)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure_logging(level: int = logging.INFO) -> None:
    """One line per event on stderr (journald and containers collect it from there)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Start-up chatter of uvicorn and of alembic's schema check; warnings and errors still show.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def serve_command(data: DataOption = DEFAULT_DATA) -> None:
    """Démarre le serveur au premier plan ; SIGTERM ou Ctrl+C l'arrête proprement.
    / Run the server in the foreground; SIGTERM or Ctrl+C stops it cleanly."""
    settings = settings_for(data)
    if not settings.data_dir.is_dir():
        raise fail(
            tr(
                f"Répertoire de données {settings.data_dir} introuvable. "
                "Créez l'installation avec « caducee init ».",
                f"Data directory {settings.data_dir} not found. "
                "Create the installation with 'caducee init'.",
            )
        )
    configure_logging()
    try:
        run(serve(settings))
    except KeyboardInterrupt:  # Ctrl+C before the signal handlers were in place
        raise typer.Exit(130) from None
