"""The admin console (role admin, own practice only): ``/admin/...``."""

from __future__ import annotations

from starlette.routing import BaseRoute

from caducee.web.admin import accounts, audit, charter, mailboxes, practice, queue, triage, trust

routes: list[BaseRoute] = [
    *practice.routes,
    *charter.routes,
    *triage.routes,
    *accounts.routes,
    *mailboxes.routes,
    *audit.routes,
    *queue.routes,
    *trust.routes,
]
