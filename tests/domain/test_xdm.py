"""IHE XDM packages: built by Caducée, read back by Caducée, METADATA.XML checked against the
structure of ITI TF-3 §4.2 (submission set, document entries, associations), and hostile
packages (bombs, traversal, entities, missing files, wrong hashes) refused or flagged."""

from __future__ import annotations

import hashlib
import io
import re
import warnings
import zipfile
from datetime import UTC, date, datetime
from xml.etree import ElementTree as ET

import pytest
import pyzipper

from caducee.domain import xdm, xdm_build, xdm_codes, xdm_read
from caducee.domain.xdm import PatientId, XdmAuthor, XdmDocument, XdmError, XdmPatient
from caducee.errors import InvalidInput

RIM = f"{{{xdm_codes.NS_RIM}}}"


def ins_with_key(thirteen: str) -> str:
    return f"{thirteen}{97 - int(thirteen) % 97:02d}"


INS = ins_with_key("2750275123456")
OTHER_INS = ins_with_key("1820569123789")
PATIENT = XdmPatient(PatientId(INS), "Martin", "Élise", date(1975, 2, 14), "F")
AUTHOR = XdmAuthor("10003456789", "Dupont", "Jean", "Cabinet du Parc")
WHEN = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


SYNTHESE = xdm_codes.DOCUMENT_KINDS["synthese"]


def cda(ins: str = INS, root: str = xdm_codes.INS_OID, code: str = "11488-4") -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3">
  <realmCode code="FR"/>
  <code code="{code}" codeSystem="2.16.840.1.113883.6.1" displayName="CR de consultation"/>
  <title>Compte rendu de consultation</title>
  <recordTarget><patientRole><id root="{root}" extension="{ins}"/></patientRole></recordTarget>
