"""Several nodes on one database (issue 20): who serves, and whether this node may join.

Each serving node has a row in ``cluster_nodes`` (its id is kept in its data directory) and
rewrites its ``seen_at`` every ``[cluster] heartbeat_seconds``; a node not seen for
:data:`ALIVE_BEATS` heartbeats is taken for dead. The one rule about joining lives here, for
``caducee serve`` with or without worker processes: blobs in files are seen by one node only,
so PostgreSQL with ``blob_store = "files"`` is refused unless the operator declares
``[cluster] single_node = true`` — and even then while another node is alive — and no node joins
while a node on files is alive.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import os
import socket
from datetime import UTC, datetime, timedelta

from caducee.app import App
from caducee.errors import ConfigurationError
from caducee.services.periodic import repeat
from caducee.store import migrate, node_repo
from caducee.store.node_repo import NodeRow

log = logging.getLogger(__name__)

#: A node is alive while its last heartbeat is younger than this many heartbeats.
ALIVE_BEATS = 3


def version() -> str:
    try:
        return importlib.metadata.version("caducee")
    except importlib.metadata.PackageNotFoundError:
        return "?"


def alive_window(app: App) -> timedelta:
    return timedelta(seconds=ALIVE_BEATS * app.settings.cluster_heartbeat_seconds)


def _this_node(app: App, now: datetime) -> NodeRow:
    settings = app.settings
    return NodeRow(
        node_id=node_repo.node_id(settings),
        hostname=socket.gethostname()[:255],
        data_dir=str(settings.data_dir)[:1024],
        version=version(),
        schema_revision=migrate.head_revision(),
        blob_store=settings.blob_store,
        pid=os.getpid(),
        started_at=now,
        seen_at=now,
    )


def _describe(node: NodeRow) -> str:
    return f"{node.hostname}:{node.data_dir} (pid {node.pid})"


async def join(app: App) -> NodeRow:
    """Register this node as serving, or refuse (:class:`ConfigurationError`, French first)
    when it must not serve beside the nodes alive now."""
    settings = app.settings
    shared = not app.db.is_sqlite
    if shared and settings.blob_store == "files" and not settings.cluster_single_node:
        raise ConfigurationError(
            'PostgreSQL avec blob_store = "files" : les messages seraient écrits dans le '
            "répertoire de données de ce seul nœud, et les autres nœuds ne les verraient pas. "
            'Choisissez blob_store = "database" pour plusieurs nœuds, ou déclarez '
            "cluster.single_node = true (section « cluster » de caducee.toml) si ce nœud doit "
            "rester le seul.",
            'PostgreSQL with blob_store = "files": messages would be written in this node\'s '
            "data directory only, and other nodes would not see them. Choose "
            'blob_store = "database" for several nodes, or set cluster.single_node = true '
            '(section "cluster" of caducee.toml) if this node is to stay the only one.',
        )
    now = datetime.now(UTC)
    me = _this_node(app, now)
    async with app.db.write() as conn:
        await node_repo.lock_nodes(conn)
        others = [
            n
            for n in await node_repo.nodes(conn, seen_since=now - alive_window(app))
            if n.node_id != me.node_id
        ]
        if shared and others and settings.blob_store == "files":
            raise ConfigurationError(
                f"Un autre nœud sert cette base ({_describe(others[0])}) : avec "
                'blob_store = "files", un seul nœud peut servir. Arrêtez l\'autre nœud, ou '
                'passez tous les nœuds à blob_store = "database".',
                f"Another node serves this database ({_describe(others[0])}): with "
                'blob_store = "files", only one node may serve. Stop the other node, or move '
                'every node to blob_store = "database".',
            )
        on_files = [n for n in others if n.blob_store == "files"]
        if shared and on_files:
            raise ConfigurationError(
                f"Le nœud {_describe(on_files[0])} sert cette base avec ses messages en "
                "fichiers (single_node) : aucun autre nœud ne peut le rejoindre. Arrêtez-le, "
                'ou passez-le à blob_store = "database".',
                f"Node {_describe(on_files[0])} serves this database with its messages in "
                "files (single_node): no other node may join it. Stop it, or move it to "
                'blob_store = "database".',
            )
        await node_repo.register(conn, me)
    log.info("node=%s joined nodes_alive=%d", me.node_id, len(others) + 1)
    return me


async def leave(app: App) -> None:
    """The node stops serving cleanly: its row goes (a killed node's row stays, not seen)."""
    async with app.db.write() as conn:
        await node_repo.unregister(conn, node_repo.node_id(app.settings))


async def heartbeat(app: App) -> None:
    """Say this node is alive (and register it again if its row went away)."""
    now = datetime.now(UTC)
    async with app.db.write() as conn:
        if not await node_repo.beat(conn, node_repo.node_id(app.settings), now):
            await node_repo.register(conn, _this_node(app, now))


async def recent_nodes(app: App, within: timedelta) -> list[NodeRow]:
    async with app.db.read() as conn:
        return await node_repo.nodes(conn, seen_since=datetime.now(UTC) - within)


class Heartbeat:
    """The node's heartbeat in ``cluster_nodes`` (one process per node runs it)."""

    name = "cluster-heartbeat"

    def __init__(self, app: App) -> None:
        self.app = app

    async def run(self, stop: asyncio.Event) -> None:
        interval = self.app.settings.cluster_heartbeat_seconds
        await repeat(
            stop,
            lambda: heartbeat(self.app),
            first_delay=0.0,
            next_delay=lambda: interval,
            what="cluster heartbeat",
        )
