"""IHE XDM in mail: documents for one patient of the registry sent as ``IHE_XDM.ZIP`` with the
MSSanté headers, and the packages of received mail read for the webmail and the API.

Sending (Référentiel socle MSSanté #2, ECO.2.4): one patient per message, whose INS must be
qualified (the only INS written on the wire); the author is the mailbox's practitioner (RPPS);
the subject is ``XDM/1.0/DDM+<libellé> <NOM> <prénom> <date de naissance>``; ``X-MSS-CODECDA``
carries the codes of the CDA documents and ``X-MSS-INS`` the patient's INS (HL7 CX form
``INS^^^&OID&ISO^NH``, the OID telling a test INS from a real one). Such a message goes only
to professionals of the trust space or the patient's Mon espace santé address: anything else
is refused before it is built, whatever the door.

Receiving: a package is read in the cpu pool (:mod:`caducee.domain.xdm_read`); what is wrong
with it is shown with the message, which is never changed or refused for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from caducee.app import App
from caducee.domain import xdm_build, xdm_read
from caducee.domain.model import Account
from caducee.domain.recipient_route import Route
from caducee.domain.xdm import PatientId, XdmAuthor, XdmPatient, oid_for, subject
from caducee.domain.xdm_codes import DOCUMENT_KINDS, Code, DocumentKind
from caducee.domain.xdm_read import MessagePackage, ReadDocument
from caducee.errors import InvalidInput, PolicyRejected
from caducee.health import patients, recipient_policy
from caducee.health.mon_espace_sante import MES_DOMAIN
from caducee.services import cpu_pool, mailboxes, practices
from caducee.store import directory_repo

ATTACHMENT_NAME = xdm_read.ATTACHMENT_NAME
HEADER_CODECDA = "X-MSS-CODECDA"
#: Patients offered on the compose page (the registry's search finds the others).
MAX_CHOICES = 500
HEADER_INS = "X-MSS-INS"


@dataclass(frozen=True)
class XdmParts:
    """What an XDM message adds to what the sender wrote."""

    subject: str
    attachment: bytes  # IHE_XDM.ZIP
    headers: tuple[tuple[str, str], ...]  # X-MSS-CODECDA, X-MSS-INS


@dataclass(frozen=True)
class PatientChoice:
    """A patient the compose page offers (qualified INS only)."""

    id: int
    name: str
    birth_date: str
    mes_address: str


async def patient_choices(app: App, access: mailboxes.Access) -> list[PatientChoice]:
    """The registry's patients with a qualified INS, for the compose page (sending needs the
    mailbox's practice's registry: a mailbox that cannot send gets none)."""
    if not access.can_send:
        return []
    found = await patients.list_patients(app, access.mailbox.practice_id)
    return [
        PatientChoice(p.id, p.display_name, p.data.birth_date, mes_address(p))
        for p in found
        if p.qualified_ins
    ][:MAX_CHOICES]


def kinds() -> list[tuple[str, str, str]]:
    """The document types (key, French label, English label)."""
    return [(k.key, k.label_fr, k.label_en) for k in DOCUMENT_KINDS.values()]


def document_kind(key: str) -> DocumentKind:
    kind = DOCUMENT_KINDS.get(key.strip())
    if kind is None:
        raise InvalidInput(
            f"Type de document inconnu « {key[:40]} » : {', '.join(DOCUMENT_KINDS)}.",
            f"Unknown document type '{key[:40]}': {', '.join(DOCUMENT_KINDS)}.",
        )
    return kind


async def _author(app: App, access: mailboxes.Access) -> Account:
    """The practitioner the documents come from: the mailbox's owner (a secretary sends in
    the practitioner's name), who must have an RPPS number."""
    async with app.db.read() as conn:
        owner = await directory_repo.account_by_id(conn, access.mailbox.owner_account_id)
    author = owner or access.account
    if not author.rpps:
        raise InvalidInput(
            "L'auteur d'un document XDM est identifié par son RPPS : renseignez le numéro RPPS "
            "du titulaire de la boîte.",
            "The author of an XDM document is identified by their RPPS: enter the RPPS number "
            "of the mailbox's owner.",
        )
    return author


async def check_recipients(app: App, access: mailboxes.Access, recipients: Sequence[str]) -> None:
    """An XDM message (documents and INS) goes only to our own mailboxes, the trust space and
    Mon espace santé (a domain of the trust space): :class:`PolicyRejected` otherwise."""
    sender = await recipient_policy.rules_of(app, access.mailbox)
    outside = [
        d.address
        for d in await recipient_policy.decide_all(app, sender, list(recipients))
        if d.route not in (Route.LOCAL, Route.TRUST)
    ]
    if outside:
        listed = ", ".join(outside[:5])
        raise PolicyRejected(
            f"Un message XDM (documents et INS du patient) ne part que vers des professionnels "
            f"de l'espace de confiance MSSanté ou vers Mon espace santé : {listed}.",
            f"An XDM message (documents and the patient's INS) goes only to professionals of "
            f"the MSSanté trust space or to Mon espace santé: {listed}.",
        )


