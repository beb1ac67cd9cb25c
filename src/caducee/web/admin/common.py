"""Lookups of the admin console, always within the admin's own practice.

An id from the URL that names another practice's object gets the same 404 as an unknown id.
"""

from __future__ import annotations

from caducee.domain.model import Account, Mailbox
from caducee.services import accounts, mailboxes
from caducee.web.core import WebState, WebUser, not_found


async def practice_accounts(web: WebState, user: WebUser) -> list[Account]:
    return await accounts.list_accounts(web.app, user.practice.id)


async def practice_mailboxes(web: WebState, user: WebUser) -> list[Mailbox]:
    return await mailboxes.list_mailboxes(web.app, user.practice.id)


async def account_of_practice(web: WebState, user: WebUser, account_id: int) -> Account:
    for account in await practice_accounts(web, user):
        if account.id == account_id:
            return account
    raise not_found()


async def mailbox_of_practice(web: WebState, user: WebUser, mailbox_id: int) -> Mailbox:
    for mailbox in await practice_mailboxes(web, user):
        if mailbox.id == mailbox_id:
            return mailbox
    raise not_found()


def domain_of_practice(user: WebUser, domain: str) -> str:
    """A domain chosen in a form: it must be one of the admin's practice."""
    domain = domain.strip().lower()
    if domain not in user.practice.domains:
        raise not_found()
    return domain
