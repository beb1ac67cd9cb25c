"""Attachments protected for a patient: an AES-256 encrypted PDF (every attachment converted to
pages or embedded in it) or an AES-256 ZIP, opened with a random password sent separately by
SMS (:func:`generate_password`).

- PDF (pikepdf, encryption revision 6, AES-256, random owner password): a cover page lists the
  contents; PDF attachments are merged page by page; text files become pages; JPEG and PNG
  images become one page each; anything else (or a PDF that cannot be read) is embedded as a
  file attachment of the PDF, which every PDF reader opens from its attachments panel.
- ZIP (pyzipper, WinZip AES-256): :data:`ZIP_NOTICE_FR` tells the patient which free tool
  opens it. Names of files inside a ZIP are NOT encrypted (the format keeps them in clear),
  so by default they are replaced by neutral ones (``document-1.pdf``).

Limits: :data:`MAX_TOTAL_BYTES` of attachments, :data:`MAX_ATTACHMENTS` files,
:data:`MAX_PAGES` pages; beyond, :class:`~caducee.errors.LimitReached`.
"""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath, PureWindowsPath

import pikepdf
import pyzipper  # type: ignore[import-untyped]

from caducee.domain.pdf_pages import add_image_page, add_text_pages, wrap
from caducee.domain.protected_notice import PASSWORD_ALPHABET as PASSWORD_ALPHABET
from caducee.domain.protected_notice import generate_password as generate_password
from caducee.errors import InvalidInput, LimitReached

#: Total size of the attachments of one protected file.
MAX_TOTAL_BYTES = 25 * 1024 * 1024
#: Attachments in one protected file.
MAX_ATTACHMENTS = 50
#: Pages of one protected PDF.
MAX_PAGES = 1000

TEXT_TYPES = ("text/plain", "text/csv", "text/markdown")
IMAGE_TYPES = ("image/jpeg", "image/png")


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str  # e.g. "application/pdf"
    data: bytes


def _check(attachments: list[Attachment]) -> None:
    if not attachments:
        raise InvalidInput("Aucune pièce jointe à protéger.", "No attachment to protect.")
    if len(attachments) > MAX_ATTACHMENTS:
        raise LimitReached(
            f"Trop de pièces jointes : {len(attachments)}, {MAX_ATTACHMENTS} au plus.",
            f"Too many attachments: {len(attachments)}, at most {MAX_ATTACHMENTS}.",
        )
    total = sum(len(a.data) for a in attachments)
    if total > MAX_TOTAL_BYTES:
        raise LimitReached(
            f"Pièces jointes trop volumineuses : {total // 1024 // 1024} Mo, "
            f"{MAX_TOTAL_BYTES // 1024 // 1024} Mo au plus.",
            f"Attachments too large: {total // 1024 // 1024} MB, "
            f"at most {MAX_TOTAL_BYTES // 1024 // 1024} MB.",
        )


def safe_name(filename: str, fallback: str) -> str:
    """A bare file name (no directory, no control character), ``fallback`` if nothing is left."""
    name = PureWindowsPath(PurePosixPath(filename).name).name
    name = "".join(c for c in name if c.isprintable() and c not in '<>:"|?*').strip(" .")
    return name[:120] or fallback


def _extension(filename: str) -> str:
    suffix = PurePosixPath(safe_name(filename, "x")).suffix.lower()
    return suffix if 1 < len(suffix) <= 6 and suffix[1:].isalnum() else ""


