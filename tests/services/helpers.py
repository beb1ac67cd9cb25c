"""Small builders for service tests."""

from __future__ import annotations

from caducee.app import App
from caducee.domain.model import Account, Mailbox, Practice, Role
from caducee.services import accounts, practices

PASSWORD = "Correct-Horse-42-Battery"


async def practice(app: App, domain: str = "cabinet.test", limit: int = 19) -> Practice:
    return await practices.create_practice(app, "Cabinet Test", [domain], mailbox_limit=limit)


async def person(
    app: App, login: str, role: Role = Role.PRATICIEN, rpps: str | None = None
) -> tuple[Account, Mailbox]:
    return await accounts.add_account(
        app,
        accounts.NewAccount(
            login=login,
            first_name="Jeanne",
            last_name="Martin",
            role=role,
            rpps=rpps,
            password=PASSWORD,
        ),
    )
