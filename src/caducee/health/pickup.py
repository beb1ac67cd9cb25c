"""Secure pickup (issue #7): the health content stays on the server; the patient gets an email
without health content carrying a link to the portal, where a one-time code sent by SMS (see
:mod:`caducee.health.pickup_auth`) or a passphrase given in person opens it.

- :func:`create_pickup` seals the message, stores it with a 256-bit link token (SHA-256 only
  kept) and sends the notice through the outbound pipeline (local delivery for our domains,
  DKIM-signed and queued for the others); the sender's trace says « déposé sur le portail ».
- :func:`open_message`, :func:`download`, :func:`reply` are what the portal pages call once the
  patient holds a portal session; each is recorded for the sender's trace and audited.
- :func:`revoke` (the sender) and :func:`purge_expired` (maintenance) remove the content.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from caducee.app import App
from caducee.domain import mail_display, web_links
from caducee.domain.addresses import normalize_address
from caducee.domain.recipient_route import Purpose
from caducee.domain.web_links import Page
from caducee.errors import InvalidInput, LimitReached, NotFound
from caducee.health import charter, patient_triage, pickup_mail
from caducee.health.generated_mail import send_generated
from caducee.health.pickup_mail import ReplyFile
from caducee.health.pickup_store import (
    Pickup,
    PickupEvent,
    add_event,
    audit_event,
    by_id,
    contact,
    content,
    record_of,
    scope_of,
)
from caducee.ids import new_blob_id
from caducee.services import practices, trace
from caducee.services.audit import append
from caducee.services.delivery import deliver_local
from caducee.services.passwords import hash_password
from caducee.store import directory_repo, pickup_repo
from caducee.store.keyring import mailbox_scope

#: What a patient may attach to a reply: extension → content type (checked on the bytes too).
REPLY_TYPES = {
    ".pdf": "application/pdf",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".txt": "text/plain",
}
_MAGIC = {
    "application/pdf": (b"%PDF-",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
}
MAX_REPLY_FILES = 5
MAX_REPLY_TEXT = 20_000
MAX_PASSPHRASE = 200
MIN_PASSPHRASE = 8


async def _mailbox_address(app: App, mailbox_id: int) -> str:
    async with app.db.read() as conn:
        mailbox = await directory_repo.mailbox_by_id(conn, mailbox_id)
    if mailbox is None:
        raise NotFound("Boîte introuvable.", "Mailbox not found.")
    return mailbox.address


def _check_passphrase(passphrase: str | None) -> str | None:
    if passphrase is None or not passphrase.strip():
        return None
    if not MIN_PASSPHRASE <= len(passphrase) <= MAX_PASSPHRASE:
        raise InvalidInput(
            f"Le mot de passe remis au patient doit compter de {MIN_PASSPHRASE} à "
            f"{MAX_PASSPHRASE} caractères.",
            f"The password given to the patient must be {MIN_PASSPHRASE} to "
            f"{MAX_PASSPHRASE} characters long.",
        )
    return hash_password(passphrase)


async def create_pickup(
    app: App,
    *,
    practice_id: int,
    sender_mailbox_id: int,
    sender_address: str,
    patient_email: str,
    patient_mobile: str,
    raw_message: bytes,
    patient_id: int | None = None,
    passphrase: str | None = None,
    source: str = "",
) -> Pickup:
    """Leave ``raw_message`` on the portal for one patient and send them the notice.

    The returned :class:`Pickup` carries the patient's link (shown nowhere else: only its hash
    is stored)."""
    if not raw_message:
        raise InvalidInput("Message vide.", "Empty message.")
    email = normalize_address(patient_email)
    sender = normalize_address(sender_address)
    passphrase_hash = _check_passphrase(passphrase)
    practice = await practices.get_practice(app, practice_id)
    token = secrets.token_urlsafe(32)  # 256 bits
    record_id, blob_id = new_blob_id(), new_blob_id()
    now = datetime.now(UTC)
    expires = now + timedelta(days=app.settings.pickup_days)
    message_id = mail_display.display(raw_message).message_id
    key = trace.trace_key(message_id) if message_id else None
    scope = mailbox_scope(sender_mailbox_id)
    async with app.db.read() as conn:
        record = record_of(record_id)
        sealed_raw = await app.keyring.seal(conn, scope, record, "raw", raw_message)
        contact_json = json.dumps({"email": email, "mobile": patient_mobile.strip()})
        sealed_contact = await app.keyring.seal(
            conn, scope, record, "contact", contact_json.encode()
        )
        patient = (
            await trace.conceal(app.keyring, conn, sender_mailbox_id, key, email)
            if key is not None
            else None
        )
    committed = False
    try:
        await app.blobs.stage([(blob_id, sealed_raw)])
        async with app.db.write() as conn:
            await app.blobs.record(conn, [(blob_id, sealed_raw)])
            pickup = await pickup_repo.insert_pickup(
                conn,
                practice_id=practice_id,
                sender_mailbox_id=sender_mailbox_id,
                patient_id=patient_id,
                token=token,
                record_id=record_id,
                contact_sealed=sealed_contact,
                blob_id=blob_id,
                size=len(raw_message),
                trace_key=key,
                trace_recipient=(patient.key, patient.sealed) if patient else None,
                passphrase_hash=passphrase_hash,
                now=now,
                expires_at=expires,
            )
            await add_event(conn, pickup, "deposited", now=now)
            await append(conn, audit_event(pickup, "pickup.create", source, size=len(raw_message)))
        committed = True
    finally:
        if not committed:
            await app.blobs.remove_files([blob_id])
    link = web_links.url(app.settings.public_base_url, Page.PICKUP, token=token)
    rules = await charter.charter_for_mailbox(app, sender_mailbox_id)
    notice = pickup_mail.notice(
        hostname=app.settings.hostname,
        practice_name=practice.name,
        sender_address=sender,
        patient_email=email,
        link=link,
        expires_at=expires,
        passphrase=passphrase_hash is not None,
        charter=rules,
        charter_link=web_links.url(app.settings.public_base_url, Page.PICKUP_CHARTER, token=token),
    )
    await send_generated(
        app,
        notice,
        sender,
        email,
        mailbox_id=pickup.sender_mailbox_id,
        trace_key=pickup.trace_key,
        source=source,
        purpose=Purpose.PATIENT_NOTICE,
    )
    return replace(pickup, link=link)


async def revoke(app: App, pickup_id: int, mailbox_id: int, *, actor: str, source: str) -> None:
    """The sender withdraws the message: the link stops working and the content is deleted.
    ``mailbox_id`` must be the pickup's sender mailbox (else the same NotFound as unknown)."""
    now = datetime.now(UTC)
    async with app.db.read() as conn:
        try:
            pickup = await by_id(conn, pickup_id)
        except NotFound:
            pickup = None
    if pickup is None or pickup.sender_mailbox_id != mailbox_id:
        raise NotFound("Dépôt introuvable.", "Pickup not found.")
    async with app.db.write() as conn:
        pickup = await by_id(conn, pickup_id, lock=True)
        if pickup.revoked_at is not None:
            return
        await pickup_repo.mark_revoked(conn, pickup.id, now)
        await pickup_repo.end_sessions(conn, pickup.id)
        await add_event(conn, pickup, "revoked", now=now)
        event = audit_event(pickup, "pickup.revoke", source)
        await append(conn, replace(event, actor=actor))
        if pickup.blob_id is not None:
            await app.blobs.forget(conn, [pickup.blob_id])
    if pickup.blob_id is not None:
        await app.blobs.remove_files([pickup.blob_id])


