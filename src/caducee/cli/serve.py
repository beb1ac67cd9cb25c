"""``caducee serve``: run the node in the foreground until SIGTERM or Ctrl+C."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from caducee.cli.common import DEFAULT_DATA, DataOption, fail, run, settings_for
from caducee.i18n import tr
from caducee.listeners import adopt_inherited, parse_fds
from caducee.server import WorkerRole, serve
from caducee.services import memory_trim
from caducee.supervisor import supervise

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


# A worker process of the supervisor (caducee.supervisor); not for people.
WorkerIndex = Annotated[int, typer.Option("--worker-index", hidden=True)]
WorkerCount = Annotated[int, typer.Option("--workers", hidden=True)]
ListenFds = Annotated[str, typer.Option("--listen-fds", hidden=True)]
ReadyFd = Annotated[int, typer.Option("--ready-fd", hidden=True)]


def serve_command(
    data: DataOption = DEFAULT_DATA,
    worker_index: WorkerIndex = -1,
    workers: WorkerCount = 0,
    listen_fds: ListenFds = "",
    ready_fd: ReadyFd = -1,
) -> None:
    """Démarre le serveur au premier plan ; SIGTERM ou Ctrl+C l'arrête proprement ;
    SIGHUP redémarre ses processus un par un.
    / Run the server in the foreground; SIGTERM or Ctrl+C stops it cleanly; SIGHUP restarts
    its worker processes one at a time."""
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
    memory_trim.limit_arenas()  # before the loop's threads allocate (issue 17: memory)
    try:
        if worker_index >= 0:
            adopt_inherited(parse_fds(listen_fds))
            role = WorkerRole(worker_index, max(1, workers), ready_fd if ready_fd >= 0 else None)
            run(serve(settings, role=role))
        elif settings.worker_count > 1:
            run(supervise(settings, settings.worker_count))
        else:
            run(serve(settings))
    except KeyboardInterrupt:  # Ctrl+C before the signal handlers were in place
        raise typer.Exit(130) from None
