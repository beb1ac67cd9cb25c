"""Shared pieces of the command line: the ``--data`` option, async runner, error display."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from caducee.app import App, open_app
from caducee.config import DEFAULT_DATA_DIR, Settings, load_settings
from caducee.errors import CaduceeError
from caducee.i18n import tr

T = TypeVar("T")

# Scripts read our output: never wrap lines or truncate tables when it is not a terminal.
_WIDTH = None if sys.stdout.isatty() else 200
console = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

DataOption = Annotated[
    Path,
    typer.Option(
        "--data",
        help="Répertoire de données de l'installation / data directory.",
        envvar="CADUCEE_DATA",
        show_default=True,
    ),
]
DEFAULT_DATA = DEFAULT_DATA_DIR


#: What long work reports: (done, total); total ``None`` while it is not known.
ProgressReport = Callable[[int, int | None], None]


def _ignore(_done: int, _total: int | None = None) -> None:
    return None


@contextmanager
def progress_bar(label: str, *, unit: str = "items") -> Iterator[ProgressReport]:
    """The one progress bar of long commands (imports, backups): label, bar, count (``unit``
    ``"items"``) or bytes (``"bytes"``), elapsed and remaining time; a moving bar while the
    total is unknown. Quiet when standard output is not a terminal (scripts, logs): the
    report function is then a no-op. Safe to call from a worker thread."""
    if not console.is_terminal:
        yield _ignore
        return
    amount: ProgressColumn = DownloadColumn() if unit == "bytes" else MofNCompleteColumn()
    with Progress(
        TextColumn(label),
        BarColumn(),
        amount,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def report(done: int, total: int | None = None) -> None:
            bar.update(task, completed=done, total=total)

        yield report


def fail(error: CaduceeError | str, code: int = 1) -> typer.Exit:
    """Print an error for people on stderr and return the Exit to raise."""
    text = error.message() if isinstance(error, CaduceeError) else error
    err_console.print(f"[bold red]{tr('Erreur', 'Error')} :[/bold red] {text}", soft_wrap=True)
    return typer.Exit(code)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; turn a :class:`CaduceeError` into a clear message and exit status 1."""
    try:
        return asyncio.run(coro)
    except CaduceeError as error:
        raise fail(error) from None


def settings_for(data: Path) -> Settings:
    try:
        return load_settings(data)
    except CaduceeError as error:
        raise fail(error) from None


def with_app(data: Path, action: Callable[[App], Awaitable[T]]) -> T:
    """Open the installation in ``data`` and run ``action`` with it."""
    settings = settings_for(data)
    if not settings.data_dir.exists():
        raise fail(
            tr(
                f"Répertoire de données {settings.data_dir} introuvable. "
                "Créez l'installation avec « caducee init ».",
                f"Data directory {settings.data_dir} not found. "
                "Create the installation with 'caducee init'.",
            )
        )

    async def _go() -> T:
        async with open_app(settings) as app:
            return await action(app)

    return run(_go())


def read_secret_stdin() -> str:
    """One line from standard input, without its line ending (for --password-stdin)."""
    line = sys.stdin.readline()
    return line.rstrip("\r\n")