async def _recipient(app: App, pickup: Pickup) -> str:
    return (await contact(app, pickup)).email


async def open_message(app: App, pickup: Pickup, *, source: str) -> bytes:
    """The message for the patient's portal session; each opening is traced."""
    pickup.check_open()
    raw = await content(app, pickup)
    async with app.db.write() as conn:
        await add_event(conn, pickup, "opened")
        await append(conn, audit_event(pickup, "pickup.open", source))
    return raw


def read_view(raw: bytes) -> mail_display.Display:
    return mail_display.display(raw)


async def download(
    app: App, pickup: Pickup, index: int, *, source: str
) -> tuple[mail_display.Attachment, bytes]:
    """Attachment ``index`` of the message; each download is traced (its number only)."""
    pickup.check_open()
    raw = await content(app, pickup)
    shown = mail_display.display(raw)
    meta = next((a for a in shown.attachments if a.index == index), None)
    found = mail_display.part_bytes(raw, index) if meta is not None else None
    if meta is None or found is None:
        raise NotFound("Pièce jointe introuvable.", "Attachment not found.")
    number = shown.attachments.index(meta) + 1
    async with app.db.write() as conn:
        await add_event(conn, pickup, "downloaded", str(number))
        await append(conn, audit_event(pickup, "pickup.download", source, attachment=number))
    return meta, found[1]


def check_reply_file(filename: str, data: bytes) -> ReplyFile:
    """A file the patient attaches: an allowed type whose bytes match its extension."""
    name = "".join(c for c in filename if c.isprintable() and c not in '/\\"\r\n')[-150:]
    extension = ("." + name.rpartition(".")[2].lower()) if "." in name else ""
    content_type = REPLY_TYPES.get(extension)
    magic = _MAGIC.get(content_type or "", ())
    if content_type is None or (magic and not data.startswith(magic)):
        raise InvalidInput(
            f"Fichier « {name} » refusé : seuls les PDF, images JPEG ou PNG et textes (.txt) "
            "sont acceptés.",
            f"File '{name}' refused: only PDF, JPEG or PNG images and text (.txt) files are "
            "accepted.",
        )
    if content_type == "text/plain":
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(
                f"Fichier « {name} » refusé : texte illisible (UTF-8 attendu).",
                f"File '{name}' refused: unreadable text (UTF-8 expected).",
            ) from None
    return ReplyFile(name, content_type, data)


