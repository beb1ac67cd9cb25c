"""``/api/v1/admin``: the practice administrator's door for practice software (issue 19) —
list the practice's accounts and mailboxes, disable, enable and delete them, with a token of
scope ``admin`` (only an administrator may create one; it acts while its account is one).
The same services as the admin console and the command line (:mod:`caducee.services.accounts`,
:mod:`caducee.services.mailboxes`, :mod:`caducee.services.lifecycle`), so the same rules and
refusals: a deletion names the address again (``?confirmation=``; 422 otherwise); a
télétransmission mailbox under retention, a personal mailbox (it goes with its account), the
last administrator, an account owning other mailboxes are refused with 409 and a French and
English message. Everything outside the token's practice is 404. Audited by the services
(actor: the token's account, source: the client's address)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from starlette.responses import JSONResponse, Response

from caducee.domain.model import Account, Mailbox, Role
from caducee.errors import AccessDenied, InvalidInput, RetentionHold
from caducee.services import accounts, lifecycle, mailboxes
from caducee.web.api.call import ApiError, Call, Endpoint, int_param

if TYPE_CHECKING:
    from caducee.app import App


class _Deleter(Protocol):
    """:func:`lifecycle.delete_mailbox` and :func:`lifecycle.delete_account`."""

    async def __call__(
        self, app: App, address: str, /, *, confirm: str, actor: str, source: str
    ) -> lifecycle.Deleted: ...


SCOPE = "admin"
_NOT_FOUND = ("Ressource introuvable dans le cabinet.", "Not found in the practice.")

_MAILBOX: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "adresse": {"type": "string"},
        "type": {"type": "string"},
        "desactivee": {"type": "boolean"},
        "derniere_utilisation": {"type": ["string", "null"]},
    },
}
_ACCOUNT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "identifiant": {"type": "string"},
        "role": {"type": "string"},
        "desactive": {"type": "boolean"},
        "derniere_utilisation": {"type": ["string", "null"]},
    },
}
_DELETED: dict[str, Any] = {
    "type": "object",
    "properties": {"adresse": {"type": "string"}, "messages": {"type": "integer"}},
}
_CONFIRMATION = (("confirmation", {"type": "string", "maxLength": 320}),)


def _require_admin(call: Call) -> None:
    """The token's account must still be an administrator (a role taken back ends it)."""
    if call.account.role is not Role.ADMIN:
        raise ApiError(
            403,
            "droit",
            "Le compte de ce jeton n'est plus administrateur du cabinet.",
            "This token's account is no longer an administrator of the practice.",
        )


def _mailbox_json(box: Mailbox) -> dict[str, Any]:
    used = box.last_used_at.isoformat() if box.last_used_at else None
    return {
        "id": box.id,
        "adresse": box.address,
        "type": box.type.value,
        "desactivee": box.disabled,
        "derniere_utilisation": used,
    }


def _account_json(account: Account) -> dict[str, Any]:
    used = account.last_used_at.isoformat() if account.last_used_at else None
    return {
        "id": account.id,
        "identifiant": account.login,
        "role": account.role.value,
        "desactive": account.disabled,
        "derniere_utilisation": used,
    }


async def _mailbox(call: Call) -> Mailbox:
    _require_admin(call)
    wanted = int_param(call.request.path_params.get("mailbox_id"))
    for box in await mailboxes.list_mailboxes(call.app, call.account.practice_id):
        if box.id == wanted:
            return box
    raise ApiError(404, "introuvable", *_NOT_FOUND)


async def _account(call: Call) -> Account:
    _require_admin(call)
    wanted = int_param(call.request.path_params.get("account_id"))
    for account in await accounts.list_accounts(call.app, call.account.practice_id):
        if account.id == wanted:
            return account
    raise ApiError(404, "introuvable", *_NOT_FOUND)


def _confirmation(call: Call, address: str) -> str:
    typed = call.request.query_params.get("confirmation", "")
    try:
        lifecycle.check_confirmation(address, typed)
    except InvalidInput as exc:
        raise ApiError(422, "confirmation", exc.fr, exc.en) from None
    return typed


def _conflict(exc: AccessDenied | InvalidInput) -> ApiError:
    return ApiError(409, "conflit", exc.fr, exc.en)


async def list_practice_mailboxes(call: Call) -> Response:
    _require_admin(call)
    boxes = await mailboxes.list_mailboxes(call.app, call.account.practice_id)
    return JSONResponse([_mailbox_json(box) for box in boxes])


