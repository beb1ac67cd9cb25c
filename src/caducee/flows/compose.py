"""Writing a message for a door that has no mail client of its own (the webmail, the REST API):
one compose and one send, so that the same account writing the same thing gets the same
message whatever the door.

:func:`build` turns an :class:`Outgoing` (addresses, subject, text, attachments) into RFC 5322
bytes: From the mailbox (with the account's name when it writes from its own mailbox), To and
Cc (never Bcc, RFC 5322 §3.6.3), Subject, Date and Message-ID (§3.6.1, §3.6.4), reply threading
(In-Reply-To, References), an optional read-receipt request (RFC 8098 §2.1) and the MSSanté end
of exchange, the text and the attachments (RFC 2183 Content-Disposition), lines ending in CRLF
(RFC 5322 §2.1). :func:`send` hands it to :func:`caducee.flows.submission.submit` — the same
pipeline, checks and audit as SMTP submission — then files the Sent copy when the door asks
for it (SMTP clients file their own over IMAP). A door may ask for RFC 3461 delivery reports
(:class:`Dsn`: NOTIFY for every recipient, RET, ENVID), checked by
:func:`caducee.services.queue.check_dsn` as the queue checks SMTP's. What both doors offer
around it lives here once too: a reply's threading (:func:`reply_headers`) and its original
flagged answered (:func:`mark_answered`), a forwarded message's attachments
(:func:`forwarded`), drafts (:func:`save_draft`, :func:`drop_draft`).
"""

from __future__ import annotations

from dataclasses import dataclass

from caducee.app import App
from caducee.domain import mail_display
from caducee.domain.composition import DEFAULT_FILENAME as DEFAULT_FILENAME
from caducee.domain.composition import MAX_ATTACHMENTS as MAX_ATTACHMENTS
from caducee.domain.composition import MAX_FILENAME as MAX_FILENAME
from caducee.domain.composition import MAX_SUBJECT as MAX_SUBJECT
from caducee.domain.composition import Attachment as Attachment
from caducee.domain.composition import Composed as Composed
from caducee.domain.composition import Outgoing as Outgoing
from caducee.domain.composition import attachment_filename as attachment_filename
from caducee.domain.composition import attachment_type as attachment_type
from caducee.domain.composition import check_attachments as check_attachments
from caducee.domain.composition import compose as compose
from caducee.domain.model import Flag, SpecialUse
from caducee.errors import CaduceeError
from caducee.flows import submission
from caducee.services import cpu_pool, mailboxes, mailstore, queue, webmail
from caducee.services.envelope import ClientInfo, Envelope, EnvelopeRecipient


async def build(app: App, access: mailboxes.Access, outgoing: Outgoing) -> Composed:
    """The message ``access``'s account writes from its mailbox: From carries the account's
    name when the mailbox is its own (a delegate writes in the mailbox's name only)."""
    check_attachments(
        len(outgoing.attachments),
        sum(len(a.data) for a in outgoing.attachments),
        app.settings.max_message_bytes,
    )
    name = access.account.display_name if not access.delegated else ""
    # encoding big attachments holds the interpreter lock: in a worker process (issue 17)
    size = len(outgoing.text) + sum(len(a.data) for a in outgoing.attachments)
    return await cpu_pool.run_sized(size, compose, access.mailbox.address, name, outgoing)


@dataclass(frozen=True)
class Original:
    """A message of the sender's mailbox that a new one answers or forwards."""

    folder_id: int
    uid: int


async def reply_headers(app: App, access: mailboxes.Access, original: Original) -> tuple[str, str]:
    """``(In-Reply-To, References)`` of a reply to ``original`` (RFC 5322 §3.6.4: its
    Message-ID, appended to its own References)."""
    of = await webmail.open_folder(app, access, original.folder_id)
    _row, raw = await webmail.message(app, of, original.uid)
    shown = mail_display.display(raw)
    return shown.message_id, " ".join([*shown.references, shown.message_id]).strip()