def _text_of(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


# --- PDF -----------------------------------------------------------------------------------------


def _merge_pdf(target: pikepdf.Pdf, data: bytes, opened: list[pikepdf.Pdf]) -> int | None:
    """Append the pages of the PDF ``data``; ``None`` when it cannot be read (encrypted...)."""
    try:
        source = pikepdf.open(io.BytesIO(data))
    except (pikepdf.PdfError, pikepdf.PasswordError, ValueError):
        return None
    opened.append(source)  # must stay open until the target is saved
    target.pages.extend(source.pages)
    return len(source.pages)


def _embed(pdf: pikepdf.Pdf, attachment: Attachment, name: str) -> None:
    spec = pikepdf.AttachedFileSpec(
        pdf, attachment.data, filename=name, mime_type=attachment.content_type or ""
    )
    pdf.attachments[name] = spec


def _unique(name: str, taken: set[str]) -> str:
    stem, suffix = PurePosixPath(name).stem, PurePosixPath(name).suffix
    candidate, number = name, 2
    while candidate.lower() in taken:
        candidate, number = f"{stem} ({number}){suffix}", number + 1
    taken.add(candidate.lower())
    return candidate


def encrypted_pdf(attachments: list[Attachment], password: str, *, title: str) -> bytes:
    """One PDF holding every attachment, encrypted with AES-256 (R6): ``password`` opens it,
    a random owner password (never kept) guards its permissions."""
    _check(attachments)
    if not password:
        raise InvalidInput("Mot de passe vide.", "Empty password.")
    pdf = pikepdf.new()
    opened: list[pikepdf.Pdf] = []
    contents: list[tuple[str, str]] = []
    taken: set[str] = set()
    try:
        for index, attachment in enumerate(attachments, start=1):
            name = _unique(safe_name(attachment.filename, f"document-{index}"), taken)
            kind = attachment.content_type.lower().split(";")[0].strip()
            first_page = len(pdf.pages) + 2  # after the cover page
            described = _add(pdf, attachment, name, kind, opened)
            if described is None:
                _embed(pdf, attachment, name)
                described = "fichier joint au PDF (panneau « Pièces jointes » du lecteur)"
            else:
                described = f"{described}, à partir de la page {first_page}"
            contents.append((name, described))
            if len(pdf.pages) > MAX_PAGES:
                raise LimitReached(
                    f"Le PDF dépasserait {MAX_PAGES} pages.",
                    f"The PDF would exceed {MAX_PAGES} pages.",
                )
        _cover(pdf, title, contents)
        pdf.docinfo[pikepdf.Name.Title] = title
        pdf.docinfo[pikepdf.Name.Producer] = "Caducee"
        output = io.BytesIO()
        pdf.save(
            output,
            encryption=pikepdf.Encryption(
                user=password, owner=secrets.token_urlsafe(32), R=6, aes=True
            ),
        )
        return output.getvalue()
    finally:
        for source in opened:
            source.close()


def _add(
    pdf: pikepdf.Pdf, attachment: Attachment, name: str, kind: str, opened: list[pikepdf.Pdf]
) -> str | None:
    """Put ``attachment`` into ``pdf`` as pages; a description, or ``None`` to embed it."""
    room = MAX_PAGES - len(pdf.pages)
    if kind == "application/pdf" or attachment.data.startswith(b"%PDF-"):
        count = _merge_pdf(pdf, attachment.data, opened)
        return None if count is None else f"pages du PDF ({count})"
    if kind in TEXT_TYPES:
        count = add_text_pages(pdf, name, wrap(_text_of(attachment.data)), max(room, 1))
        return f"pages de texte ({count})"
    if kind in IMAGE_TYPES:
        try:
            add_image_page(pdf, name, attachment.data)
        except InvalidInput:
            return None
        return "page d'image (1)"
    return None


def _cover(pdf: pikepdf.Pdf, title: str, contents: list[tuple[str, str]]) -> None:
    date = datetime.now(UTC).astimezone().strftime("%d/%m/%Y")
    lines = [f"Document protégé créé le {date} par Caducée.", "", "Contenu :", ""]
    for number, (name, described) in enumerate(contents, start=1):
        lines += wrap(f"{number}. {name} — {described}")
    lines += [
        "",
        "Les fichiers joints au PDF s'ouvrent depuis le panneau « Pièces jointes » (trombone)",
        "de votre lecteur PDF. Ne transmettez pas le mot de passe reçu par SMS.",
    ]
    count = add_text_pages(pdf, title, lines, MAX_PAGES)
    for _ in range(count):  # drawn last, moved to the front
        page = pdf.pages[-1]
        del pdf.pages[-1]
        pdf.pages.insert(0, page)


# --- ZIP -----------------------------------------------------------------------------------------

ZIP_NOTICE_FR = (
    "La pièce jointe est une archive ZIP chiffrée (AES-256). Pour l'ouvrir, utilisez le mot de "
    "passe reçu par SMS avec un logiciel gratuit :\n"
    "- Windows : 7-Zip (https://www.7-zip.org) ;\n"
    "- macOS : Keka (https://www.keka.io) ou The Unarchiver ;\n"
    "- Linux : 7-Zip (paquet 7zip ou p7zip).\n"
    "L'outil de décompression intégré à Windows et certains outils intégrés aux téléphones "
    "n'ouvrent pas ce type d'archive chiffrée : sur un téléphone, installez une application "
    "qui gère les ZIP chiffrés AES, ou ouvrez le fichier sur un ordinateur.\n"
    "Ne transmettez ce mot de passe à personne."
)
ZIP_NOTICE_EN = (
    "The attachment is an encrypted ZIP archive (AES-256). Open it with the password received "
    "by SMS, using a free tool:\n"
    "- Windows: 7-Zip (https://www.7-zip.org);\n"
    "- macOS: Keka (https://www.keka.io) or The Unarchiver;\n"
    "- Linux: 7-Zip (package 7zip or p7zip).\n"
    "Windows' built-in extraction and some phones' built-in tools cannot open this kind of "
    "encrypted archive: on a phone, install an app that handles AES-encrypted ZIP files, or "
    "open the file on a computer.\n"
    "Do not share this password with anyone."
)
PDF_NOTICE_FR = (
    "La pièce jointe est un PDF protégé par mot de passe (AES-256). Ouvrez-le avec n'importe "
    "quel lecteur PDF (Adobe Acrobat Reader, l'aperçu de votre téléphone ou de votre "
    "navigateur) et saisissez le mot de passe reçu par SMS. Ne le transmettez à personne."
)
PDF_NOTICE_EN = (
    "The attachment is a password-protected PDF (AES-256). Open it with any PDF reader "
    "(Adobe Acrobat Reader, your phone's or browser's viewer) and type the password received "
    "by SMS. Do not share it with anyone."
)


def zip_notice(lang: str = "fr") -> str:
    return ZIP_NOTICE_EN if lang == "en" else ZIP_NOTICE_FR


def pdf_notice(lang: str = "fr") -> str:
    return PDF_NOTICE_EN if lang == "en" else PDF_NOTICE_FR


def encrypted_zip(
    attachments: list[Attachment], password: str, *, keep_names: bool = False
) -> bytes:
    """A ZIP of the attachments, each encrypted with WinZip AES-256 under ``password``.

    ZIP keeps file names in clear: unless ``keep_names``, they become ``document-<n>.<ext>``
    so that a name such as "resultats-VIH.pdf" does not travel readable."""
    _check(attachments)
    if not password:
        raise InvalidInput("Mot de passe vide.", "Empty password.")
    output = io.BytesIO()
    taken: set[str] = set()
    with pyzipper.AESZipFile(
        output, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES
    ) as archive:
        archive.setpassword(password.encode("utf-8"))
        archive.setencryption(pyzipper.WZ_AES, nbits=256)
        for index, attachment in enumerate(attachments, start=1):
            neutral = f"document-{index}{_extension(attachment.filename)}"
            name = safe_name(attachment.filename, neutral) if keep_names else neutral
            archive.writestr(_unique(name, taken), attachment.data)
    return output.getvalue()
