"""Reading an ``IHE_XDM.ZIP`` from untrusted bytes (ITI TF-1 §16; ITI TF-3 §4.2): bounded,
names checked, XML without DTDs or entities, sizes and SHA-1 hashes checked (see
:mod:`caducee.domain.xdm`)."""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from dataclasses import dataclass, field, replace
from xml.etree.ElementTree import Element

from caducee.domain import mail_display
from caducee.domain import xdm_codes as codes
from caducee.domain.xdm import (
    MAX_ENTRIES,
    MAX_ENTRY_BYTES,
    MAX_METADATA_BYTES,
    MAX_PACKAGE_BYTES,
    MAX_RATIO,
    MAX_TEXT,
    MAX_TOTAL_BYTES,
    MIME_CDA,
    MIME_PDF,
    RATIO_FLOOR_BYTES,
    PatientId,
    Problem,
    XdmError,
    cda_header,
    hl7_unescape,
    rim,
    safe_xml,
)
from caducee.domain.xdm_codes import Code
from caducee.errors import InvalidInput

# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadDocument:
    """A document of a received package, with what its metadata says and what was checked."""

    path: str  # entry name in the ZIP ("" when the file is missing)
    title: str
    mime_type: str
    size: int | None  # declared in the metadata
    hash: str  # declared SHA-1 (hex)
    creation_time: str
    type_code: Code | None
    class_code: Code | None
    format_code: Code | None
    author: str  # "Prénom NOM (RPPS …)" from the author's XCN, or ""
    unique_id: str
    cda_code: str = ""  # ClinicalDocument/code/@code for a CDA document
    problems: tuple[Problem, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class ReadPackage:
    patient: PatientId | None
    submission_title: str
    submission_time: str
    documents: tuple[ReadDocument, ...]
    problems: tuple[Problem, ...] = ()  # about the whole package (e.g. two patients)
    contents: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    @property
    def valid(self) -> bool:
        return not self.problems and all(d.valid for d in self.documents)

    @property
    def cda_codes(self) -> tuple[str, ...]:
        return tuple(d.cda_code for d in self.documents if d.cda_code)


def _fatal(fr: str, en: str) -> XdmError:
    return XdmError(f"Paquet XDM refusé : {fr}", f"XDM package refused: {en}")


def _check_entry_name(name: str) -> None:
    """ZIP entry names (APPNOTE §4.4.17): relative, forward slashes; refused otherwise."""
    bad = (
        not name
        or name.startswith("/")
        or "\\" in name
        or ":" in name
        or any(ord(c) < 0x20 or c == "\x7f" for c in name)
        or any(part in ("", ".", "..") for part in name.rstrip("/").split("/"))
    )
    if bad:
        raise _fatal(
            f"nom de fichier dangereux dans l'archive ({name[:80]!r}).",
            f"dangerous file name in the archive ({name[:80]!r}).",
        )


def _read_entries(data: bytes) -> dict[str, bytes]:
    if len(data) > MAX_PACKAGE_BYTES:
        raise _fatal(
            f"archive trop volumineuse (limite {MAX_PACKAGE_BYTES // 1024 // 1024} Mo).",
            f"archive too large (limit {MAX_PACKAGE_BYTES // 1024 // 1024} MB).",
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError):
        raise _fatal(
            "ce n'est pas une archive ZIP lisible.", "not a readable ZIP archive."
        ) from None
    if len(infos) > MAX_ENTRIES:
        raise _fatal(
            f"trop de fichiers dans l'archive (limite {MAX_ENTRIES}).",
            f"too many files in the archive (limit {MAX_ENTRIES}).",
        )
    entries: dict[str, bytes] = {}
    seen: set[str] = set()
    total = 0
    for info in infos:
        _check_entry_name(info.filename)
        folded = info.filename.upper()
        if folded in seen:
            raise _fatal(
                f"fichier en double dans l'archive ({info.filename[:80]!r}).",
                f"duplicate file in the archive ({info.filename[:80]!r}).",
            )
        seen.add(folded)
        if info.is_dir():
            continue
        if info.flag_bits & 0x1:
            raise _fatal("archive chiffrée.", "encrypted archive.")
        content = _read_bounded(archive, info, MAX_ENTRY_BYTES)
        total += len(content)
        if total > MAX_TOTAL_BYTES:
            raise _fatal(
                f"contenu décompressé trop volumineux (limite {MAX_TOTAL_BYTES >> 20} Mo).",
                f"uncompressed content too large (limit {MAX_TOTAL_BYTES >> 20} MB).",
            )
        entries[info.filename] = content
    return entries


def _read_bounded(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """The entry's bytes, read in chunks and stopped past ``limit`` or a bomb's ratio —
    whatever its header declares."""
    chunks: list[bytes] = []
    size = 0
    compressed = max(1, info.compress_size)
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(64 * 1024):
                size += len(chunk)
                if size > limit:
                    raise _fatal(
                        f"fichier trop volumineux dans l'archive ({info.filename[:80]!r}, "
                        f"limite {limit // 1024 // 1024} Mo).",
                        f"file too large in the archive ({info.filename[:80]!r}, "
                        f"limit {limit // 1024 // 1024} MB).",
                    )
                if size > RATIO_FLOOR_BYTES and size / compressed > MAX_RATIO:
                    raise _fatal(
                        f"taux de compression anormal (bombe de décompression ?) pour "
                        f"{info.filename[:80]!r}.",
                        f"abnormal compression ratio (decompression bomb?) for "
                        f"{info.filename[:80]!r}.",
                    )
                chunks.append(chunk)
    except XdmError:
        raise
    except (zipfile.BadZipFile, NotImplementedError, ValueError, OSError, EOFError) as exc:
        raise _fatal(
            f"fichier illisible dans l'archive ({info.filename[:80]!r}, {type(exc).__name__}).",
            f"unreadable file in the archive ({info.filename[:80]!r}, {type(exc).__name__}).",
        ) from None
    return b"".join(chunks)


def _slots(element: Element) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for slot in element.findall(rim("Slot")):
        values = [
            (v.text or "").strip() for v in slot.iterfind(f"{rim('ValueList')}/{rim('Value')}")
        ]
        found.setdefault(slot.get("name", ""), []).extend(values)
    return found


def _localized(element: Element) -> str:
    node = element.find(f"{rim('Name')}/{rim('LocalizedString')}")
    return (node.get("value", "") if node is not None else "")[:MAX_TEXT]


def _code(element: Element, scheme: str) -> Code | None:
    for node in element.findall(rim("Classification")):
        if node.get("classificationScheme") == scheme:
            coding = _slots(node).get("codingScheme", [""])
            return Code(node.get("nodeRepresentation", "")[:64], coding[0][:64], _localized(node))
    return None


def _external(element: Element, scheme: str) -> str:
    for node in element.findall(rim("ExternalIdentifier")):
        if node.get("identificationScheme") == scheme:
            return node.get("value", "")[:MAX_TEXT]
    return ""


def _author_text(element: Element, scheme: str) -> str:
    for node in element.findall(rim("Classification")):
        if node.get("classificationScheme") == scheme:
            person = _slots(node).get("authorPerson", [""])[0]
            parts = person.split("^")
            if len(parts) >= 3:
                ident = parts[0][1:] if parts[0].startswith("8") else parts[0]
                name = f"{hl7_unescape(parts[2])} {hl7_unescape(parts[1])}".strip()
                return f"{name} (RPPS {ident})"[:MAX_TEXT] if ident else name[:MAX_TEXT]
            return hl7_unescape(person)[:MAX_TEXT]
    return ""


def _patient_of(
    value: str, problems: list[Problem], where_fr: str, where_en: str
) -> PatientId | None:
    if not value:
        problems.append(
            (f"identifiant patient absent ({where_fr}).", f"patient id missing ({where_en}).")
        )
        return None
    try:
        return PatientId.parse_cx(value)
    except InvalidInput as exc:
        problems.append((f"{exc.fr} ({where_fr})", f"{exc.en} ({where_en})"))
        return None


def _find_entry(entries: dict[str, bytes], directory: str, uri: str) -> str | None:
    """The entry ``uri`` names, relative to the metadata's directory (ITI TF-1 §16.1.2.2)."""
    if not uri or "/" in uri or "\\" in uri or uri in (".", ".."):
        return None
    wanted = f"{directory}/{uri}"
    if wanted in entries:
        return wanted
    folded = wanted.upper()
    return next((name for name in entries if name.upper() == folded), None)


def read_package(data: bytes) -> ReadPackage:
    """Read and check an ``IHE_XDM.ZIP`` from untrusted bytes (see the module's docstring).
    :class:`XdmError` when it cannot be read at all."""
    entries = _read_entries(data)
    metadata_names = [n for n in entries if re.fullmatch(r"IHE_XDM/[^/]+/METADATA\.XML", n, re.I)]
    if not metadata_names:
        raise _fatal(
            "METADATA.XML absent (IHE_XDM/SUBSET01/).", "METADATA.XML missing (IHE_XDM/SUBSET01/)."
        )
    problems: list[Problem] = []
    documents: list[ReadDocument] = []
    patients: set[PatientId] = set()
    submission_title = submission_time = ""
    for metadata_name in sorted(metadata_names):
        raw = entries[metadata_name]
        if len(raw) > MAX_METADATA_BYTES:
            raise _fatal("METADATA.XML trop volumineux.", "METADATA.XML too large.")
        try:
            root = safe_xml(raw, "METADATA.XML", "METADATA.XML")
        except InvalidInput as exc:
            raise XdmError(
                f"Paquet XDM refusé : {exc.fr}", f"XDM package refused: {exc.en}"
            ) from None
        directory = metadata_name.rsplit("/", 1)[0]
        for package in root.iter(rim("RegistryPackage")):
            submission_title = submission_title or _localized(package)
            submission_time = submission_time or _slots(package).get("submissionTime", [""])[0][:32]
            found = _patient_of(
                _external(package, codes.SUBMISSION_SET_PATIENT_ID), problems,
                "lot de soumission", "submission set",
            )  # fmt: skip
            if found is not None:
                patients.add(found)
        for entry in root.iter(rim("ExtrinsicObject")):
            documents.append(_read_document(entry, entries, directory, patients))
    if not documents:
        problems.append(
            ("aucun document décrit dans METADATA.XML.", "no document described in METADATA.XML.")
        )
    if len(patients) > 1:
        problems.append(
            (
                "le paquet concerne plusieurs patients (un seul autorisé par message MSSanté).",
                "the package concerns several patients (only one allowed per MSSanté message).",
            )
        )
    contents = {d.path: entries[d.path] for d in documents if d.path}
    return ReadPackage(
        patient=next(iter(patients)) if len(patients) == 1 else None,
        submission_title=submission_title,
        submission_time=submission_time,
        documents=tuple(documents),
        problems=tuple(problems),
        contents=contents,
    )


def _read_document(
    entry: Element, entries: dict[str, bytes], directory: str, patients: set[PatientId]
) -> ReadDocument:
    problems: list[Problem] = []
    slots = _slots(entry)
    uri = (slots.get("URI") or [""])[0]
    path = _find_entry(entries, directory, uri)
    declared_size = (slots.get("size") or [""])[0]
    declared_hash = (slots.get("hash") or [""])[0].lower()[:64]
    size: int | None = (
        int(declared_size) if declared_size.isdigit() and len(declared_size) < 12 else None
    )
    mime_type = entry.get("mimeType", "")[:100]
    cda_code = ""
    found = _patient_of(
        _external(entry, codes.DOCUMENT_PATIENT_ID), problems, "document", "document"
    )
    if found is not None:
        patients.add(found)
    if path is None:
        problems.append(
            (
                f"fichier du document absent de l'archive ({uri[:80]!r}).",
                f"document file missing from the archive ({uri[:80]!r}).",
            )
        )
    else:
        content = entries[path]
        if size is None or size != len(content):
            problems.append(
                (
                    f"taille différente de celle annoncée ({len(content)} octets, "
                    f"annoncé {declared_size[:20] or '—'}).",
                    f"size differs from the declared one ({len(content)} bytes, "
                    f"declared {declared_size[:20] or '—'}).",
                )
            )
        if not declared_hash or hashlib.sha1(content).hexdigest() != declared_hash:  # noqa: S324 - XDS hash
            problems.append(
                (
                    "empreinte SHA-1 différente de celle annoncée : document altéré ou incomplet.",
                    "SHA-1 hash differs from the declared one: document altered or incomplete.",
                )
            )
        if mime_type == MIME_CDA:
            try:
                header = cda_header(content)
            except InvalidInput as exc:
                problems.append((exc.fr, exc.en))
            else:
                cda_code = header.code
                if found is not None and header.patients and found not in header.patients:
                    problems.append(
                        (
                            "le document CDA concerne un autre patient que ses métadonnées.",
                            "the CDA document concerns another patient than its metadata.",
                        )
                    )
        elif mime_type == MIME_PDF and not content.startswith(b"%PDF-"):
            problems.append(
                ("le fichier annoncé PDF n'en est pas un.", "the file declared as PDF is not one.")
            )
    return ReadDocument(
        path=path or "",
        title=_localized(entry),
        mime_type=mime_type,
        size=size,
        hash=declared_hash,
        creation_time=(slots.get("creationTime") or [""])[0][:32],
        type_code=_code(entry, codes.DOCUMENT_TYPE_CODE),
        class_code=_code(entry, codes.DOCUMENT_CLASS_CODE),
        format_code=_code(entry, codes.DOCUMENT_FORMAT_CODE),
        author=_author_text(entry, codes.DOCUMENT_AUTHOR),
        unique_id=_external(entry, codes.DOCUMENT_UNIQUE_ID),
        cda_code=cda_code,
        problems=tuple(problems),
    )


# ---------------------------------------------------------------------------------------------
# Packages attached to a message
# ---------------------------------------------------------------------------------------------

#: The attachment's name in an XDM e-mail (ITI TF-1 §16.1.2: the ZIP of the media content).
ATTACHMENT_NAME = "IHE_XDM.ZIP"
ZIP_TYPES = frozenset(
    ("application/zip", "application/x-zip-compressed", "application/octet-stream")
)


def is_xdm_attachment(filename: str, content_type: str) -> bool:
    """Whether an attachment is an XDM package: named ``IHE_XDM.ZIP`` (any case), sent as a
    ZIP or as bytes."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].strip().upper()
    return name == ATTACHMENT_NAME and content_type.lower() in ZIP_TYPES


@dataclass(frozen=True)
class MessagePackage:
    """An XDM attachment of a message: its package (documents' bytes left out), or why it
    could not be read (French, English). The message itself is never changed."""

    index: int  # the attachment's index (domain.mail_display), the reference in URLs
    filename: str
    package: ReadPackage | None
    error: Problem | None = None


def packages_in_message(raw: bytes) -> tuple[MessagePackage, ...]:
    """Every XDM package attached to ``raw``, read and checked (CPU work: the cpu pool)."""
    shown = mail_display.display(raw)
    found: list[MessagePackage] = []
    for attachment in shown.attachments:
        if not is_xdm_attachment(attachment.filename, attachment.content_type):
            continue
        part = mail_display.part_bytes(raw, attachment.index)
        if part is None:
            continue
        try:
            package = read_package(part[1])
        except XdmError as exc:
            found.append(
                MessagePackage(attachment.index, attachment.filename, None, (exc.fr, exc.en))
            )
        else:
            found.append(
                MessagePackage(attachment.index, attachment.filename, replace(package, contents={}))
            )
    return tuple(found)


def package_document(raw: bytes, index: int, number: int) -> tuple[ReadDocument, bytes] | None:
    """The ``number``-th document (from 1) of the XDM package attached at ``index``, with its
    bytes, or None (no such attachment, package unreadable, document missing)."""
    shown = mail_display.display(raw)
    attachment = next((a for a in shown.attachments if a.index == index), None)
    if attachment is None or not is_xdm_attachment(attachment.filename, attachment.content_type):
        return None
    part = mail_display.part_bytes(raw, index)
    if part is None:
        return None
    try:
        package = read_package(part[1])
    except XdmError:
        return None
    if not 1 <= number <= len(package.documents):
        return None
    document = package.documents[number - 1]
    content = package.contents.get(document.path) if document.path else None
    return (document, content) if content is not None else None
