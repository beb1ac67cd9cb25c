"""IHE XDM and the patient's INS on the wire (issue 18), through the webmail and the REST API:
a message about a patient with a qualified INS carries ``X-MSS-INS`` (and ``X-MSS-CODECDA`` for
CDA documents), goes only to the trust space, may go to the patient's Mon espace santé
address; its attachments travel as an ``IHE_XDM.ZIP`` that the receiving side reads, checks
and shows; a hostile package is reported and the message stays intact. Both backends."""

from __future__ import annotations

import base64
import io
import re
import zipfile
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP, default

import pytest

from caducee.app import App
from caducee.domain import xdm_read
from caducee.domain.model import Account, Mailbox
from caducee.errors import InvalidInput, PolicyRejected
from caducee.flows import compose, patient_compose
from caducee.health import patients, trust_list
from caducee.health.patients import PatientData
from caducee.services import api_tokens, mailboxes, maildrop, mfa, queue
from caducee.services.delivery import deliver_local
from caducee.services.envelope import ClientInfo
from tests.health.whitelists import operator_dn, whitelist_xml
from tests.services.helpers import person, practice
from tests.web.conftest import WebClient

DOCTOR = "dr.martin@cabinet.test"
COLLEAGUE = "dr.bernard@cabinet.test"
PEER = "cardio@hopital.mssante.fr"
RPPS = "10003456786"


def ins_with_key(thirteen: str) -> str:
    return f"{thirteen}{97 - int(thirteen) % 97:02d}"


INS = ins_with_key("2750275123456")
CX = f"{INS}^^^&1.2.250.1.213.1.4.8&ISO^NH"
PDF = b"%PDF-1.4\n% compte rendu\n%%EOF\n"
CDA = f"""<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3"><code code="11488-4" codeSystem="2.16.840.1.113883.6.1"/>
<title>CR</title><recordTarget><patientRole><id root="1.2.250.1.213.1.4.8" extension="{INS}"/>
</patientRole></recordTarget></ClinicalDocument>""".encode()
CLIENT = ClientInfo("127.0.0.1", helo="test", login=DOCTOR, protocol="HTTPS")


@dataclass
class Setting:
    doctor: Account
    mailbox: Mailbox
    patient: patients.Patient
    unqualified: patients.Patient


@pytest.fixture
async def setting(app: App) -> Setting:
    created = await practice(app)
    await mfa.set_second_factor_required(app, created.id, False, actor="t", source="t")
    doctor, mailbox = await person(app, DOCTOR, rpps=RPPS)
    await person(app, COLLEAGUE)
    await trust_list.import_whitelist(
        app,
        whitelist_xml(
            [
                ("cabinet.test", operator_dn(1)),
                ("hopital.mssante.fr", operator_dn(2)),
                ("patient.mssante.fr", operator_dn(3)),
            ]
        ),
    )
    qualified = await patients.add_patient(
        app,
        created.id,
        PatientData(
            "Martin", "Élise", "14/02/1975", "elise@perso.test", ins=INS, ins_status="qualifiee"
        ),
        actor="t",
        source="t",
    )
    unqualified = await patients.add_patient(
        app,
        created.id,
        PatientData(
            "Petit",
            "Léon",
            "01/03/1980",
            "leon@perso.test",
            ins=ins_with_key("1800375123456"),
            ins_status="validee",
        ),
        actor="t",
        source="t",
    )
    return Setting(doctor, mailbox, qualified, unqualified)


async def _send_about(
    app: App, to: tuple[str, ...], about: patient_compose.AboutPatient,
    files: tuple[compose.Attachment, ...] = (), subject: str = "",
) -> compose.Composed:  # fmt: skip
    access = await mailboxes.open_mailbox(app, DOCTOR, DOCTOR)
    outgoing = compose.Outgoing(to=to, subject=subject, text="Bonjour.", attachments=files)
    outgoing = await patient_compose.about_patient(app, access, outgoing, about)
    composed = await compose.build(app, access, outgoing)
    await compose.send(app, access, composed, CLIENT)
    return composed


async def _inbox(app: App, login: str) -> list[bytes]:
    drop = await maildrop.open_maildrop(app, login, "test")
    return [await maildrop.retrieve(app, drop, m) for m in drop.messages]