async def list_practice_accounts(call: Call) -> Response:
    _require_admin(call)
    people = await accounts.list_accounts(call.app, call.account.practice_id)
    return JSONResponse([_account_json(account) for account in people])


async def _set_mailbox(call: Call, disabled: bool) -> Response:
    box = await _mailbox(call)
    updated = await mailboxes.set_mailbox_disabled(
        call.app, box.address, disabled, actor=call.account.login, source=call.source
    )
    return JSONResponse(_mailbox_json(updated))


async def disable_mailbox(call: Call) -> Response:
    return await _set_mailbox(call, True)


async def enable_mailbox(call: Call) -> Response:
    return await _set_mailbox(call, False)


async def _delete(call: Call, address: str, delete: _Deleter) -> Response:
    """One deletion door for mailboxes and accounts: the confirmation names the address."""
    confirm = _confirmation(call, address)
    try:
        deleted = await delete(
            call.app, address, confirm=confirm, actor=call.account.login, source=call.source
        )
    except RetentionHold:
        raise  # 409 « conservation », with the date (web.api.auth)
    except (AccessDenied, InvalidInput) as exc:
        raise _conflict(exc) from None
    return JSONResponse({"adresse": deleted.address, "messages": deleted.messages})


async def delete_mailbox(call: Call) -> Response:
    box = await _mailbox(call)
    return await _delete(call, box.address, lifecycle.delete_mailbox)


async def _set_account(call: Call, disabled: bool) -> Response:
    account = await _account(call)
    try:
        updated = await accounts.set_disabled(
            call.app, account.login, disabled, actor=call.account.login, source=call.source
        )
    except InvalidInput as exc:  # one's own account
        raise _conflict(exc) from None
    return JSONResponse(_account_json(updated))


async def disable_account(call: Call) -> Response:
    return await _set_account(call, True)


async def enable_account(call: Call) -> Response:
    return await _set_account(call, False)


async def delete_account(call: Call) -> Response:
    account = await _account(call)
    return await _delete(call, account.login, lifecycle.delete_account)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/admin/boites",
        list_practice_mailboxes,
        SCOPE,
        "Boîtes du cabinet (administrateur) : état et dernière utilisation",
        {"type": "array", "items": _MAILBOX},
    ),
    Endpoint(
        "POST",
        "/admin/boites/{mailbox_id}/desactivation",
        disable_mailbox,
        SCOPE,
        "Désactiver une boîte du cabinet (ses sessions IMAP et POP3 sont coupées)",
        _MAILBOX,
    ),
    Endpoint(
        "POST",
        "/admin/boites/{mailbox_id}/activation",
        enable_mailbox,
        SCOPE,
        "Réactiver une boîte du cabinet",
        _MAILBOX,
    ),
    Endpoint(
        "DELETE",
        "/admin/boites/{mailbox_id}",
        delete_mailbox,
        SCOPE,
        "Supprimer définitivement une boîte (confirmation=son adresse) ; 409 si elle doit être "
        "conservée (télétransmission) ou si c'est la boîte personnelle d'un compte",
        _DELETED,
        query=_CONFIRMATION,
        errors=(409,),
    ),
    Endpoint(
        "GET",
        "/admin/comptes",
        list_practice_accounts,
        SCOPE,
        "Comptes du cabinet (administrateur) : rôle, état et dernière utilisation",
        {"type": "array", "items": _ACCOUNT},
    ),
    Endpoint(
        "POST",
        "/admin/comptes/{account_id}/desactivation",
        disable_account,
        SCOPE,
        "Désactiver un compte du cabinet (ses sessions sont coupées)",
        _ACCOUNT,
        errors=(409,),
    ),
    Endpoint(
        "POST",
        "/admin/comptes/{account_id}/activation",
        enable_account,
        SCOPE,
        "Réactiver un compte du cabinet",
        _ACCOUNT,
    ),
    Endpoint(
        "DELETE",
        "/admin/comptes/{account_id}",
        delete_account,
        SCOPE,
        "Supprimer définitivement un compte et sa boîte personnelle (confirmation=son "
        "identifiant) ; 409 pour le dernier administrateur ou un compte titulaire d'autres "
        "boîtes",
        _DELETED,
        query=_CONFIRMATION,
        errors=(409,),
    ),
)
