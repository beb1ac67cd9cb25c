"""Auto-replies (issue 16, RFC 3834): every automatic answer the server writes to a message
delivered into one of our mailboxes is decided and sent here, by :func:`after_delivery`, which
every door calls once a message is durably stored — the MX (:mod:`caducee.flows.inbound`), the
local copies of a submission (:mod:`caducee.flows.submission`), and the patient doors (portal
reply, Mon espace santé, a registered patient's e-mail) with their triage verdict.

**When.** One answer per message at most, the first that applies in this order:

1. *urgent* — the triage found warning signs: at once, whatever the hour, even within the
   once-per-period window (but never twice for the same message): the emergency numbers
   (15, 112, 114, 3114, 116 117) and the charter's emergency text. It advises, never diagnoses;
2. *hors-champ* — the triage says the request needs a consultation (a cue said so: a message
   the classifier could not place is not told to book a consultation): a polite answer
   pointing to one; the message is delivered all the same, never hidden;
3. *absence* — the owner of a personal mailbox is absent today (:mod:`.absences`): to anyone,
   colleagues too, naming the replacement colleague;
4. *acknowledgement* — to a patient: their first message in a conversation, or a message
   received outside opening hours or on a closed day (the charter's hours, holidays and
   closures), with the expected answer date in working days and the charter's short text.

A **conversation** is a thread the practice took part in: a patient's message opens one unless
its ``In-Reply-To`` or ``References`` name a message one of our mailboxes sent to that very
address (the sender's trace, :func:`caducee.services.trace.sent_to`, which also holds our
auto-replies: answering our acknowledgement is not a new conversation). A Mon espace santé
message is always a reply (:mod:`.mon_espace_sante`), so it is acknowledged only out of hours.

**Never** (RFC 3834 §2, :func:`caducee.domain.auto_reply.suppressed`): ``Auto-Submitted`` other
than ``no``, ``List-*`` fields, ``Precedence: bulk/list/junk``, the null sender,
``MAILER-DAEMON``, ``postmaster``, no-reply, ``owner-*`` and ``*-request`` addresses, our own
auto-replies; and at most once per (replying mailbox, sender) within ``[auto_reply]
once_per_days`` (default 4). Who was answered when is kept as a keyed pseudonym of the address
under the mailbox's data key (:func:`caducee.services.scope_keys.keyed_email`), never in clear.
Both memories are claimed in one transaction before sending, atomically on both backends (a
primary key and a conditional update decide), so two nodes delivering at once answer once.

**How.** From the mailbox that received the message, with the null reverse-path (RFC 3834
§3.3), ``Auto-Submitted: auto-replied``, ``In-Reply-To``/``References`` of the original, no part
of the original quoted, a neutral subject for patients (theirs may carry health content),
through :func:`caducee.health.generated_mail.send_generated` with ``Purpose.AUTO_REPLY``: to a
verified patient's own address directly, to anyone else under the mailbox's ordinary rule (an
MSSanté mailbox does not answer outside the trust space). A refusal or a failure is logged and
audited (``auto_reply.refused``), never raised into the delivering door.

**Cost.** Ordinary mail (no absence, not a patient, no triage) costs one look at a cached set
of absences (:func:`caducee.health.absences.absent_mailboxes`) and, on the MX, one cached
registry lookup of the sender (:func:`patient_sender`): no query of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import Enum

from caducee.app import App
from caducee.domain import auto_reply
from caducee.domain.addresses import normalize_address
from caducee.domain.auto_reply import Absence, Answer, Kind, Original
from caducee.domain.charter import Charter
from caducee.domain.model import Mailbox, MailboxType, StoredMessage
from caducee.domain.recipient_route import Purpose
from caducee.domain.triage import Triage
from caducee.domain.working_days import PARIS
from caducee.errors import CaduceeError, InvalidInput
from caducee.health import absences, charter, patients
from caducee.health.generated_mail import send_generated
from caducee.services import trace
from caducee.services.audit import AuditEvent, append
from caducee.services.scope_keys import keyed_email
from caducee.store import auto_reply_repo, directory_repo
from caducee.store.keyring import mailbox_scope

log = logging.getLogger(__name__)

#: Label of the keyed pseudonym of an answered sender.
SENDER_LABEL = "auto-reply-sender"
#: The least score of the ``hors-champ`` type that counts as "a cue said so".
OUT_OF_SCOPE_MIN_SCORE = 1.0
OUT_OF_SCOPE = "hors-champ"
#: The answered messages are remembered at least this long (never twice the same message).
MIN_MEMORY_DAYS = 30


class Channel(Enum):
    """The door a message came through."""

    MAIL = "mail"
    PORTAL = "portal"
    MES = "mes"


class _Skip(Exception):
    """Inside the claim's transaction: nothing to send (rolls the claim back)."""


