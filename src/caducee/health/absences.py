"""A practitioner's absence (issue 16): from a day to a day (inclusive, Europe/Paris), the
colleague of the practice who replaces them (named in the auto-reply), and a short message of
their own. One per account; set in the webmail (« Absence » page) and over the REST API
(``/api/v1/absence``), both through :func:`save` and :func:`remove`, checked here and audited
(``absence.update``, ``absence.delete``).

The auto-replies (:mod:`caducee.health.auto_replies`) ask :func:`absent_mailboxes` for every
delivered message: a node keeps the current absences in memory for
:data:`ABSENCES_TTL_SECONDS` (forgotten at once when one changes on this node), so ordinary mail
costs no query.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from caducee.app import App
from caducee.domain.addresses import normalize_address
from caducee.domain.model import Account
from caducee.domain.working_days import PARIS
from caducee.errors import InvalidInput, NotFound
from caducee.services import accounts
from caducee.services.audit import AuditEvent, append
from caducee.store import auto_reply_repo, directory_repo

#: Another node of a cluster sees an absence set elsewhere within this delay.
ABSENCES_TTL_SECONDS = 30.0
MAX_MESSAGE_CHARS = 500
MAX_DAYS = 366
#: How far ahead an absence may start.
MAX_AHEAD_DAYS = 2 * 366
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class Absence:
    account_id: int
    starts: date
    ends: date
    replacement: Account | None = None
    message: str = ""

    def covers(self, day: date) -> bool:
        return self.starts <= day <= self.ends


def today(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(PARIS).date()


def _parse_day(value: str, what_fr: str, what_en: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(
            f"{what_fr} : date attendue au format AAAA-MM-JJ.",
            f"{what_en}: date expected as YYYY-MM-DD.",
        ) from None


def _utf8(text: str) -> str:
    """Text that can be stored: a lone surrogate (a JSON escape, never UTF-8) becomes ``?``."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _clean_message(text: str) -> str:
    text = _utf8(text)
    clean = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n")).strip()
    if len(clean) > MAX_MESSAGE_CHARS:
        raise InvalidInput(
            f"Message d'absence trop long : {MAX_MESSAGE_CHARS} caractères au plus.",
            f"Absence message too long: at most {MAX_MESSAGE_CHARS} characters.",
        )
    return clean


async def _replacement(app: App, account: Account, login: str) -> Account | None:
    if not login.strip():
        return None
    try:
        address = normalize_address(login)
    except InvalidInput:
        address = login.strip().lower()
    for colleague in await accounts.list_accounts(app, account.practice_id):
        if colleague.login == address and not colleague.disabled:
            if colleague.id == account.id:
                raise InvalidInput(
                    "Le remplaçant doit être un autre membre du cabinet que vous.",
                    "The replacement must be another member of the practice than you.",
                )
            return colleague
    raise InvalidInput(
        f"Remplaçant inconnu : {login} n'est pas un compte actif de votre cabinet.",
        f"Unknown replacement: {login} is not an active account of your practice.",
    )


async def check(
    app: App,
    account: Account,
    *,
    starts: str,
    ends: str,
    replacement: str = "",
    message: str = "",
    now: datetime | None = None,
) -> Absence:
    """An absence as typed (ISO dates, the replacement's address), checked: InvalidInput with
    the reason otherwise."""
    starts, ends, replacement = _utf8(starts), _utf8(ends), _utf8(replacement)
    first = _parse_day(starts, "Début de l'absence", "Start of the absence")
    last = _parse_day(ends, "Fin de l'absence", "End of the absence")
    current = today(now)
    if last < first:
        raise InvalidInput(
            "La fin de l'absence précède son début.", "The absence ends before it starts."
        )
    if last < current:
        raise InvalidInput(
            "Cette absence est déjà terminée : indiquez une date de fin à venir.",
            "This absence is already over: give an end date to come.",
        )
    if (last - first).days + 1 > MAX_DAYS:
        raise InvalidInput(
            f"Absence trop longue : {MAX_DAYS} jours au plus.",
            f"Absence too long: at most {MAX_DAYS} days.",
        )
    if first > current + timedelta(days=MAX_AHEAD_DAYS):
        raise InvalidInput(
            "Absence trop lointaine : elle doit commencer dans les deux ans.",
            "Absence too far ahead: it must start within two years.",
        )
    return Absence(
        account.id,
        first,
        last,
        await _replacement(app, account, replacement),
        _clean_message(message),
    )


