"""Our mail domains, as every message needs them: each node keeps a copy for a moment."""

from __future__ import annotations

import time

from caducee.app import App
from caducee.store import directory_repo as repo

#: A node reuses its copy of our domain list this long (a domain added on another node of a
#: cluster is seen within this delay; on this node, at once).
DOMAINS_TTL_SECONDS = 2.0


class DomainList:
    """The node's copy of our domains: read for every message, changed once in a blue moon."""

    def __init__(self, _app: App) -> None:
        self.domains: frozenset[str] | None = None
        self.read_at = 0.0

    def forget(self) -> None:
        self.domains = None


async def our_domains(app: App) -> set[str]:
    cached = app.component(DomainList, DomainList)
    now = time.monotonic()
    if cached.domains is None or now - cached.read_at > DOMAINS_TTL_SECONDS:
        async with app.db.read() as conn:
            cached.domains = frozenset(await repo.all_domains(conn))
        cached.read_at = now
    return set(cached.domains)


def domains_changed(app: App) -> None:
    """Call after adding or removing one of our domains."""
    app.component(DomainList, DomainList).forget()
