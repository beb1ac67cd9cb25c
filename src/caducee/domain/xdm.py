"""IHE XDM packages (ITI TF-1 §16, ITI TF-3 §4.2): ``IHE_XDM.ZIP`` built and read safely.

A package holds, for ONE patient (the MSSanté rule), a submission set and one or more
documents (CDA R2 and/or PDF)::

    README.TXT                          who made it, with what (ITI TF-1 §16.1.1)
    INDEX.HTM                           a page listing the documents, for a human
    IHE_XDM/SUBSET01/METADATA.XML       lcm:SubmitObjectsRequest (ebRIM 3.0): the submission
                                        set, one DocumentEntry per document, HasMember links
    IHE_XDM/SUBSET01/DOC0001.XML …      the documents, ISO-9660 8.3 upper-case names

:func:`caducee.domain.xdm_build.build_package` writes one;
:func:`caducee.domain.xdm_read.read_package` reads one from untrusted bytes: the ZIP
is bounded (entries, sizes read — never the sizes declared —, compression ratio), entry names
are checked (no absolute path, no ``..``, no backslash, no control character, no duplicate), XML
is parsed without DTDs or entities (defusedxml), and each document's size and SHA-1 hash are
checked against its metadata (ITI TF-3 §4.2.3.2.18, .19). A package that cannot be read at all
raises :class:`XdmError`; what is wrong with one document is listed with that document.

This module holds what both sides share: identities (INS, RPPS), limits, names, the CDA
header. Pure functions, no I/O: nodes run them in the cpu pool.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET

from caducee.domain import xdm_codes as codes
from caducee.domain.identifiers import nir_key_valid
from caducee.domain.xdm_codes import Code, DocumentKind
from caducee.errors import InvalidInput

PACKAGE_NAME = "IHE_XDM.ZIP"
SUBSET = "IHE_XDM/SUBSET01"
METADATA = f"{SUBSET}/METADATA.XML"
#: The subject prefix of an XDM e-mail (ITI TF-1 §16.1, "XDM/1.0/DDM"), then ``+`` and a label.
SUBJECT_PREFIX = "XDM/1.0/DDM"

MIME_CDA = "text/xml"
MIME_PDF = "application/pdf"
EXTENSIONS = {MIME_CDA: "XML", MIME_PDF: "PDF"}

# --- limits (every one explicit) ---
MAX_DOCUMENTS = 20
MAX_PACKAGE_BYTES = 50 * 1024 * 1024  # the ZIP itself
MAX_ENTRIES = 200
MAX_ENTRY_BYTES = 30 * 1024 * 1024  # one entry, uncompressed
MAX_TOTAL_BYTES = 100 * 1024 * 1024  # every entry, uncompressed
MAX_METADATA_BYTES = 2 * 1024 * 1024
#: An entry larger than this whose compression ratio exceeds MAX_RATIO is a bomb.
RATIO_FLOOR_BYTES = 1024 * 1024
MAX_RATIO = 200
MAX_TEXT = 500  # titles and names kept from metadata

Problem = tuple[str, str]  # (French, English)


class XdmError(InvalidInput):
    """The package cannot be read (not a ZIP, hostile, no metadata): nothing of it is used."""


# ---------------------------------------------------------------------------------------------
# Identities
# ---------------------------------------------------------------------------------------------


def hl7_escape(value: str) -> str:
    """HL7 v2 escaping of a component (v2.5 §2.7): the delimiters ``|^~\\&`` become escapes."""
    out = value.replace("\\", "\\E\\")
    for char, escape in (("|", "\\F\\"), ("^", "\\S\\"), ("~", "\\R\\"), ("&", "\\T\\")):
        out = out.replace(char, escape)
    return "".join(c for c in out if c >= " ")


def hl7_unescape(value: str) -> str:
    table = {"\\F\\": "|", "\\S\\": "^", "\\R\\": "~", "\\T\\": "&", "\\E\\": "\\"}
    return re.sub(r"\\[FSRTE]\\", lambda m: table[m.group()], value)


@dataclass(frozen=True)
class PatientId:
    """An INS (NIR form, 15 characters) and whether it is a test INS (OID …4.10)."""

    ins: str
    test: bool = False

    @property
    def oid(self) -> str:
        return codes.INS_TEST_OID if self.test else codes.INS_OID

    @property
    def cx(self) -> str:
        """HL7 v2 CX as XDS wants it (ITI TF-3 §4.2.3.1.7): ``INS^^^&OID&ISO^NH``."""
        return f"{self.ins}^^^&{self.oid}&ISO^NH"

    @classmethod
    def parse_cx(cls, value: str) -> PatientId:
        """The INS of a CX value; :class:`InvalidInput` unless its authority is the INS's and
        the number is a well-formed INS (15 characters, key checked)."""
        match = re.fullmatch(r"([0-9AB]{15})\^\^\^&([0-9.]+)&ISO(?:\^NH)?", value.strip())
        if match is None or match.group(2) not in codes.INS_OIDS:
            raise InvalidInput(
                f"Identifiant patient non reconnu : {value[:80]!r} (INS et OID attendus).",
                f"Unrecognised patient identifier: {value[:80]!r} (INS and OID expected).",
            )
        if not nir_key_valid(match.group(1)):
            raise InvalidInput(
                "INS mal formé : la clé de contrôle ne correspond pas.",
                "Malformed INS: the check key does not match.",
            )
        return cls(match.group(1), test=match.group(2) == codes.INS_TEST_OID)


@dataclass(frozen=True)
class XdmPatient:
    """The one patient of a package."""

    id: PatientId
    last_name: str
    first_name: str
    birth_date: date
    sex: str = "U"  # HL7 v2 PID-8: M, F or U


@dataclass(frozen=True)
class XdmAuthor:
    """The practitioner who sends the documents (RPPS) and the practice's name."""

    rpps: str
    last_name: str
    first_name: str
    institution: str = ""

    @property
    def xcn(self) -> str:
        """HL7 v2 XCN (ITI TF-3 §4.2.3.1.4): ``8<RPPS>^NOM^Prénom^^^^^^&OID&ISO^D^^^IDNPS``."""
        return (
            f"8{self.rpps}^{hl7_escape(self.last_name.upper())}^{hl7_escape(self.first_name)}"
            f"^^^^^^&{codes.PROFESSIONAL_ID_OID}&ISO^D^^^IDNPS"
        )


