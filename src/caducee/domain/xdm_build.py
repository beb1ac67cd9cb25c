"""Writing an ``IHE_XDM.ZIP`` (ITI TF-1 §16; metadata ITI TF-3 §4.2): see
:mod:`caducee.domain.xdm`."""

from __future__ import annotations

import hashlib
import html
import io
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime
from xml.etree import ElementTree as ET
from xml.etree.ElementTree import Element

from caducee.domain import xdm_codes as codes
from caducee.domain.identifiers import nir_key_valid
from caducee.domain.xdm import (
    EXTENSIONS,
    MAX_DOCUMENTS,
    MAX_ENTRY_BYTES,
    MAX_TEXT,
    METADATA,
    MIME_CDA,
    MIME_PDF,
    SUBSET,
    XdmAuthor,
    XdmDocument,
    XdmPatient,
    cda_header,
    document_file_name,
    hl7_escape,
    new_oid,
    rim,
)
from caducee.domain.xdm_codes import Code, DocumentKind
from caducee.errors import InvalidInput

# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------


def _dtm(moment: datetime) -> str:
    """HL7 DTM in UTC (ITI TF-3 §4.2.3.1.5): YYYYMMDDHHMMSS."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S")


def _slot(parent: Element, name: str, *values: str) -> None:
    slot = ET.SubElement(parent, rim("Slot"), name=name)
    value_list = ET.SubElement(slot, rim("ValueList"))
    for value in values:
        ET.SubElement(value_list, rim("Value")).text = value


def _name(parent: Element, text: str) -> None:
    name = ET.SubElement(parent, rim("Name"))
    ET.SubElement(name, rim("LocalizedString"), value=text)


def _classification_node(
    parent: Element, scheme: str, target: str, ident: str, representation: str
) -> Element:
    return ET.SubElement(
        parent,
        rim("Classification"),
        id=ident,
        classificationScheme=scheme,
        classifiedObject=target,
        nodeRepresentation=representation,
    )


def _classification(parent: Element, scheme: str, target: str, ident: str, code: Code) -> None:
    node = _classification_node(parent, scheme, target, ident, code.code)
    _slot(node, "codingScheme", code.scheme)
    _name(node, code.display)


def _external_id(
    parent: Element, scheme: str, target: str, ident: str, value: str, label: str
) -> None:
    node = ET.SubElement(
        parent,
        rim("ExternalIdentifier"),
        id=ident,
        identificationScheme=scheme,
        registryObject=target,
        value=value,
    )
    _name(node, label)


def _author(parent: Element, scheme: str, target: str, ident: str, author: XdmAuthor) -> None:
    node = _classification_node(parent, scheme, target, ident, "")
    _slot(node, "authorPerson", author.xcn)
    if author.institution:
        _slot(node, "authorInstitution", hl7_escape(author.institution[:MAX_TEXT]))


def _check_document(document: XdmDocument, patient: XdmPatient) -> None:
    if document.mime_type not in EXTENSIONS:
        raise InvalidInput(
            f"Type de document non pris en charge : {document.mime_type} (CDA R2 ou PDF).",
            f"Unsupported document type: {document.mime_type} (CDA R2 or PDF).",
        )
    if not document.content:
        raise InvalidInput("Document vide.", "Empty document.")
    if len(document.content) > MAX_ENTRY_BYTES:
        raise InvalidInput(
            f"Document trop volumineux (limite {MAX_ENTRY_BYTES // 1024 // 1024} Mo).",
            f"Document too large (limit {MAX_ENTRY_BYTES // 1024 // 1024} MB).",
        )
    if document.mime_type == MIME_PDF and not document.content.startswith(b"%PDF-"):
        raise InvalidInput("Ce fichier n'est pas un PDF.", "This file is not a PDF.")
    if document.mime_type == MIME_CDA:
        header = cda_header(document.content)
        if header.patients and patient.id not in header.patients:
            raise InvalidInput(
                "Le document CDA concerne un autre patient (INS différent) : un message XDM "
                "ne concerne qu'un patient.",
                "The CDA document is about another patient (different INS): an XDM message "
                "concerns one patient only.",
            )


def metadata_xml(
    patient: XdmPatient,
    author: XdmAuthor,
    documents: Sequence[XdmDocument],
    *,
    submission_time: datetime,
    source_oid: str,
    unique_ids: Sequence[str],
) -> bytes:
    """``METADATA.XML``: one SubmissionSet, one DocumentEntry per document and the HasMember
    associations (ITI TF-3 §4.2.1, §4.2.2; ebRIM 3.0 ``lcm:SubmitObjectsRequest``)."""
    ET.register_namespace("lcm", codes.NS_LCM)
    ET.register_namespace("rim", codes.NS_RIM)
    root = Element(f"{{{codes.NS_LCM}}}SubmitObjectsRequest")
    objects = ET.SubElement(root, rim("RegistryObjectList"))
    birth = patient.birth_date.strftime("%Y%m%d")
    source_patient_info = (
        f"PID-3|{patient.id.cx}",
        f"PID-5|{hl7_escape(patient.last_name.upper())}^{hl7_escape(patient.first_name)}^^^^^L",
        f"PID-7|{birth}",
        f"PID-8|{patient.sex if patient.sex in ('M', 'F') else 'U'}",
    )
    entry_ids: list[str] = []
    for index, document in enumerate(documents, start=1):
        entry_id = f"Document{index:02d}"
        entry_ids.append(entry_id)
        entry = ET.SubElement(
            objects,
            rim("ExtrinsicObject"),
            id=entry_id,
            mimeType=document.mime_type,
            objectType=codes.DOCUMENT_ENTRY,
        )
        _slot(entry, "creationTime", _dtm(document.creation_time))
        _slot(entry, "hash", hashlib.sha1(document.content).hexdigest())  # noqa: S324 - XDS §4.2.3.2.18
        _slot(entry, "languageCode", "fr-FR")
        _slot(entry, "size", str(len(document.content)))
        _slot(entry, "sourcePatientId", patient.id.cx)
        _slot(entry, "sourcePatientInfo", *source_patient_info)
        _slot(entry, "URI", document_file_name(index, document.mime_type))
        _name(entry, document.title[:MAX_TEXT] or document.kind.label_fr)
        _author(entry, codes.DOCUMENT_AUTHOR, entry_id, f"{entry_id}-author", author)
        for suffix, scheme, code in (
            ("class", codes.DOCUMENT_CLASS_CODE, document.kind.class_code),
            ("confidentiality", codes.DOCUMENT_CONFIDENTIALITY, codes.CONFIDENTIALITY_NORMAL),
            ("format", codes.DOCUMENT_FORMAT_CODE, document.format_code),
            ("facility", codes.DOCUMENT_FACILITY_TYPE, codes.FACILITY_PRACTICE),
            ("practice", codes.DOCUMENT_PRACTICE_SETTING, codes.PRACTICE_SETTING_AMBULATORY),
            ("type", codes.DOCUMENT_TYPE_CODE, document.kind.type_code),
        ):
            _classification(entry, scheme, entry_id, f"{entry_id}-{suffix}", code)
        _external_id(
            entry, codes.DOCUMENT_PATIENT_ID, entry_id, f"{entry_id}-patient",
            patient.id.cx, "XDSDocumentEntry.patientId",
        )  # fmt: skip
        _external_id(
            entry, codes.DOCUMENT_UNIQUE_ID, entry_id, f"{entry_id}-uid",
            unique_ids[index], "XDSDocumentEntry.uniqueId",
        )  # fmt: skip

    package = ET.SubElement(
        objects, rim("RegistryPackage"), id="SubmissionSet01", objectType=codes.REGISTRY_PACKAGE
    )
    _slot(package, "submissionTime", _dtm(submission_time))
    first = documents[0]
    _name(package, first.title[:MAX_TEXT] or first.kind.label_fr)
    _author(
        package, codes.SUBMISSION_SET_AUTHOR, "SubmissionSet01", "SubmissionSet01-author", author
    )
    _classification(
        package, codes.SUBMISSION_SET_CONTENT_TYPE, "SubmissionSet01",
        "SubmissionSet01-content", first.kind.type_code,
    )  # fmt: skip
    _external_id(
        package, codes.SUBMISSION_SET_UNIQUE_ID, "SubmissionSet01", "SubmissionSet01-uid",
        unique_ids[0], "XDSSubmissionSet.uniqueId",
    )  # fmt: skip
    _external_id(
        package, codes.SUBMISSION_SET_SOURCE_ID, "SubmissionSet01", "SubmissionSet01-source",
        source_oid, "XDSSubmissionSet.sourceId",
    )  # fmt: skip
    _external_id(
        package, codes.SUBMISSION_SET_PATIENT_ID, "SubmissionSet01", "SubmissionSet01-patient",
        patient.id.cx, "XDSSubmissionSet.patientId",
    )  # fmt: skip
    ET.SubElement(
        objects,
        rim("Classification"),
        id="SubmissionSet01-node",
        classifiedObject="SubmissionSet01",
        classificationNode=codes.SUBMISSION_SET_NODE,
    )
    for entry_id in entry_ids:
        association = ET.SubElement(
            objects,
            rim("Association"),
            id=f"{entry_id}-member",
            associationType=codes.HAS_MEMBER,
            sourceObject="SubmissionSet01",
            targetObject=entry_id,
        )
        _slot(association, "SubmissionSetStatus", "Original")
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def _readme(author: XdmAuthor, software: str) -> str:
    return (
        "IHE XDM - Distributed Document Media\r\n"
        f"Auteur / Author: {author.first_name} {author.last_name.upper()} (RPPS {author.rpps})\r\n"
        f"Structure / Institution: {author.institution or '-'}\r\n"
        f"Logiciel / Software: {software}\r\n"
        "Contenu / Content: INDEX.HTM, IHE_XDM/SUBSET01/METADATA.XML et les documents.\r\n"
    )


def _index(patient: XdmPatient, documents: Sequence[XdmDocument]) -> str:
    items = "".join(
        f'<li><a href="{SUBSET}/{document_file_name(i, d.mime_type)}">'
        f"{html.escape(d.title or d.kind.label_fr)}</a> ({html.escape(d.kind.label_fr)})</li>"
        for i, d in enumerate(documents, start=1)
    )
    who = html.escape(f"{patient.last_name.upper()} {patient.first_name}")
    return (
        '<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>IHE XDM</title>'
        f"</head><body><h1>Documents de {who}</h1><ul>{items}</ul></body></html>"
    )


def build_package(
    patient: XdmPatient,
    author: XdmAuthor,
    documents: Sequence[XdmDocument],
    *,
    submission_time: datetime,
    source_oid: str,
    unique_ids: Sequence[str] | None = None,
    software: str = "Caducée",
) -> bytes:
    """``IHE_XDM.ZIP`` for ``patient``'s ``documents``. ``unique_ids``: the submission set's
    then each document's (new ones by default). :class:`InvalidInput` when a document is not
    what it claims or concerns another patient."""
    if not 1 <= len(documents) <= MAX_DOCUMENTS:
        raise InvalidInput(
            f"Un paquet XDM contient de 1 à {MAX_DOCUMENTS} documents.",
            f"An XDM package holds 1 to {MAX_DOCUMENTS} documents.",
        )
    if not nir_key_valid(patient.id.ins):
        raise InvalidInput(
            "INS du patient mal formé : la clé de contrôle ne correspond pas.",
            "Malformed patient INS: the check key does not match.",
        )
    for document in documents:
        _check_document(document, patient)
    ids = (
        list(unique_ids)
        if unique_ids is not None
        else [new_oid() for _ in range(len(documents) + 1)]
    )
    if len(ids) != len(documents) + 1:
        raise ValueError("unique_ids: the submission set's, then one per document")
    metadata = metadata_xml(
        patient, author, documents, submission_time=submission_time, source_oid=source_oid,
        unique_ids=ids,
    )  # fmt: skip
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.TXT", _readme(author, software))
        archive.writestr("INDEX.HTM", _index(patient, documents))
        archive.writestr(METADATA, metadata)
        for index, document in enumerate(documents, start=1):
            archive.writestr(
                f"{SUBSET}/{document_file_name(index, document.mime_type)}", document.content
            )
    return buffer.getvalue()


def document_of(
    filename: str, content: bytes, kind: DocumentKind, title: str, created: datetime
) -> XdmDocument:
    """A document a sender attached: a CDA R2 document (XML whose root is ClinicalDocument)
    or a PDF, recognised by its bytes, not by its name."""
    if content.startswith(b"%PDF-"):
        mime_type = MIME_PDF
    elif content.lstrip()[:1] == b"<":
        cda_header(content)  # InvalidInput unless a CDA R2 document
        mime_type = MIME_CDA
    else:
        raise InvalidInput(
            f"« {filename[:80]} » : un document XDM est un document CDA R2 (XML) ou un PDF.",
            f"'{filename[:80]}': an XDM document is a CDA R2 (XML) document or a PDF.",
        )
    return XdmDocument(content, mime_type, title or kind.label_fr, kind, created)


def package_for_mail(
    patient: XdmPatient,
    author: XdmAuthor,
    files: Sequence[tuple[str, bytes]],
    kind: DocumentKind,
    title: str,
    submission_time: datetime,
    source_oid: str,
) -> tuple[bytes, tuple[str, ...]]:
    """``IHE_XDM.ZIP`` for the files a sender attached (name, bytes) and the codes of its CDA
    documents, the values of ``X-MSS-CODECDA`` (Référentiel #2 ECO.2.4.1). One call for the
    cpu pool."""
    documents = [
        document_of(name, content, kind, title if len(files) == 1 else "", submission_time)
        for name, content in files
    ]
    package = build_package(
        patient, author, documents, submission_time=submission_time, source_oid=source_oid
    )
    cda_codes = tuple(
        dict.fromkeys(cda_header(d.content).code for d in documents if d.mime_type == MIME_CDA)
    )
    return package, tuple(c for c in cda_codes if c)
