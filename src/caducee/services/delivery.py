"""Local delivery: the one pipeline every door uses to put a message into our mailboxes.

SMTP (MX and submission), the webmail, the REST API and bounce generation all call
:func:`deliver_local`. It returns only once every copy is durably stored (blob on disk, row
committed), so the caller may then acknowledge (SMTP 250, API 201).
"""

from __future__ import annotations

from collections.abc import Sequence

from caducee.app import App
from caducee.domain.addresses import normalize_address
from caducee.domain.model import StoredMessage
from caducee.errors import NotFound
from caducee.services import messages
from caducee.store import directory_repo as repo


async def resolve_mailbox_id(app: App, address: str) -> int:
    """The id of the local mailbox at ``address``, or :class:`NotFound`."""
    address = normalize_address(address)
    async with app.db.read() as conn:
        mailbox = await repo.mailbox_by_address(conn, address)
    if mailbox is None or mailbox.disabled:
        raise NotFound(f"Destinataire inconnu : {address}.", f"Unknown recipient: {address}.")
    return mailbox.id


async def deliver_local(
    app: App, raw: bytes, recipients: Sequence[str], *, folder: str = "INBOX"
) -> list[StoredMessage]:
    """Store one copy of ``raw`` in the ``folder`` of each local recipient's mailbox."""
    stored = []
    for address in dict.fromkeys(normalize_address(a) for a in recipients):
        mailbox_id = await resolve_mailbox_id(app, address)
        stored.append(await messages.store_message(app, mailbox_id, folder, raw))
    return stored