async def after_delivery(
    app: App,
    *,
    raw: bytes,
    sender: str,
    stored: Sequence[StoredMessage],
    channel: Channel,
    triage: Triage | None = None,
    patient: bool = False,
    now: datetime | None = None,
) -> None:
    """Decide and send the auto-reply a durably delivered message gets, if any (see the
    module's docstring). Never raises into the caller: what cannot be sent is logged and
    audited."""
    try:
        await _after_delivery(app, raw, sender, stored, channel, triage, patient, now)
    except Exception:  # a bug here must never fail a delivery already acknowledged
        log.exception("auto-reply: unexpected failure (channel %s)", channel.value)


def _is_out_of_scope(triage: Triage) -> bool:
    return triage.type == OUT_OF_SCOPE and (
        triage.scores.get(OUT_OF_SCOPE, 0.0) >= OUT_OF_SCOPE_MIN_SCORE or not triage.scores
    )


async def _after_delivery(
    app: App,
    raw: bytes,
    sender: str,
    stored: Sequence[StoredMessage],
    channel: Channel,
    triage: Triage | None,
    patient: bool,
    now: datetime | None,
) -> None:
    if not stored or auto_reply.never_answered(sender):
        return
    try:
        recipient = normalize_address(sender)
    except InvalidInput:
        return
    patient_facing = patient or triage is not None or channel is not Channel.MAIL
    copies = list({copy.mailbox_id: copy for copy in reversed(stored)}.values())[::-1]
    absent = await absences.absent_mailboxes(app, [c.mailbox_id for c in copies], now)
    if not patient_facing and not absent:
        return  # ordinary mail: nothing more than the cached absences
    original = Original.parse(raw)
    reason = auto_reply.suppressed(original, recipient)
    if reason is not None:
        log.info("auto-reply: suppressed (%s)", reason)
        return
    when = (now or datetime.now(UTC)).astimezone(UTC)
    kind: Kind | None = None
    copy = copies[0]
    if triage is not None and triage.urgent:
        kind = Kind.URGENT
    elif triage is not None and _is_out_of_scope(triage):
        kind = Kind.OUT_OF_SCOPE
    elif absent:
        kind = Kind.ABSENCE
        copy = next(c for c in copies if c.mailbox_id in absent)
    async with app.db.read() as conn:
        box = await directory_repo.mailbox_by_id(conn, copy.mailbox_id)
    if box is None or box.disabled or box.type is MailboxType.TLT:
        return
    rules = await charter.charter_for_mailbox(app, box.id) if patient_facing else Charter()
    closed = patient_facing and not rules.is_open(when)
    if kind is None:
        if not patient_facing:
            return
        if not closed and await _in_conversation(app, original, recipient, channel):
            return
        kind = Kind.ACK
    absence = None
    expected = rules.expected_answer(when) if patient_facing else None
    if kind is Kind.ABSENCE:
        row = absent[box.id]
        replacement = await absences.replacement_of(app, row)
        absence = Absence(
            row.starts_on,
            row.ends_on,
            replacement.display_name if replacement is not None else "",
            replacement.login if replacement is not None else "",
            row.message,
        )
        if patient_facing:  # counted from the practitioner's return
            back = datetime.combine(row.ends_on + timedelta(days=1), datetime.min.time(), PARIS)
            expected = rules.expected_answer(max(when, back))
    answer = Answer(kind, patient_facing, rules, when, expected, closed, absence)
    message_key = trace.trace_key(original.message_id) or f"copy:{copy.id}"
    if not await _claim(app, box, recipient, message_key, kind, when):
        log.info("auto-reply: already answered (mailbox %d, %s)", box.id, kind.value)
        return
    await _send(app, box, recipient, answer, original, channel, when)


async def _in_conversation(app: App, original: Original, address: str, channel: Channel) -> bool:
    """Whether the message answers one of ours sent to ``address`` (see the docstring)."""
    if channel is Channel.MES:
        return True
    keys = [k for k in (trace.trace_key(i) for i in original.references) if k is not None]
    return bool(keys) and bool(await trace.sent_to(app, keys, address))