async def test_xdm_message_round_trips(app: App, setting: Setting) -> None:
    files = (
        compose.Attachment("cr.xml", "text/xml", CDA),
        compose.Attachment("ordonnance.pdf", "application/pdf", PDF),
    )
    about = patient_compose.AboutPatient(setting.patient.id, "cr-consultation")
    await _send_about(app, (COLLEAGUE,), about, files, subject="Consultation du 7 décembre")
    (raw,) = await _inbox(app, COLLEAGUE)
    message = message_from_bytes(raw, policy=default)
    assert str(message["Subject"]) == (
        "XDM/1.0/DDM+Consultation du 7 décembre MARTIN Élise 14/02/1975"
    )
    assert message["X-MSS-INS"] == CX
    assert message["X-MSS-CODECDA"] == "11488-4"
    names = [p.get_filename() for p in message.iter_attachments()]
    assert names == ["cr.xml", "ordonnance.pdf", "IHE_XDM.ZIP"]
    # the receiving side reads, checks and offers each document
    (found,) = xdm_read.packages_in_message(raw)
    assert found.package is not None and found.package.valid
    assert found.package.patient is not None and found.package.patient.ins == INS
    assert [d.mime_type for d in found.package.documents] == ["text/xml", "application/pdf"]
    assert "RPPS " + RPPS in found.package.documents[0].author
    document = xdm_read.package_document(raw, found.index, 2)
    assert document is not None and document[1] == PDF


async def test_ins_alone_and_mon_espace_sante(app: App, setting: Setting) -> None:
    about = patient_compose.AboutPatient(setting.patient.id, to_mes=True)
    composed = await _send_about(app, (PEER,), about, subject="Suivi")
    message = message_from_bytes(composed.raw, policy=default)
    assert message["X-MSS-INS"] == CX and message["X-MSS-CODECDA"] is None
    assert str(message["Subject"]) == "Suivi"
    mes = f"{INS}@patient.mssante.fr"
    assert set(composed.recipients) == {PEER, mes}
    assert {e.address for e in await queue.list_queue(app)} == {PEER, mes}


@pytest.mark.parametrize(
    ("case", "error", "needle"),
    [
        ("outside", PolicyRejected, "espace de confiance"),
        ("unqualified", InvalidInput, "pas qualifié"),
        ("not-a-document", InvalidInput, "CDA R2 (XML) ou un PDF"),
        ("no-document", InvalidInput, "au moins un document"),
        ("other-patient-cda", InvalidInput, "autre patient"),
        ("unknown-kind", InvalidInput, "Type de document inconnu"),
    ],
)
async def test_refusals_leave_nothing(
    app: App, setting: Setting, case: str, error: type[Exception], needle: str
) -> None:
    to: tuple[str, ...] = (COLLEAGUE,)
    patient_id, kind = setting.patient.id, "cr-consultation"
    files = (compose.Attachment("cr.pdf", "application/pdf", PDF),)
    if case == "outside":
        to = (COLLEAGUE, "elise@perso.test")
    elif case == "unqualified":
        patient_id = setting.unqualified.id
    elif case == "not-a-document":
        files = (compose.Attachment("photo.png", "image/png", b"\x89PNG\r\n"),)
    elif case == "no-document":
        files = ()
    elif case == "other-patient-cda":
        other = CDA.replace(INS.encode(), ins_with_key("1800375123456").encode())
        files = (compose.Attachment("cr.xml", "text/xml", other),)
    else:
        kind = "inconnu"
    with pytest.raises(error) as refused:
        await _send_about(app, to, patient_compose.AboutPatient(patient_id, kind), files)
    assert needle in refused.value.fr  # type: ignore[attr-defined]
    assert await _inbox(app, COLLEAGUE) == [] and await queue.list_queue(app) == []


async def test_author_needs_an_rpps(app: App, setting: Setting) -> None:
    await person(app, "dr.sans.rpps@cabinet.test")
    access = await mailboxes.open_mailbox(
        app, "dr.sans.rpps@cabinet.test", "dr.sans.rpps@cabinet.test"
    )
    outgoing = compose.Outgoing(
        to=(COLLEAGUE,), attachments=(compose.Attachment("cr.pdf", "application/pdf", PDF),)
    )
    with pytest.raises(InvalidInput, match="RPPS"):
        await patient_compose.about_patient(
            app, access, outgoing, patient_compose.AboutPatient(setting.patient.id, "synthese")
        )


def _hostile_mail() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("IHE_XDM/SUBSET01/METADATA.XML", b"<a/>")
        archive.writestr("../../../etc/cron.d/evil", b"* * * * * root rm -rf /")
    message = EmailMessage(policy=SMTP)
    message["From"] = PEER
    message["To"] = DOCTOR
    message["Subject"] = "Documents"
    message["Message-ID"] = "<xdm-hostile@hopital.mssante.fr>"
    message.set_content("Ci-joint.")
    message.add_attachment(
        buffer.getvalue(), maintype="application", subtype="zip", filename="IHE_XDM.ZIP"
    )
    return message.as_bytes()


