"""A real ``caducee serve`` process for tests: data dir preparation, start, readiness, stop."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from caducee.app import open_app
from caducee.config import Settings, render_config
from caducee.server import listeners_file
from caducee.tls import create_dev_ca

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def prepare(
    settings: Settings,
    listeners: dict[str, str] | None = None,
    *,
    migrate: bool = True,
    workers: int = 1,
) -> Settings:
    """A data dir ready to serve: dev TLS, caducee.toml, migrated schema; one process
    (``workers=1``) unless a test asks for more."""
    create_dev_ca(settings.tls_dir, settings.hostname)
    settings.listeners = dict(listeners or {"https": "127.0.0.1:0"})
    settings.workers = workers
    settings.config_path.write_text(render_config(settings), "utf-8")
    if migrate:

        async def upgrade() -> None:
            async with open_app(settings, upgrade=True):
                pass

        asyncio.run(upgrade())
    return settings


def clean_env() -> dict[str, str]:
    """The environment without any CADUCEE_* override (French messages, config from the dir)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CADUCEE_")}


@contextmanager
def serve_process(settings: Settings, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m caducee serve --data DIR`` (stderr in tmp_path/serve.err), killed if left."""
    err = open(tmp_path / "serve.err", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "caducee", "serve", "--data", str(settings.data_dir)],
        stdout=subprocess.DEVNULL,
        stderr=err,
        env=clean_env(),
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)
        err.close()


def stderr_of(tmp_path: Path) -> str:
    return (tmp_path / "serve.err").read_text("utf-8", errors="replace")


def wait_listeners(
    settings: Settings,
    proc: subprocess.Popen[bytes],
    tmp_path: Path,
    timeout: float = START_TIMEOUT,
) -> dict[str, str]:
    path = listeners_file(settings)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return dict(json.loads(path.read_text("utf-8")))
        if proc.poll() is not None:
            pytest.fail(f"serve exited with {proc.returncode}:\n{stderr_of(tmp_path)}")
        time.sleep(0.05)
    pytest.fail(f"listeners.json not written in {timeout}s:\n{stderr_of(tmp_path)}")
