"""Small builders for service tests."""

from __future__ import annotations

from caducee.app import App
from caducee.domain.model import Account, Folder, Mailbox, Practice, Role
from caducee.services import accounts, mailboxes, practices
from caducee.services.delivery import deliver_local

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


async def inbox_with(app: App, login: str, count: int) -> Folder:
    """A practice, a person ``login`` and ``count`` small messages in their Inbox: the Inbox."""
    await practice(app)
    await person(app, login)
    for n in range(count):
        await deliver_local(app, f"Subject: m{n}\r\n\r\nx\r\n".encode(), [login])
    box = await mailboxes.get_mailbox(app, login)
    [inbox] = [f for f in await mailboxes.list_folders(app, box.id) if f.name == "INBOX"]
    return inbox
