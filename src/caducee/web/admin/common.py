"""Lookups of the admin console, always within the admin's own practice (the rule is
``services.practice_scope``'s; here its NotFound becomes the console's one 404, the same for an
unknown id and another practice's object)."""

from __future__ import annotations

from caducee.domain.model import Account, Mailbox
from caducee.errors import NotFound
from caducee.services import accounts, mailboxes, practice_scope
from caducee.web.core import WebState, WebUser, not_found


async def practice_accounts(web: WebState, user: WebUser) -> list[Account]:
    return await accounts.list_accounts(web.app, user.practice.id)


async def practice_mailboxes(web: WebState, user: WebUser) -> list[Mailbox]:
    return await mailboxes.list_mailboxes(web.app, user.practice.id)


async def account_of_practice(web: WebState, user: WebUser, account_id: int) -> Account:
    try:
        return await practice_scope.account_of_practice(web.app, user.practice.id, account_id)
    except NotFound:
        raise not_found() from None


async def mailbox_of_practice(web: WebState, user: WebUser, mailbox_id: int) -> Mailbox:
    try:
        return await practice_scope.mailbox_of_practice(web.app, user.practice.id, mailbox_id)
    except NotFound:
        raise not_found() from None


def domain_of_practice(user: WebUser, domain: str) -> str:
    """A domain chosen in a form: it must be one of the admin's practice."""
    try:
        return practice_scope.domain_of_practice(user.practice, domain)
    except NotFound:
        raise not_found() from None
