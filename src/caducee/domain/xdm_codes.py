"""Codes written in IHE XDM metadata (ITI TF-3 §4.2.3): the XDS classification schemes and
identification schemes (fixed UUIDs of the standard), the French identifier OIDs, and a small
catalogue of the document types a practice sends most.

The catalogue's codes come from the ANS terminologies (TRE/JDV of the CI-SIS) and LOINC; each
document may carry other codes (``DocumentCodes``) when practice software knows better.
Pure data, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

# --- ebRIM 3.0 namespaces (ITI TF-3 §4.2.1) ---
NS_LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
NS_RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
NS_CDA = "urn:hl7-org:v3"

# --- XDS object types and schemes (ITI TF-3 §4.2.5, Table 4.2.5-1) ---
SUBMISSION_SET_NODE = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
SUBMISSION_SET_AUTHOR = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
SUBMISSION_SET_CONTENT_TYPE = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
SUBMISSION_SET_UNIQUE_ID = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
SUBMISSION_SET_SOURCE_ID = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
SUBMISSION_SET_PATIENT_ID = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"

DOCUMENT_ENTRY = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
DOCUMENT_AUTHOR = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
DOCUMENT_CLASS_CODE = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
DOCUMENT_CONFIDENTIALITY = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
DOCUMENT_FORMAT_CODE = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
DOCUMENT_FACILITY_TYPE = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
DOCUMENT_PRACTICE_SETTING = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
DOCUMENT_TYPE_CODE = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
DOCUMENT_UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
DOCUMENT_PATIENT_ID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"

HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
REGISTRY_PACKAGE = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:RegistryPackage"

# --- French identifiers ---
#: The INS (NIR form) assigning authority; the test INS has its own (issue 18, CI-SIS).
INS_OID = "1.2.250.1.213.1.4.8"
INS_TEST_OID = "1.2.250.1.213.1.4.10"
INS_OIDS = (INS_OID, INS_TEST_OID)
#: National identifier of health professionals (RPPS prefixed by 8), type IDNPS.
PROFESSIONAL_ID_OID = "1.2.250.1.71.4.2.1"

LOINC = "2.16.840.1.113883.6.1"
CLASS_CODE_SCHEME = "1.2.250.1.213.1.1.4.1"  # TRE_A03-ClasseDocument
CONFIDENTIALITY_SCHEME = "2.16.840.1.113883.5.25"
FORMAT_CODE_SCHEME = "1.3.6.1.4.1.19376.1.2.3"
FACILITY_TYPE_SCHEME = "1.2.250.1.71.4.2.4"  # TRE_R02-SecteurActivite
PRACTICE_SETTING_SCHEME = "1.2.250.1.213.1.1.4.9"  # TRE_A00-ProducteurDocNonPS / cadre d'exercice


@dataclass(frozen=True)
class Code:
    """A coded value of XDS metadata: code, coding scheme (an OID) and display name."""

    code: str
    scheme: str
    display: str


@dataclass(frozen=True)
class DocumentKind:
    """A document type of the catalogue: its label (French, English) and codes."""

    key: str
    label_fr: str
    label_en: str
    type_code: Code
    class_code: Code


#: Generic format: the MIME type says enough (ITI TF-3 §4.2.3.2.9, 2017 update).
FORMAT_MIME_SUFFICIENT = Code(
    "urn:ihe:iti:xds:2017:mimeTypeSufficient", FORMAT_CODE_SCHEME, "Format from mimeType"
)
CONFIDENTIALITY_NORMAL = Code("N", CONFIDENTIALITY_SCHEME, "Normal")
FACILITY_PRACTICE = Code("SA07", FACILITY_TYPE_SCHEME, "Cabinet individuel")
PRACTICE_SETTING_AMBULATORY = Code("AMBULATOIRE", PRACTICE_SETTING_SCHEME, "Ambulatoire")

_REPORT = Code("10", CLASS_CODE_SCHEME, "Compte rendu")
_SUMMARY = Code("11", CLASS_CODE_SCHEME, "Synthèse")
_PRESCRIPTION = Code("12", CLASS_CODE_SCHEME, "Prescription")

DOCUMENT_KINDS: dict[str, DocumentKind] = {
    kind.key: kind
    for kind in (
        DocumentKind(
            "cr-consultation",
            "Compte rendu de consultation",
            "Consultation report",
            Code("11488-4", LOINC, "Compte rendu de consultation"),
            _REPORT,
        ),
        DocumentKind(
            "lettre",
            "Courrier de correspondance",
            "Referral letter",
            Code("34140-4", LOINC, "Courrier de correspondance"),
            _REPORT,
        ),
        DocumentKind(
            "biologie",
            "Compte rendu d'examens biologiques",
            "Laboratory report",
            Code("11502-2", LOINC, "Compte rendu d'examens biologiques"),
            _REPORT,
        ),
        DocumentKind(
            "imagerie",
            "Compte rendu d'imagerie médicale",
            "Imaging report",
            Code("18748-4", LOINC, "Compte rendu d'imagerie médicale"),
            _REPORT,
        ),
        DocumentKind(
            "ordonnance",
            "Prescription de médicaments",
            "Medication prescription",
            Code("57833-6", LOINC, "Prescription de médicaments"),
            _PRESCRIPTION,
        ),
        DocumentKind(
            "synthese",
            "Synthèse médicale",
            "Patient summary",
            Code("60591-5", LOINC, "Synthèse médicale"),
            _SUMMARY,
        ),
    )
}