async def qualified_patient(
    app: App, access: mailboxes.Access, patient_id: int
) -> patients.Patient:
    """The registry's patient ``patient_id`` (of the mailbox's practice), whose INS must be
    qualified: the only INS written on the wire."""
    patient = await patients.get_patient(app, access.mailbox.practice_id, patient_id)
    if not patient.qualified_ins:
        raise InvalidInput(
            "L'INS de ce patient n'est pas qualifié : qualifiez son identité (téléservice INSi, "
            "pièce d'identité) dans le registre avant de l'utiliser dans un échange.",
            "This patient's INS is not qualified: qualify the identity (INSi teleservice, "
            "identity document) in the registry before using it in an exchange.",
        )
    return patient


def patient_id_of(app: App, patient: patients.Patient) -> PatientId:
    return PatientId(patient.qualified_ins, test=app.settings.mssante_test_ins)


def mes_address(patient: patients.Patient) -> str:
    """The patient's Mon espace santé address: ``<matricule INS>@patient.mssante.fr``."""
    return f"{patient.qualified_ins}@{MES_DOMAIN}"


def patient_headers(app: App, patient: patients.Patient) -> tuple[tuple[str, str], ...]:
    return ((HEADER_INS, patient_id_of(app, patient).cx),)


async def build_parts(
    app: App,
    access: mailboxes.Access,
    patient: patients.Patient,
    kind_key: str,
    files: Sequence[tuple[str, bytes]],
    *,
    title: str = "",
) -> XdmParts:
    """The package, subject and headers for ``files`` about ``patient`` (its INS qualified:
    :func:`qualified_patient`)."""
    kind = document_kind(kind_key)
    if not files:
        raise InvalidInput(
            "Joignez au moins un document (CDA R2 ou PDF).",
            "Attach at least one document (CDA R2 or PDF).",
        )
    author = await _author(app, access)
    practice = await practices.get_practice(app, access.mailbox.practice_id)
    xdm_patient = XdmPatient(
        patient_id_of(app, patient),
        patient.data.last_name,
        patient.data.first_name,
        date.fromisoformat(patient.data.birth_date),
    )
    xdm_author = XdmAuthor(author.rpps or "", author.last_name, author.first_name, practice.name)
    package, cda_codes = await cpu_pool.run(
        xdm_build.package_for_mail,
        xdm_patient,
        xdm_author,
        list(files),
        kind,
        title.strip(),
        datetime.now(UTC),
        oid_for(access.mailbox.address.partition("@")[2]),
    )
    headers: list[tuple[str, str]] = []
    if cda_codes:
        headers.append((HEADER_CODECDA, ", ".join(cda_codes)))
    headers.append((HEADER_INS, xdm_patient.id.cx))
    return XdmParts(subject(title or kind.label_fr, xdm_patient), package, tuple(headers))


async def received(
    raw: bytes, attachments: Sequence[tuple[str, str]]
) -> tuple[MessagePackage, ...]:
    """The XDM packages attached to ``raw`` (``attachments``: its (filename, content type)),
    read off the event loop; nothing when none is."""
    if not any(xdm_read.is_xdm_attachment(name, kind) for name, kind in attachments):
        return ()
    return await cpu_pool.run(xdm_read.packages_in_message, raw)


async def document(raw: bytes, index: int, number: int) -> tuple[ReadDocument, bytes] | None:
    """The ``number``-th document of the package attached at ``index``, with its bytes."""
    return await cpu_pool.run(xdm_read.package_document, raw, index, number)


def package_json(found: MessagePackage, english: bool = False) -> dict[str, object]:
    """What the API and practice software get of a package (no content, no secret)."""

    def text(pair: tuple[str, str]) -> str:
        return pair[1] if english else pair[0]

    package = found.package
    if package is None:
        return {"piece": found.index, "nom": found.filename, "lisible": False,
                "erreur": text(found.error) if found.error else ""}  # fmt: skip
    return {
        "piece": found.index,
        "nom": found.filename,
        "lisible": True,
        "valide": package.valid,
        "patient_ins": package.patient.ins if package.patient else None,
        "ins_de_test": package.patient.test if package.patient else None,
        "titre": package.submission_title,
        "date_soumission": package.submission_time,
        "problemes": [text(p) for p in package.problems],
        "documents": [
            {
                "numero": number,
                "titre": d.title,
                "type_mime": d.mime_type,
                "taille": d.size,
                "sha1": d.hash,
                "date_creation": d.creation_time,
                "type": _code_json(d.type_code),
                "classe": _code_json(d.class_code),
                "format": _code_json(d.format_code),
                "auteur": d.author,
                "identifiant_unique": d.unique_id,
                "code_cda": d.cda_code or None,
                "valide": d.valid,
                "problemes": [text(p) for p in d.problems],
            }
            for number, d in enumerate(package.documents, start=1)
        ],
    }


def _code_json(code: Code | None) -> dict[str, str] | None:
    if code is None:
        return None
    return {"code": code.code, "systeme": code.scheme, "libelle": code.display}
