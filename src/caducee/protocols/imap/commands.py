"""Which handler serves which command, in which states (RFC 3501 §6)."""

from __future__ import annotations

from caducee.protocols.imap import (
    append,
    auth,
    copy_move,
    expunge,
    fetch,
    idle,
    mailbox,
    quota,
    search,
    store,
)
from caducee.protocols.imap.session import Handler, State

ANY = frozenset(State) - {State.LOGOUT}
NOT_AUTH = frozenset({State.NOT_AUTHENTICATED})
AUTH = frozenset({State.AUTHENTICATED, State.SELECTED})
SELECTED = frozenset({State.SELECTED})

HANDLERS: dict[str, tuple[Handler, frozenset[State]]] = {
    "CAPABILITY": (auth.cmd_capability, ANY),
    "NOOP": (auth.cmd_noop, ANY),
    "LOGOUT": (auth.cmd_logout, ANY),
    "ID": (auth.cmd_id, ANY),
    "ENABLE": (auth.cmd_enable, AUTH),
    "STARTTLS": (auth.cmd_starttls, NOT_AUTH),
    "LOGIN": (auth.cmd_login, NOT_AUTH),
    "AUTHENTICATE": (auth.cmd_authenticate, NOT_AUTH),
    "SELECT": (mailbox.cmd_select, AUTH),
    "EXAMINE": (mailbox.cmd_select, AUTH),
    "CREATE": (mailbox.cmd_create, AUTH),
    "DELETE": (mailbox.cmd_delete, AUTH),
    "RENAME": (mailbox.cmd_rename, AUTH),
    "SUBSCRIBE": (mailbox.cmd_subscribe, AUTH),
    "UNSUBSCRIBE": (mailbox.cmd_subscribe, AUTH),
    "LIST": (mailbox.cmd_list, AUTH),
    "LSUB": (mailbox.cmd_list, AUTH),
    "NAMESPACE": (mailbox.cmd_namespace, AUTH),
    "STATUS": (mailbox.cmd_status, AUTH),
    "APPEND": (append.cmd_append, AUTH),
    "IDLE": (idle.cmd_idle, AUTH),
    "GETQUOTAROOT": (quota.cmd_getquotaroot, AUTH),
    "GETQUOTA": (quota.cmd_getquota, AUTH),
    "SETQUOTA": (quota.cmd_setquota, AUTH),
    "CHECK": (mailbox.cmd_check, SELECTED),
    "CLOSE": (mailbox.cmd_close, SELECTED),
    "UNSELECT": (mailbox.cmd_unselect, SELECTED),
    "EXPUNGE": (expunge.cmd_expunge, SELECTED),
    "UID EXPUNGE": (expunge.cmd_expunge, SELECTED),
    "FETCH": (fetch.cmd_fetch, SELECTED),
    "UID FETCH": (fetch.cmd_fetch, SELECTED),
    "STORE": (store.cmd_store, SELECTED),
    "UID STORE": (store.cmd_store, SELECTED),
    "COPY": (copy_move.cmd_copy, SELECTED),
    "UID COPY": (copy_move.cmd_copy, SELECTED),
    "MOVE": (copy_move.cmd_copy, SELECTED),
    "UID MOVE": (copy_move.cmd_copy, SELECTED),
    "SEARCH": (search.cmd_search, SELECTED),
    "UID SEARCH": (search.cmd_search, SELECTED),
}