@dataclass(frozen=True)
class XdmDocument:
    """A document to put in a package."""

    content: bytes
    mime_type: str  # MIME_CDA or MIME_PDF
    title: str
    kind: DocumentKind
    creation_time: datetime
    format_code: Code = codes.FORMAT_MIME_SUFFICIENT


def new_oid() -> str:
    """A unique OID from a random UUID (ISO/IEC 9834-8, arc 2.25)."""
    return f"2.25.{uuid.uuid4().int}"


def oid_for(name: str) -> str:
    """A stable OID for ``name`` (e.g. a practice's domain): the source id of its packages."""
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_DNS, name).int}"


# ---------------------------------------------------------------------------------------------
# CDA header (what the message needs from a CDA R2 document)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CdaHeader:
    code: str  # ClinicalDocument/code/@code: X-MSS-CODECDA (Référentiel #2 ECO.2.4.1)
    code_display: str
    title: str
    patients: tuple[PatientId, ...]  # recordTarget ids with an INS authority


def safe_xml(data: bytes, what_fr: str, what_en: str) -> Element:
    try:
        return SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except Exception as exc:  # DTDForbidden, EntitiesForbidden, ParseError, …
        raise InvalidInput(
            f"{what_fr} illisible ({type(exc).__name__}) : XML mal formé, ou DTD / entités "
            "refusées.",
            f"{what_en} unreadable ({type(exc).__name__}): malformed XML, or DTD / entities "
            "refused.",
        ) from None


def cda_header(content: bytes) -> CdaHeader:
    """What a CDA R2 document says of itself (HL7 CDA R2 §4.2.1): its code, title and
    patient. :class:`InvalidInput` when it is not a CDA R2 document."""
    root = safe_xml(content, "Document CDA", "CDA document")
    ns = {"h": codes.NS_CDA}
    if root.tag != f"{{{codes.NS_CDA}}}ClinicalDocument":
        raise InvalidInput(
            "Ce document XML n'est pas un document CDA R2 (ClinicalDocument attendu).",
            "This XML document is not a CDA R2 document (ClinicalDocument expected).",
        )
    code = root.find("h:code", ns)
    title = root.find("h:title", ns)
    patients: list[PatientId] = []
    for ident in root.iterfind("h:recordTarget/h:patientRole/h:id", ns):
        root_oid, extension = ident.get("root", ""), ident.get("extension", "")
        if root_oid in codes.INS_OIDS and nir_key_valid(extension):
            patients.append(PatientId(extension, test=root_oid == codes.INS_TEST_OID))
    return CdaHeader(
        code=(code.get("code", "") if code is not None else "")[:64],
        code_display=(code.get("displayName", "") if code is not None else "")[:MAX_TEXT],
        title=((title.text or "") if title is not None else "").strip()[:MAX_TEXT],
        patients=tuple(patients),
    )


def rim(tag: str) -> str:
    return f"{{{codes.NS_RIM}}}{tag}"


def document_file_name(index: int, mime_type: str) -> str:
    """ISO-9660 level 1 (8.3, upper case) name of the ``index``-th document (ITI TF-1 §16)."""
    return f"DOC{index:04d}.{EXTENSIONS[mime_type]}"


def subject(label: str, patient: XdmPatient) -> str:
    """The MSSanté subject of an XDM message: ``XDM/1.0/DDM+<libellé> <NOM> <prénom> <date de
    naissance>`` (date as JJ/MM/AAAA)."""
    label = " ".join(label.split())[:120]
    return (
        f"{SUBJECT_PREFIX}+{label} {patient.last_name.upper()} {patient.first_name} "
        f"{patient.birth_date.strftime('%d/%m/%Y')}"
    )
