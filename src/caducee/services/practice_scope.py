"""What an administrator may name: objects of their own practice only, for every door that
administers a practice (the admin console today). An id or a domain of another practice gets
the same :class:`NotFound` as an unknown one, so nothing is learnt about other practices."""

from __future__ import annotations

from caducee.app import App
from caducee.domain.model import Account, Mailbox, Practice
from caducee.errors import NotFound
from caducee.services import accounts, mailboxes


def _unknown() -> NotFound:
    return NotFound("Introuvable dans votre cabinet.", "Not found in your practice.")


async def account_of_practice(app: App, practice_id: int, account_id: int) -> Account:
    for account in await accounts.list_accounts(app, practice_id):
        if account.id == account_id:
            return account
    raise _unknown()


async def mailbox_of_practice(app: App, practice_id: int, mailbox_id: int) -> Mailbox:
    for mailbox in await mailboxes.list_mailboxes(app, practice_id):
        if mailbox.id == mailbox_id:
            return mailbox
    raise _unknown()


def domain_of_practice(practice: Practice, domain: str) -> str:
    """A domain chosen in a form: it must be one of the practice's own."""
    clean = domain.strip().lower()
    if clean not in practice.domains:
        raise _unknown()
    return clean
