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
for it (SMTP clients file their own over IMAP).
"""

from __future__ import annotations

from caducee.app import App
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
from caducee.flows import submission
from caducee.services import cpu_pool, mailboxes, mailstore, webmail
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


async def send(
    app: App,
    access: mailboxes.Access,
    composed: Composed,
    client: ClientInfo,
    *,
    save_sent: bool = True,
) -> mailstore.OpenFolder | None:
    """Submit ``composed`` through the pipeline, then (``save_sent``) file a copy, read, in the
    mailbox's Sent folder, which is returned."""
    await submission.submit(
        app,
        access.account.login,
        Envelope(composed.sender, tuple(EnvelopeRecipient(r) for r in composed.recipients)),
        composed.raw,
        client,
    )
    if not save_sent:
        return None
    sent = await webmail.special_folder(app, access, SpecialUse.SENT)
    await mailstore.append(app, sent, [mailstore.Appended(composed.raw, flags=Flag.SEEN)])
    return sent