</ClinicalDocument>""".encode()


def documents() -> list[XdmDocument]:
    kind = xdm_codes.DOCUMENT_KINDS["cr-consultation"]
    return [
        XdmDocument(cda(), xdm.MIME_CDA, "CR consultation cardiologie", kind, WHEN),
        XdmDocument(PDF, xdm.MIME_PDF, "Ordonnance", xdm_codes.DOCUMENT_KINDS["ordonnance"], WHEN),
    ]


def build(patient: XdmPatient = PATIENT, docs: list[XdmDocument] | None = None) -> bytes:
    docs = docs if docs is not None else documents()
    return xdm_build.build_package(
        patient,
        AUTHOR,
        docs,
        submission_time=WHEN,
        source_oid=xdm.oid_for("cabinet-du-parc.test"),
        unique_ids=[f"2.25.{i}" for i in range(1, len(docs) + 2)],
    )


def zip_of(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names on purpose
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, content in entries.items():
                archive.writestr(name, content)
    return buffer.getvalue()


def entries_of(package: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


# --- building: layout and METADATA.XML -------------------------------------------------------


def test_package_layout_uses_iso9660_names() -> None:
    names = list(entries_of(build()))
    assert names == [
        "README.TXT",
        "INDEX.HTM",
        "IHE_XDM/SUBSET01/METADATA.XML",
        "IHE_XDM/SUBSET01/DOC0001.XML",
        "IHE_XDM/SUBSET01/DOC0002.PDF",
    ]
    for name in names:
        for part in name.split("/"):
            assert re.fullmatch(r"[A-Z0-9_]{1,8}(\.[A-Z0-9]{1,3})?", part), part
    readme = entries_of(build())["README.TXT"].decode()
    assert "RPPS 10003456789" in readme and "Caducée" in readme


def test_metadata_has_submission_set_entries_and_associations() -> None:
    metadata = ET.fromstring(entries_of(build())["IHE_XDM/SUBSET01/METADATA.XML"])
    assert metadata.tag == f"{{{xdm_codes.NS_LCM}}}SubmitObjectsRequest"
    objects = metadata.find(f"{RIM}RegistryObjectList")
    assert objects is not None

    def slot(element: ET.Element, name: str) -> list[str]:
        for s in element.findall(f"{RIM}Slot"):
            if s.get("name") == name:
                return [v.text or "" for v in s.iter(f"{RIM}Value")]
        return []

    def external(element: ET.Element, scheme: str) -> str:
        found = [e.get("value") for e in element.findall(f"{RIM}ExternalIdentifier")
                 if e.get("identificationScheme") == scheme]  # fmt: skip
        assert len(found) == 1, scheme
        return str(found[0])

    def classification(element: ET.Element, scheme: str) -> ET.Element:
        found = [c for c in element.findall(f"{RIM}Classification")
                 if c.get("classificationScheme") == scheme]  # fmt: skip
        assert len(found) == 1, scheme
        return found[0]

    cx = f"{INS}^^^&1.2.250.1.213.1.4.8&ISO^NH"
    (package,) = objects.findall(f"{RIM}RegistryPackage")
    assert slot(package, "submissionTime") == ["20261207093000"]
    assert external(package, xdm_codes.SUBMISSION_SET_PATIENT_ID) == cx
    assert external(package, xdm_codes.SUBMISSION_SET_UNIQUE_ID) == "2.25.1"
    assert external(package, xdm_codes.SUBMISSION_SET_SOURCE_ID).startswith("2.25.")
    author = slot(classification(package, xdm_codes.SUBMISSION_SET_AUTHOR), "authorPerson")
    assert author == ["810003456789^DUPONT^Jean^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"]
    nodes = [c for c in objects.findall(f"{RIM}Classification")
             if c.get("classificationNode") == xdm_codes.SUBMISSION_SET_NODE]  # fmt: skip
    assert [n.get("classifiedObject") for n in nodes] == [package.get("id")]

    entries = objects.findall(f"{RIM}ExtrinsicObject")
    assert [e.get("mimeType") for e in entries] == ["text/xml", "application/pdf"]
    contents = [cda(), PDF]
    for entry, content, uid, uri in zip(
        entries, contents, ["2.25.2", "2.25.3"], ["DOC0001.XML", "DOC0002.PDF"], strict=True
    ):
        assert entry.get("objectType") == xdm_codes.DOCUMENT_ENTRY
        assert external(entry, xdm_codes.DOCUMENT_PATIENT_ID) == cx
        assert external(entry, xdm_codes.DOCUMENT_UNIQUE_ID) == uid
        assert slot(entry, "hash") == [hashlib.sha1(content).hexdigest()]
        assert slot(entry, "size") == [str(len(content))]
        assert slot(entry, "creationTime") == ["20261207093000"]
        assert slot(entry, "URI") == [uri]
        assert "PID-7|19750214" in slot(entry, "sourcePatientInfo")
        for scheme in (
            xdm_codes.DOCUMENT_CLASS_CODE,
            xdm_codes.DOCUMENT_TYPE_CODE,
            xdm_codes.DOCUMENT_FORMAT_CODE,
            xdm_codes.DOCUMENT_CONFIDENTIALITY,
            xdm_codes.DOCUMENT_FACILITY_TYPE,
            xdm_codes.DOCUMENT_PRACTICE_SETTING,
        ):
            node = classification(entry, scheme)
            assert node.get("nodeRepresentation") and slot(node, "codingScheme")
        assert classification(entry, xdm_codes.DOCUMENT_TYPE_CODE).get("nodeRepresentation") in (
            "11488-4",
            "57833-6",
        )
        assert (
            "810003456789"
            in slot(classification(entry, xdm_codes.DOCUMENT_AUTHOR), "authorPerson")[0]
        )
    members = [a for a in objects.findall(f"{RIM}Association")
               if a.get("associationType") == xdm_codes.HAS_MEMBER]  # fmt: skip
    assert [(a.get("sourceObject"), a.get("targetObject")) for a in members] == [
        (package.get("id"), e.get("id")) for e in entries
    ]
    assert all(slot(a, "SubmissionSetStatus") == ["Original"] for a in members)


def test_test_ins_uses_its_own_oid() -> None:
    patient = XdmPatient(PatientId(INS, test=True), "Martin", "Élise", date(1975, 2, 14))
    docs = [XdmDocument(cda(root=xdm_codes.INS_TEST_OID), xdm.MIME_CDA, "CR",
                        xdm_codes.DOCUMENT_KINDS["cr-consultation"], WHEN)]  # fmt: skip
    metadata = entries_of(build(patient, docs))["IHE_XDM/SUBSET01/METADATA.XML"].decode()
    assert f"{INS}^^^&amp;1.2.250.1.213.1.4.10&amp;ISO^NH" in metadata
    assert "1.2.250.1.213.1.4.8&" not in metadata
    assert xdm_read.read_package(build(patient, docs)).patient == PatientId(INS, test=True)


def test_subject_follows_the_mssante_rule() -> None:
    assert xdm.subject("Compte rendu de consultation", PATIENT) == (
        "XDM/1.0/DDM+Compte rendu de consultation MARTIN Élise 14/02/1975"
    )


def test_names_with_hl7_delimiters_are_escaped() -> None:
    author = XdmAuthor("10003456789", "D'Alès^Ripoll", "Jean&Paul")
    assert author.xcn.startswith("810003456789^D'ALÈS\\S\\RIPOLL^Jean\\T\\Paul^")
    package = xdm_build.build_package(
        PATIENT, author, documents(), submission_time=WHEN, source_oid="2.25.9"
    )
    read = xdm_read.read_package(package)
    assert read.documents[0].author == "Jean&Paul D'ALÈS^RIPOLL (RPPS 10003456789)"


@pytest.mark.parametrize(
    ("docs", "needle"),
    [
        ([], "1 à 20"),
        ([XdmDocument(cda(OTHER_INS), xdm.MIME_CDA, "CR", SYNTHESE, WHEN)],
         "autre patient"),
        ([XdmDocument(b"not a pdf", xdm.MIME_PDF, "PDF", SYNTHESE, WHEN)],
         "pas un PDF"),
        ([XdmDocument(b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>", xdm.MIME_CDA, "X",
                      SYNTHESE, WHEN)], "DTD"),
        ([XdmDocument(b"<x/>", xdm.MIME_CDA, "X", SYNTHESE, WHEN)],
         "pas un document CDA"),
        ([XdmDocument(PDF, "image/png", "X", SYNTHESE, WHEN)],
         "non pris en charge"),
    ],
)  # fmt: skip
def test_builder_refuses_what_it_must(docs: list[XdmDocument], needle: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        build(docs=docs)
    assert needle in caught.value.fr


def test_builder_refuses_a_bad_ins_key() -> None:
    patient = XdmPatient(PatientId(INS[:13] + "00"), "Martin", "Élise", date(1975, 2, 14))
    with pytest.raises(InvalidInput, match="clé"):
        build(patient)


# --- reading ---------------------------------------------------------------------------------


def test_round_trip() -> None:
    read = xdm_read.read_package(build())
    assert read.valid, (read.problems, [d.problems for d in read.documents])
    assert read.patient == PatientId(INS)
    assert read.submission_time == "20261207093000"
    assert [d.title for d in read.documents] == ["CR consultation cardiologie", "Ordonnance"]
    assert [d.mime_type for d in read.documents] == ["text/xml", "application/pdf"]
    assert read.cda_codes == ("11488-4",)
    first = read.documents[0]
    assert first.type_code == xdm_codes.DOCUMENT_KINDS["cr-consultation"].type_code
    assert first.class_code is not None and first.class_code.code == "10"
    assert first.author == "Jean DUPONT (RPPS 10003456789)"
    assert first.unique_id == "2.25.2"
    assert read.contents[first.path] == cda()
    assert read.contents["IHE_XDM/SUBSET01/DOC0002.PDF"] == PDF


def test_tampered_document_is_flagged_not_used() -> None:
    entries = entries_of(build())
    entries["IHE_XDM/SUBSET01/DOC0002.PDF"] = PDF.replace(b"1.4", b"1.7")  # same size
    read = xdm_read.read_package(zip_of(entries))
    assert read.documents[0].valid
    problems = " ".join(fr for fr, _ in read.documents[1].problems)
    assert "SHA-1" in problems and not read.valid


def test_size_mismatch_and_missing_file_are_flagged() -> None:
    entries = entries_of(build())
    entries["IHE_XDM/SUBSET01/DOC0001.XML"] += b"\n<!-- more -->"
    del entries["IHE_XDM/SUBSET01/DOC0002.PDF"]
    read = xdm_read.read_package(zip_of(entries))
    first = " ".join(fr for fr, _ in read.documents[0].problems)
    second = " ".join(fr for fr, _ in read.documents[1].problems)
    assert "taille différente" in first and "absent de l'archive" in second
    assert read.documents[1].path == ""


def test_two_patients_in_one_package_are_flagged() -> None:
    entries = entries_of(build())
    other = f"{OTHER_INS}^^^&amp;1.2.250.1.213.1.4.8&amp;ISO^NH"
    metadata = entries["IHE_XDM/SUBSET01/METADATA.XML"].decode()
    # the second document's patientId only (its ExternalIdentifier id is Document02-patient)
    metadata = re.sub(
        r'(id="Document02-patient"[^>]*value=")[^"]*(")', rf"\g<1>{other}\g<2>", metadata
    )
    entries["IHE_XDM/SUBSET01/METADATA.XML"] = metadata.encode()
    read = xdm_read.read_package(zip_of(entries))
    assert read.patient is None
    assert any("plusieurs patients" in fr for fr, _ in read.problems)


@pytest.mark.parametrize(
    ("entries", "needle"),
    [
        ({"../../etc/passwd": b"x"}, "nom de fichier dangereux"),
        ({"/IHE_XDM/SUBSET01/METADATA.XML": b"x"}, "nom de fichier dangereux"),
        ({"IHE_XDM\\SUBSET01\\METADATA.XML": b"x"}, "nom de fichier dangereux"),
        ({"IHE_XDM/SUBSET01/../../x": b"x"}, "nom de fichier dangereux"),
        ({"C:/x": b"x"}, "nom de fichier dangereux"),
        ({"a\x01b": b"x"}, "nom de fichier dangereux"),
        ({"README.TXT": b"x"}, "METADATA.XML absent"),
        ({"IHE_XDM/SUBSET01/METADATA.XML": b"<a>", "x": b""}, "illisible"),
        (
            {"IHE_XDM/SUBSET01/METADATA.XML": b'<!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>'},
            "DTD",
        ),
        (
            {"IHE_XDM/SUBSET01/METADATA.XML": b'<!DOCTYPE a SYSTEM "file:///etc/passwd"><a/>'},
            "DTD",
        ),
        ({"IHE_XDM/SUBSET01/METADATA.XML": b"<a/>", "ihe_xdm/subset01/metadata.xml": b"<a/>"},
         "en double"),
        ({f"F{i}": b"" for i in range(xdm.MAX_ENTRIES + 1)}, "trop de fichiers"),
        ({"IHE_XDM/SUBSET01/METADATA.XML": b"<a/>", "BOMB.BIN": b"\0" * (20 * 1024 * 1024)},
         "bombe"),
    ],
)  # fmt: skip
def test_hostile_packages_are_refused(entries: dict[str, bytes], needle: str) -> None:
    with pytest.raises(XdmError) as caught:
        xdm_read.read_package(zip_of(entries))
    assert needle in caught.value.fr and caught.value.fr.startswith("Paquet XDM refusé")


def test_not_a_zip_and_encrypted_zip_are_refused() -> None:
    with pytest.raises(XdmError, match="pas une archive ZIP"):
        xdm_read.read_package(b"PK\x03\x04 broken")
    buffer = io.BytesIO()
    with pyzipper.AESZipFile(buffer, "w", encryption=pyzipper.WZ_AES) as archive:
        archive.setpassword(b"secret")
        archive.writestr("IHE_XDM/SUBSET01/METADATA.XML", b"<a/>")
    with pytest.raises(XdmError, match="chiffrée"):
        xdm_read.read_package(buffer.getvalue())


def test_oversized_entry_is_refused_whatever_its_header_says() -> None:
    big = hashlib.shake_256(b"seed").digest(xdm.MAX_ENTRY_BYTES + 1)  # incompressible
    with pytest.raises(XdmError, match="trop volumineux"):
        xdm_read.read_package(zip_of({"IHE_XDM/SUBSET01/METADATA.XML": b"<a/>", "DOC.PDF": big}))


def test_uri_cannot_leave_the_subset() -> None:
    entries = entries_of(build())
    metadata = entries["IHE_XDM/SUBSET01/METADATA.XML"].decode()
    metadata = metadata.replace(">DOC0001.XML<", ">../../README.TXT<")
    entries["IHE_XDM/SUBSET01/METADATA.XML"] = metadata.encode()
    read = xdm_read.read_package(zip_of(entries))
    assert read.documents[0].path == "" and not read.documents[0].valid
    assert "README.TXT" not in read.contents


@pytest.mark.parametrize(
    "value",
    [
        "123^^^&1.2.250.1.213.1.4.8&ISO^NH",
        f"{INS}^^^&1.2.3&ISO^NH",
        f"{INS[:13]}00^^^&1.2.250.1.213.1.4.8&ISO^NH",
        "",
    ],
)
def test_patient_id_must_be_a_well_formed_ins(value: str) -> None:
    with pytest.raises(InvalidInput):
        PatientId.parse_cx(value)
