"""Storing and reading messages, sealed at rest.

The raw message is sealed into a blob (scope: its mailbox; record: its blob id; field "raw") and
its metadata — subject, display names, snippet, and later the precomputed IMAP ENVELOPE and
BODYSTRUCTURE — into ``messages.meta_sealed`` (same scope and record, field "meta"). A message is
stored (blob fsynced, row committed) before this returns: callers acknowledge only after.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from caducee.app import App
from caducee.domain.model import Flag, StoredMessage
from caducee.errors import InvalidInput, MessageTooLarge, NotFound, QuotaExceeded
from caducee.ids import new_blob_id
from caducee.store import directory_repo as repo
from caducee.store import messages_repo
from caducee.store.keyring import mailbox_scope

SNIPPET_CHARS = 200
MAX_MESSAGE_BYTES = 50 * 1024 * 1024


def extract_meta(raw: bytes) -> dict[str, Any]:
    """What lists and IMAP need without re-reading the body (kept sealed)."""
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)

    def header(name: str) -> str:
        try:
            value = parsed.get(name)
        except Exception:
            return ""
        return str(value) if value is not None else ""

    snippet = ""
    try:
        body = parsed.get_body(preferencelist=("plain",))
        if body is not None:
            content = body.get_content()
            if isinstance(content, str):
                snippet = " ".join(content.split())[:SNIPPET_CHARS]
    except Exception:
        snippet = ""
    return {
        "subject": header("Subject"),
        "from": header("From"),
        "to": header("To"),
        "cc": header("Cc"),
        "date": header("Date"),
        "message_id": header("Message-ID"),
        "snippet": snippet,
    }


def _keywords_text(keywords: tuple[str, ...]) -> str:
    for keyword in keywords:
        if not keyword or keyword.startswith("\\") or any(c in keyword for c in ' (){%*"]\\'):
            raise InvalidInput(
                f"Mot-clé IMAP invalide : {keyword!r}.", f"Invalid IMAP keyword: {keyword!r}."
            )
    return " ".join(keywords)


async def store_message(
    app: App,
    mailbox_id: int,
    folder_name: str,
    raw: bytes,
    *,
    flags: int = 0,
    keywords: tuple[str, ...] = (),
    internal_date: datetime | None = None,
) -> StoredMessage:
    """Seal and store a message in a folder; returns once it is durably committed."""
    if not raw:
        raise InvalidInput("Message vide.", "Empty message.")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MessageTooLarge(
            f"Message trop volumineux : {MAX_MESSAGE_BYTES // (1024 * 1024)} Mo au plus.",
            f"Message too large: at most {MAX_MESSAGE_BYTES // (1024 * 1024)} MB.",
        )
    if flags & ~sum(Flag.NAMES.values()):
        raise InvalidInput("Drapeaux inconnus.", "Unknown flags.")
    keywords_text = _keywords_text(keywords)
    meta = extract_meta(raw)
    blob_id = new_blob_id()
    scope = mailbox_scope(mailbox_id)
    when = (internal_date or datetime.now(UTC)).astimezone(UTC)
    async with app.db.write() as conn:
        mailbox = await repo.mailbox_by_id(conn, mailbox_id, for_update=True)
        if mailbox is None:
            raise NotFound("Boîte aux lettres introuvable.", "Mailbox not found.")
        if mailbox.used_bytes + len(raw) > mailbox.quota_bytes:
            raise QuotaExceeded(
                f"La boîte {mailbox.address} est pleine (quota dépassé).",
                f"Mailbox {mailbox.address} is full (over quota).",
            )
        folder = await repo.folder_by_name(conn, mailbox_id, folder_name)
        if folder is None:
            raise NotFound(
                f"Dossier « {folder_name} » introuvable.", f"Folder '{folder_name}' not found."
            )
        sealed_raw = await app.keyring.seal(conn, scope, blob_id, "raw", raw)
        sealed_meta = await app.keyring.seal(
            conn, scope, blob_id, "meta", json.dumps(meta, ensure_ascii=False).encode()
        )
        await app.blobs.put(conn, blob_id, sealed_raw)
        uid, modseq = await repo.allocate_uid(conn, folder.id)
        message_id = await messages_repo.insert_message(
            conn,
            mailbox_id=mailbox_id,
            folder_id=folder.id,
            uid=uid,
            modseq=modseq,
            flags=flags,
            keywords=keywords_text,
            internal_date=when,
            size=len(raw),
            blob_id=blob_id,
            meta_sealed=sealed_meta,
        )
        await repo.add_used_bytes(conn, mailbox_id, len(raw))
    return StoredMessage(
        id=message_id,
        mailbox_id=mailbox_id,
        folder_id=folder.id,
        uid=uid,
        modseq=modseq,
        flags=flags,
        keywords=keywords,
        internal_date=when,
        size=len(raw),
        blob_id=blob_id,
        meta=meta,
    )


async def read_message(app: App, message_id: int) -> tuple[StoredMessage, bytes]:
    """A stored message, its metadata opened and its raw bytes decrypted.

    Authorization is the caller's job (``services.mailboxes.open_mailbox``).
    """
    async with app.db.read() as conn:
        row = await messages_repo.message_row(conn, message_id)
        if row is None:
            raise NotFound("Message introuvable.", "Message not found.")
        scope = mailbox_scope(row.mailbox_id)
        meta = json.loads(
            await app.keyring.open(conn, scope, row.blob_id, "meta", bytes(row.meta_sealed))
        )
        sealed_raw = await app.blobs.get(conn, row.blob_id)
        raw = await app.keyring.open(conn, scope, row.blob_id, "raw", sealed_raw)
    internal_date = row.internal_date
    if internal_date.tzinfo is None:
        internal_date = internal_date.replace(tzinfo=UTC)
    message = StoredMessage(
        id=row.id,
        mailbox_id=row.mailbox_id,
        folder_id=row.folder_id,
        uid=row.uid,
        modseq=row.modseq,
        flags=row.flags,
        keywords=tuple(row.keywords.split()),
        internal_date=internal_date,
        size=row.size,
        blob_id=row.blob_id,
        meta=meta,
    )
    return message, raw