async def reply(
    app: App, pickup: Pickup, text: str, files: list[ReplyFile], *, source: str
) -> None:
    """The patient's reply: delivered into the sender mailbox's Inbox as a normal message From
    the patient's address (through the delivery pipeline, so IMAP IDLE sees it)."""
    pickup.check_open()
    text = text.strip()
    if not text and not files:
        raise InvalidInput(
            "Écrivez un message ou joignez un fichier.", "Write a message or attach a file."
        )
    if len(text) > MAX_REPLY_TEXT:
        raise InvalidInput(
            f"Message trop long : {MAX_REPLY_TEXT} caractères au plus.",
            f"Message too long: at most {MAX_REPLY_TEXT} characters.",
        )
    if len(files) > MAX_REPLY_FILES:
        raise LimitReached(
            f"{MAX_REPLY_FILES} fichiers au plus.", f"At most {MAX_REPLY_FILES} files."
        )
    limit = app.settings.pickup_reply_max_bytes
    if sum(len(f.data) for f in files) > limit:
        raise LimitReached(
            f"Fichiers trop volumineux : {limit // (1024 * 1024)} Mo au plus en tout.",
            f"Files too large: at most {limit // (1024 * 1024)} MB in all.",
        )
    original = await content(app, pickup)
    patient = await _recipient(app, pickup)
    mailbox_address = await _mailbox_address(app, pickup.sender_mailbox_id)
    raw = pickup_mail.reply(
        hostname=app.settings.hostname,
        patient_email=patient,
        mailbox_address=mailbox_address,
        original=original,
        text=text,
        files=files,
    )
    # Classified before it is stored, so the copy carries its triage keywords (issue 16).
    copies = await patient_triage.portal_copies(
        app, pickup.practice_id, pickup.patient_id, mailbox_address, raw
    )
    stored = await deliver_local(
        app,
        raw,
        [mailbox_address],
        sender=patient,
        source=source,
        keywords={mailbox_address: copies.keywords},
    )
    async with app.db.write() as conn:
        await add_event(conn, pickup, "replied", str(len(files)))
        await append(conn, audit_event(pickup, "pickup.reply", source, files=len(files)))
    await patient_triage.delivered(app, raw=raw, sender=patient, stored=stored, copies=copies)


async def for_message(app: App, mailbox_id: int, message_id: str) -> list[Pickup]:
    """The pickups made from one sent message of ``mailbox_id`` (the trace view's buttons)."""
    key = trace.trace_key(message_id)
    if key is None:
        return []
    async with app.db.read() as conn:
        ids = await pickup_repo.ids(conn, mailbox_id=mailbox_id, trace_key=key)
        return [await by_id(conn, i) for i in ids]


async def of_mailbox(app: App, pickup_id: int, mailbox_id: int) -> tuple[Pickup, list[PickupEvent]]:
    """A pickup deposited from ``mailbox_id`` and its log (codes sent, openings, downloads,
    replies...), for its sender; another mailbox's is the same NotFound as an unknown one."""
    async with app.db.read() as conn:
        try:
            found = await by_id(conn, pickup_id)
        except NotFound:
            found = None
        if found is None or found.sender_mailbox_id != mailbox_id:
            raise NotFound("Dépôt introuvable.", "Pickup not found.")
        return found, await pickup_repo.events(conn, pickup_id)


async def list_pickups(app: App, mailbox_id: int | None = None) -> list[Pickup]:
    async with app.db.read() as conn:
        ids = await pickup_repo.ids(conn, mailbox_id=mailbox_id)
        return [await by_id(conn, i) for i in ids]


async def purge_expired(app: App, now: datetime | None = None) -> int:
    """Maintenance: delete the content of expired pickups, their codes and portal sessions."""
    when = now or datetime.now(UTC)
    async with app.db.read() as conn:
        ids = await pickup_repo.expired_with_content(conn, when)
    for pickup_id in ids:
        async with app.db.write() as conn:
            pickup = await by_id(conn, pickup_id, lock=True)
            if pickup.blob_id is None:
                continue
            await pickup_repo.mark_purged(conn, pickup.id, when)
            await add_event(conn, pickup, "purged", now=when)
            await append(conn, audit_event(pickup, "pickup.expire", "system"), now=when)
            await app.blobs.forget(conn, [pickup.blob_id])
        await app.blobs.remove_files([pickup.blob_id])
    async with app.db.write() as conn:
        await pickup_repo.purge_stale(conn, when, codes_before=when - timedelta(days=1))
    return len(ids)


__all__ = [
    "Pickup",
    "ReplyFile",
    "check_reply_file",
    "create_pickup",
    "download",
    "for_message",
    "list_pickups",
    "open_message",
    "purge_expired",
    "read_view",
    "reply",
    "revoke",
    "scope_of",
]