async def forwarded(app: App, access: mailboxes.Access, original: Original) -> list[Attachment]:
    """The attachments of ``original``, to go along with a message forwarding it."""
    of = await webmail.open_folder(app, access, original.folder_id)
    _row, raw = await webmail.message(app, of, original.uid)
    found = []
    for attachment in mail_display.display(raw).attachments:
        part = mail_display.part_bytes(raw, attachment.index)
        if part is not None:
            found.append(Attachment(attachment.filename, attachment.content_type, part[1]))
    return found


async def mark_answered(app: App, access: mailboxes.Access, original: Original) -> None:
    """Once the reply is sent: ``original`` is flagged \\Answered (RFC 9051 §2.3.2) when the
    sender may write in its folder; an original gone meanwhile is no reason to fail."""
    try:
        of = await webmail.open_folder(app, access, original.folder_id)
        rows = await webmail.rows_by_uid(app, of, {original.uid})
        if rows and of.rights.write:
            await webmail.set_flags(app, of, [rows[0].id], Flag.ANSWERED, True)
    except CaduceeError:
        pass  # the original is gone: the message is sent all the same


@dataclass(frozen=True)
class Dsn:
    """RFC 3461 options of a message sent from a door without SMTP parameters."""

    notify: tuple[str, ...] = ()  # §4.1, for every recipient; empty: the server's default
    ret: str | None = None  # §4.3: FULL or HDRS
    envid: str | None = None  # §4.4: the sender's reference, given back in reports


@dataclass(frozen=True)
class SentCopy:
    """Where the copy of a sent message was filed."""

    folder: mailstore.OpenFolder
    uid: int


async def send(
    app: App,
    access: mailboxes.Access,
    composed: Composed,
    client: ClientInfo,
    *,
    save_sent: bool = True,
    dsn: Dsn = Dsn(),
) -> SentCopy | None:
    """Submit ``composed`` through the pipeline, then (``save_sent``) file a copy, read, in the
    mailbox's Sent folder, which is returned with the copy's UID."""
    notify, envid, ret = queue.check_dsn(dsn.notify, dsn.envid, dsn.ret)
    await submission.submit(
        app,
        access.account.login,
        Envelope(
            composed.sender,
            tuple(EnvelopeRecipient(r, notify) for r in composed.recipients),
            envid=envid,
            ret=ret,
        ),
        composed.raw,
        client,
    )
    if not save_sent:
        return None
    sent = await webmail.special_folder(app, access, SpecialUse.SENT)
    [uid] = await mailstore.append(app, sent, [mailstore.Appended(composed.raw, flags=Flag.SEEN)])
    return SentCopy(sent, uid)


async def save_draft(
    app: App, access: mailboxes.Access, outgoing: Outgoing, *, replaces: int | None = None
) -> SentCopy:
    """File ``outgoing`` in the mailbox's Drafts folder, as IMAP clients see drafts too (read,
    \\Draft, its Bcc kept, no recipient needed: RFC 5322 §3.6.3), then drop the draft it
    ``replaces``; returns where it was filed."""
    check_attachments(
        len(outgoing.attachments),
        sum(len(a.data) for a in outgoing.attachments),
        app.settings.max_message_bytes,
    )
    size = len(outgoing.text) + sum(len(a.data) for a in outgoing.attachments)
    composed = await cpu_pool.run_sized(
        size, compose, access.mailbox.address, "", outgoing, draft=True
    )
    drafts = await webmail.special_folder(app, access, SpecialUse.DRAFTS)
    [uid] = await mailstore.append(
        app, drafts, [mailstore.Appended(composed.raw, flags=Flag.SEEN | Flag.DRAFT)]
    )
    await drop_draft(app, access, replaces)
    return SentCopy(drafts, uid)


async def drop_draft(app: App, access: mailboxes.Access, uid: int | None) -> None:
    """Remove the draft ``uid`` of the Drafts folder (once sent, or saved again); a draft
    already gone is no error."""
    if uid is None:
        return
    drafts = await webmail.special_folder(app, access, SpecialUse.DRAFTS)
    rows = await webmail.rows_by_uid(app, drafts, {uid})
    if rows:
        await mailstore.expunge_deleted(app, drafts, [r.id for r in rows])
