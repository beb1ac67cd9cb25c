"""Running a benchmark on SQLite, a throwaway PostgreSQL cluster, or both (Debian's binaries)."""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.pgcluster import PgCluster, find_pg_bin

from caducee.config import Settings

CHOICES = ("sqlite", "postgres", "both")


async def each_backend(choice: str, run: Callable[[Settings, str], Awaitable[None]]) -> None:
    """Call ``run(settings, label)`` on a fresh data dir for each backend ``choice`` names."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        if choice in ("sqlite", "both"):
            settings = Settings(data_dir=base / "sqlite")
            settings.data_dir.mkdir()
            await run(settings, "SQLite")
        if choice in ("postgres", "both"):
            bin_dir = find_pg_bin()
            if bin_dir is None:
                print("PostgreSQL binaries not found: postgres run skipped")
                return
            cluster = PgCluster(bin_dir)
            cluster.start()
            try:
                settings = Settings(
                    data_dir=base / "postgres",
                    database_url=cluster.url(cluster.create_database()),
                    blob_store="database",
                )
                settings.data_dir.mkdir()
                await run(settings, "PostgreSQL")
            finally:
                cluster.stop()