async def _message_url(web: WebClient) -> str:
    home = await web.get("/courrier")
    inbox = home.headers.get("location") or str(home.url)
    listing = await web.get(inbox) if "location" in home.headers else home
    link = re.search(r'href="(/courrier/b/\d+/d/\d+/m/\d+)"', listing.text)
    if link is None:  # follow the mailbox → folder redirects
        box = await web.get(inbox)
        folder = await web.get(box.headers["location"]) if "location" in box.headers else box
        link = re.search(r'href="(/courrier/b/\d+/d/\d+/m/\d+)"', folder.text)
    assert link, "no message in the Inbox"
    return link.group(1)


async def test_webmail_shows_documents_and_hostile_packages(
    app: App, setting: Setting, web: WebClient
) -> None:
    hostile = _hostile_mail()
    await deliver_local(app, hostile, [DOCTOR])
    await web.login(DOCTOR)
    page = await web.get(await _message_url(web))
    assert page.status_code == 200
    assert "Documents du dossier patient (IHE XDM)" in page.text
    assert "nom de fichier dangereux" in page.text and "sont intacts" in page.text
    (stored,) = await _inbox(app, DOCTOR)
    assert stored.endswith(hostile)  # delivered whole, only trace fields prepended


async def test_webmail_compose_sends_an_xdm_message(
    app: App, setting: Setting, web: WebClient
) -> None:
    await web.login(DOCTOR)
    box = f"/courrier/b/{setting.mailbox.id}"
    form = await web.get(box + "/ecrire")
    assert "Patient concerné" in form.text and "MARTIN Élise" in form.text
    assert "PETIT Léon" not in form.text  # validated, not qualified: never on the wire
    sent = await web.http.post(
        box + "/envoyer",
        data={
            "csrf": web.csrf,
            "a": COLLEAGUE,
            "objet": "",
            "corps": "Bonjour.",
            "patient": str(setting.patient.id),
            "type_xdm": "biologie",
        },
        files={"pieces": ("bilan.pdf", PDF, "application/pdf")},
    )
    assert sent.status_code == 303, sent.text
    (raw,) = await _inbox(app, COLLEAGUE)
    message = message_from_bytes(raw, policy=default)
    assert str(message["Subject"]).startswith(
        "XDM/1.0/DDM+Compte rendu d'examens biologiques MARTIN"
    )
    assert message["X-MSS-INS"] == CX
    refused = await web.http.post(
        box + "/envoyer",
        data={
            "csrf": web.csrf,
            "a": "quelquun@gmail.test",
            "corps": "x",
            "patient": str(setting.patient.id),
        },
    )
    assert refused.status_code == 400 and "espace de confiance" in refused.text


async def test_api_sends_and_reads_xdm(app: App, setting: Setting, web: WebClient) -> None:
    token, _created = await api_tokens.create_token(
        app, DOCTOR, "Logiciel", [DOCTOR], ["lecture", "envoi"], actor="t", source="t"
    )
    auth = {"authorization": f"Bearer {token}"}
    sent = await web.http.post(
        f"/api/v1/boites/{setting.mailbox.id}/envoyer",
        json={
            "a": [DOCTOR],
            "objet": "Synthèse",
            "patient": {"id": setting.patient.id, "xdm": "synthese"},
            "pieces_jointes": [
                {"nom": "cr.xml", "type": "text/xml", "contenu": base64.b64encode(CDA).decode()}
            ],
        },
        headers=auth,
    )
    assert sent.status_code == 202, sent.text
    folders = (
        await web.http.get(f"/api/v1/boites/{setting.mailbox.id}/dossiers", headers=auth)
    ).json()
    inbox = next(f for f in folders if f["usage"] == "\\Inbox")
    base = f"/api/v1/boites/{setting.mailbox.id}/dossiers/{inbox['id']}/messages"
    (summary,) = (await web.http.get(base, headers=auth)).json()["messages"]
    shown = (await web.http.get(f"{base}/{summary['uid']}", headers=auth)).json()
    (package,) = shown["documents_xdm"]
    assert package["valide"] and package["patient_ins"] == INS and not package["ins_de_test"]
    (document,) = package["documents"]
    assert document["code_cda"] == "11488-4" and document["type_mime"] == "text/xml"
    assert document["type"]["code"] == "60591-5" and document["auteur"].endswith(f"(RPPS {RPPS})")
    raw = await web.http.get(f"{base}/{summary['uid']}/xdm/{package['piece']}/1", headers=auth)
    assert raw.status_code == 200 and raw.content == CDA
    missing = await web.http.get(f"{base}/{summary['uid']}/xdm/{package['piece']}/2", headers=auth)
    assert missing.status_code == 404
    bad = await web.http.post(
        f"/api/v1/boites/{setting.mailbox.id}/envoyer",
        json={"a": [DOCTOR], "patient": {"id": "x"}},
        headers=auth,
    )
    assert bad.status_code == 422