async def _claim(
    app: App, box: Mailbox, address: str, message_key: str, kind: Kind, when: datetime
) -> bool:
    """Remember, atomically, that ``box`` answers this message and this sender now: False when
    it already answered the message, or (but for an urgent one) the sender within the period."""
    window = timedelta(days=app.settings.auto_reply_once_per_days)
    since = None if kind is Kind.URGENT else when - window
    try:
        async with app.db.write() as conn:
            if not await auto_reply_repo.claim_message(conn, box.id, message_key, kind.value, when):
                raise _Skip
            key = await app.keyring.data_key(conn, mailbox_scope(box.id))
            sender_key = keyed_email(key, SENDER_LABEL, address)
            if not await auto_reply_repo.claim_sender(conn, box.id, sender_key, when, since):
                raise _Skip
    except _Skip:
        return False
    return True


async def _send(
    app: App,
    box: Mailbox,
    address: str,
    answer: Answer,
    original: Original,
    channel: Channel,
    when: datetime,
) -> None:
    raw, message_id = auto_reply.compose(
        answer,
        original,
        from_address=box.address,
        to_address=address,
        hostname=app.settings.hostname,
        now=when,
    )
    details: dict[str, str | int | bool | None] = {
        "kind": answer.kind.value,
        "channel": channel.value,
        "patient": answer.patient,
    }
    try:
        await send_generated(
            app,
            raw,
            box.address,
            address,
            purpose=Purpose.AUTO_REPLY,
            mailbox_id=box.id,
            trace_key=trace.trace_key(message_id),
            source="auto-reply",
            reverse_path="",
        )
    except CaduceeError as error:
        # The mailbox's rule forbids it (an MSSanté mailbox and an address outside the trust
        # space), or the store refused: told in the logs and the audit trail, never raised.
        log.warning("auto-reply refused: mailbox %d, %s (%s)", box.id, answer.kind.value, error.en)
        details["error"] = type(error).__name__
        await _audit(app, box, "auto_reply.refused", "denied", details)
        return
    log.info("auto-reply sent: mailbox %d, %s", box.id, answer.kind.value)
    await _audit(app, box, "auto_reply.send", "ok", details)


async def _audit(
    app: App, box: Mailbox, action: str, result: str, details: dict[str, str | int | bool | None]
) -> None:
    async with app.db.write() as conn:
        await append(
            conn,
            AuditEvent(
                actor="system",
                action=action,
                target=box.address,
                source="auto-reply",
                result=result,
                details=details,
            ),
        )


# --- the MX's question: is the sender a patient of this practice? ----------------------------


async def patient_sender(app: App, practice_id: int, sender: str) -> bool:
    """Whether ``sender`` is a verified patient of ``practice_id`` with a personal address
    (:func:`caducee.health.patients.verified_sender`, cached per node)."""
    if auto_reply.never_answered(sender):
        return False
    return await patients.verified_sender(app, practice_id, sender) is not None


async def after_mx_delivery(
    app: App,
    *,
    raw: bytes,
    sender: str,
    stored: Sequence[StoredMessage],
    boxes: Sequence[Mailbox],
    now: datetime | None = None,
) -> None:
    """The MX's call: the copies grouped by practice, each group answered as its practice
    sees the sender (a verified patient of that practice, or not)."""
    if not stored or auto_reply.never_answered(sender):
        return
    practice_of = {box.id: box.practice_id for box in boxes}
    groups: dict[int, list[StoredMessage]] = {}
    for copy in stored:
        if copy.mailbox_id in practice_of:
            groups.setdefault(practice_of[copy.mailbox_id], []).append(copy)
    for practice_id, copies in groups.items():
        try:
            patient = await patient_sender(app, practice_id, sender)
        except Exception:
            log.exception("auto-reply: patient lookup failed")
            continue
        await after_delivery(
            app,
            raw=raw,
            sender=sender,
            stored=copies,
            channel=Channel.MAIL,
            patient=patient,
            now=now,
        )


async def purge(app: App, now: datetime | None = None) -> int:
    """Forget answers older than the period (and the answered messages after
    :data:`MIN_MEMORY_DAYS` at least): maintenance."""
    days = max(app.settings.auto_reply_once_per_days, MIN_MEMORY_DAYS)
    before = (now or datetime.now(UTC)) - timedelta(days=days)
    async with app.db.write() as conn:
        return await auto_reply_repo.purge(conn, before)
