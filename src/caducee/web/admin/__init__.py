"""The admin console (role admin, own practice only): ``/admin/...``."""

from __future__ import annotations

from starlette.routing import BaseRoute

from caducee.web.admin import accounts, audit, mailboxes, practice, queue

routes: list[BaseRoute] = [
    *practice.routes,
    *accounts.routes,
    *mailboxes.routes,
    *audit.routes,
    *queue.routes,
]