async def absence_of(app: App, account: Account) -> Absence | None:
    """The account's absence (past ones included until replaced or removed)."""
    async with app.db.read() as conn:
        row = await auto_reply_repo.absence_of(conn, account.id)
        if row is None:
            return None
        replacement = (
            await directory_repo.account_by_id(conn, row.replacement_account_id)
            if row.replacement_account_id is not None
            else None
        )
    return Absence(account.id, row.starts_on, row.ends_on, replacement, row.message)


async def save(app: App, account: Account, absence: Absence, *, actor: str, source: str) -> Absence:
    """Set (or replace) ``account``'s absence, checked by :func:`check`; audited."""
    if absence.account_id != account.id:
        raise NotFound("Absence introuvable.", "Absence not found.")
    async with app.db.write() as conn:
        await auto_reply_repo.save_absence(
            conn,
            account.id,
            starts_on=absence.starts,
            ends_on=absence.ends,
            replacement_account_id=absence.replacement.id if absence.replacement else None,
            message=absence.message,
            now=datetime.now(UTC),
            actor=actor,
        )
        await append(
            conn,
            AuditEvent(
                actor=actor,
                action="absence.update",
                target=account.login,
                source=source,
                details={
                    "starts": absence.starts.isoformat(),
                    "ends": absence.ends.isoformat(),
                    "replacement": absence.replacement.login if absence.replacement else None,
                },
            ),
        )
    changed(app)
    return absence


async def remove(app: App, account: Account, *, actor: str, source: str) -> bool:
    """Remove ``account``'s absence; True if there was one (audited)."""
    async with app.db.write() as conn:
        removed = await auto_reply_repo.delete_absence(conn, account.id)
        if removed:
            await append(
                conn,
                AuditEvent(
                    actor=actor, action="absence.delete", target=account.login, source=source
                ),
            )
    changed(app)
    return removed


# --- the node's copy, for every delivery ---------------------------------------------------------


class AbsenceCache:
    """The absences not yet over, by personal mailbox id: read for every delivered message,
    changed a few times a year."""

    def __init__(self, _app: App) -> None:
        self.by_mailbox: dict[int, auto_reply_repo.AbsenceRow] | None = None
        self.read_at = 0.0
        self.day: date | None = None

    def forget(self) -> None:
        self.by_mailbox = None


def changed(app: App) -> None:
    app.component(AbsenceCache, AbsenceCache).forget()


async def absent_mailboxes(
    app: App, mailbox_ids: list[int], now: datetime | None = None
) -> dict[int, auto_reply_repo.AbsenceRow]:
    """Of ``mailbox_ids``, the personal mailboxes whose owner is absent at ``now``."""
    cache = app.component(AbsenceCache, AbsenceCache)
    day = today(now)
    clock = time.monotonic()
    if (
        cache.by_mailbox is None
        or clock - cache.read_at > ABSENCES_TTL_SECONDS
        or cache.day is None
        or day < cache.day
    ):
        async with app.db.read() as conn:
            rows = await auto_reply_repo.current_absences(conn, day)
        cache.by_mailbox = dict(rows)
        cache.read_at, cache.day = clock, day
    return {
        mailbox_id: row
        for mailbox_id in mailbox_ids
        if (row := cache.by_mailbox.get(mailbox_id)) is not None
        and row.starts_on <= day <= row.ends_on
    }


async def replacement_of(app: App, row: auto_reply_repo.AbsenceRow) -> Account | None:
    if row.replacement_account_id is None:
        return None
    async with app.db.read() as conn:
        found = await directory_repo.account_by_id(conn, row.replacement_account_id)
    return found if found is not None and not found.disabled else None
