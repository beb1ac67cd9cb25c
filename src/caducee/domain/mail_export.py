"""A mailbox as its owner takes it away (RGPD, issue 19): the pure parts of the export — mbox
framing (RFC 4155, "mboxrd" quoting), Maildir names (cur/ new/, flags in the name; folders as
Maildir++ sub-directories), the manifest and its French README. No I/O here: the service
(:mod:`caducee.services.mailbox_export`) reads, decrypts and writes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from caducee.domain.model import Flag

FORMATS = ("mbox", "maildir")

#: A line an mbox reader would take for a message separator, or one already quoted: each gets
#: one more ``>`` (the "mboxrd" convention, RFC 4155 §2 and its appendix), undone by readers
#: that strip one ``>`` from ``>+From `` lines.
_FROM_LINE = re.compile(rb"^(>*From )", re.MULTILINE)

#: Maildir info flags (https://cr.yp.to/proto/maildir.html), in the ASCII order they are
#: written in a name, from IMAP system flags (RFC 9051 §2.3.2).
MAILDIR_FLAGS = (
    ("D", Flag.DRAFT),
    ("F", Flag.FLAGGED),
    ("R", Flag.ANSWERED),
    ("S", Flag.SEEN),
    ("T", Flag.DELETED),
)


def flag_names(flags: int, keywords: str) -> list[str]:
    """The IMAP flags of a message as FETCH FLAGS names them (system flags, then keywords)."""
    names = [name for name, bit in Flag.NAMES.items() if flags & bit]
    return names + [k for k in keywords.split() if k]


def from_line(internal_date: datetime) -> bytes:
    """The separator line before a message (RFC 4155 §2): ``From``, a sender, and the date in
    ``asctime`` form, UTC. The envelope sender is not kept with a stored message: the usual
    placeholder of mbox writers stands for it."""
    when = internal_date.astimezone(UTC)
    return f"From MAILER-DAEMON {when:%a %b} {when.day:2d} {when:%H:%M:%S %Y}\n".encode()


def mbox_entry(raw: bytes, internal_date: datetime) -> bytes:
    """One message as an mbox holds it: the From line, the message with its ``From `` lines
    quoted, a line end if it lacked one, and the empty line that ends it."""
    body = _FROM_LINE.sub(rb">\1", raw)
    if not body.endswith(b"\n"):
        body += b"\n"
    return from_line(internal_date) + body + b"\n"


def unquote_mbox(text: bytes) -> bytes:
    """What :func:`mbox_entry` quoted, unquoted (one ``>`` less on ``>+From `` lines)."""
    return re.sub(rb"^>(>*From )", rb"\1", text, flags=re.MULTILINE)


def maildir_name(uid: int, internal_date: datetime, flags: int) -> tuple[str, str]:
    """(sub-directory, file name) of a message: ``new`` and no info for a message without any
    flag, else ``cur`` and ``:2,`` followed by its flags (Maildir's rules)."""
    stamp = int(internal_date.timestamp())
    base = f"{stamp}.U{uid}.caducee"
    letters = "".join(letter for letter, bit in MAILDIR_FLAGS if flags & bit)
    if not flags:
        return "new", base
    return "cur", f"{base}:2,{letters}"


def _safe_level(level: str) -> str:
    """A folder level as a directory name: what a file system or Maildir++ would misread
    (``.``, ``/``, ``%``, control characters and the characters Windows forbids) is written
    ``%XX``; other Unicode characters stay (ZIP names are UTF-8)."""
    out: list[str] = []
    for char in level:
        if char in './\\%:*?"<>|' or ord(char) < 0x20 or ord(char) == 0x7F:
            out.extend(f"%{byte:02X}" for byte in char.encode())
        else:
            out.append(char)
    return "".join(out)


def mbox_path(folder: str) -> str:
    """The ZIP entry of a folder's mbox file: ``mbox/<levels joined by />.mbox``."""
    return "mbox/" + "/".join(_safe_level(level) for level in folder.split("/")) + ".mbox"


def maildir_path(folder: str) -> str:
    """A folder's Maildir in the ZIP (Maildir++: INBOX is the top, every other folder a
    ``.level.level`` sub-directory of it), without the trailing slash."""
    if folder == "INBOX":
        return "Maildir"
    levels = folder.split("/")
    if levels[0] == "INBOX":  # INBOX/x is x's sibling in Maildir++
        levels = levels[1:]
    return "Maildir/." + ".".join(_safe_level(level) for level in levels)


@dataclass(frozen=True)
class ExportedMessage:
    uid: int
    flags: list[str]
    internal_date: datetime
    size: int
    sha256: str
    path: str  # the ZIP entry holding it (mbox file, or Maildir file)


@dataclass
class ExportedFolder:
    name: str
    uidvalidity: int
    path: str
    messages: list[ExportedMessage]


def manifest(
    *,
    account: str,
    mailbox: str,
    fmt: str,
    generated_at: datetime,
    folders: list[ExportedFolder],
) -> dict[str, Any]:
    """The manifest (``manifest.json``): what the archive holds and how to check it."""
    return {
        "format": fmt,
        "account": account,
        "mailbox": mailbox,
        "generated_at": generated_at.astimezone(UTC).isoformat(),
        "messages": sum(len(f.messages) for f in folders),
        "bytes": sum(m.size for f in folders for m in f.messages),
        "folders": [
            {
                "name": folder.name,
                "uidvalidity": folder.uidvalidity,
                "path": folder.path,
                "messages": [
                    {
                        "uid": m.uid,
                        "flags": m.flags,
                        # to the second, as IMAP's INTERNALDATE gives it (RFC 9051 §2.3.3)
                        "internal_date": m.internal_date.astimezone(UTC)
                        .replace(microsecond=0)
                        .isoformat(),
                        "size": m.size,
                        "sha256": m.sha256,
                        "path": m.path,
                    }
                    for m in folder.messages
                ],
            }
            for folder in folders
        ],
    }


def readme(*, mailbox: str, fmt: str, generated_at: datetime, messages: int) -> str:
    """The archive's LISEZMOI.txt, in French, then in English."""
    when = generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if fmt == "mbox":
        how_fr = (
            "Chaque dossier est un fichier mbox (RFC 4155) sous mbox/ : chaque message y est\n"
            "précédé d'une ligne « From » ; les lignes du message qui commencent par « From »\n"
            "(ou « >From », « >>From »…) y portent un « > » de plus (convention « mboxrd ») :\n"
            "retirez-en un pour retrouver les octets exacts ; un message qui ne finissait pas\n"
            "par une fin de ligne en a reçu une (sa taille, dans manifest.json, le dit).\n"
            "Thunderbird (avec l'extension\n"
            "ImportExportTools NG), mutt ou Apple Mail lisent ces fichiers.\n"
        )
        how_en = (
            "Each folder is an mbox file (RFC 4155) under mbox/ ('mboxrd' quoting of\n"
            "'From ' lines: remove one '>' to get the exact bytes back).\n"
        )
    else:
        how_fr = (
            "Les dossiers sont au format Maildir (Maildir++) sous Maildir/ : la boîte de\n"
            "réception est Maildir/ elle-même, chaque autre dossier un sous-répertoire\n"
            "« .Nom » (« .Parent.Enfant » pour un sous-dossier). Chaque message est un fichier\n"
            "de cur/ (ses indicateurs après « :2, » : D brouillon, F suivi, R répondu, S lu,\n"
            "T supprimé) ou de new/ (aucun indicateur). Dovecot, mutt ou Thunderbird les lisent.\n"
        )
        how_en = (
            "Folders are Maildir++ directories under Maildir/ (INBOX at the top, other folders\n"
            "as '.Name' sub-directories); each message is a file in cur/ (flags after ':2,')\n"
            "or new/ (no flag).\n"
        )
    return (
        f"Export de la boîte {mailbox}\n"
        f"Généré le {when} par Caducée — {messages} message(s).\n\n"
        + how_fr
        + "\nLes messages sont les octets exacts conservés par le serveur, déchiffrés.\n"
        "manifest.json décrit chaque message : dossier, UID, indicateurs IMAP, date de\n"
        "réception, taille et empreinte SHA-256 des octets exacts (pour vérifier l'archive).\n\n"
        "Cette archive contient des données de santé : conservez-la chiffrée et ne la\n"
        "transmettez que par un canal sécurisé.\n\n"
        "---\n\n"
        f"Export of mailbox {mailbox}, generated {when} by Caducée ({messages} messages).\n"
        + how_en
        + "Messages are the exact stored bytes; manifest.json lists each one with its UID,\n"
        "IMAP flags, internal date, size and SHA-256. This archive holds health data: keep it\n"
        "encrypted.\n"
    )
