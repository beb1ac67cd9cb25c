"""A patient's rights over what the practice holds about them (RGPD, issue 19): the answer to an
access request (:func:`export_patient`) and the erasure from the registry
(:func:`erase_patient`). The one rule the patients pages and the CLI call, with the registry's
rights (every account of the practice, as for the registry itself).

The export is a ZIP: ``patient.json`` (the registry entry with its fields decrypted, each
pickup left for the patient with its contact, state and trace, the patient's replies through
the portal), ``resume.txt`` (the same, readable, in French), and under ``messages/`` the
messages themselves: each pickup's message while the portal still holds it, each reply the
patient sent through the portal (found in the sending mailbox's folders: From the patient,
``X-Caducee-Portal: reply``).

The erasure removes the registry entry (names, birth date, INS, address, mobile, notes), the
patient's contact on every pickup left for them (address and mobile replaced by an empty
contact, the registry link cut, codes and portal sessions gone; a pickup still open is
revoked and its content deleted), and the address from the practice's address books. It keeps
what the law requires or what is not the registry's: the audit trail (content-free), the
messages in practitioners' mailboxes and their traces (part of the medical record: they are
erased with the mailbox, by its own rules), the pickups' content-free events. Confirmation is
the patient's last name, typed again. Both are audited, content-free.
"""

from __future__ import annotations

import asyncio
import json
import unicodedata
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from caducee.app import App
from caducee.domain.pickup import Pickup
from caducee.errors import InvalidInput
from caducee.health import patients
from caducee.health.patients import Patient
from caducee.health.pickup_store import (
    add_event,
    audit_event,
    by_id,
    content,
    events,
    read_contact,
    record_of,
    scope_of,
)
from caducee.services import address_books, mailstore, practices
from caducee.services.audit import AuditEvent, append
from caducee.store import directory_repo, mailstore_repo, patients_repo, pickup_repo

PORTAL_HEADER = "X-Caducee-Portal"
_EVENT_LABELS = {
    "deposited": "déposé sur le portail",
    "opened": "ouvert par le patient",
    "downloaded": "pièce jointe téléchargée",
    "replied": "réponse du patient",
    "code_sent": "code envoyé par SMS",
    "code_failed": "code erroné",
    "locked": "bloqué (trop d'essais)",
    "revoked": "retiré par l'expéditeur",
    "purged": "contenu supprimé (expiré)",
}
_STATE_LABELS = {
    "open": "disponible",
    "revoked": "retiré",
    "locked": "bloqué",
    "expired": "expiré",
}


@dataclass
class _Message:
    """A message going into the export: its ZIP entry and how to read it."""

    path: str
    pickup: Pickup | None = None
    mailbox_id: int = 0
    row: Any = None


@dataclass
class PatientExport:
    patient_id: int
    pickups: int
    replies: int
    path: Path
    document: dict[str, Any] = field(default_factory=dict)


def _iso(when: datetime | None) -> str | None:
    return when.astimezone(UTC).isoformat() if when is not None else None


def _shown(when: datetime | None) -> str:
    """A date as the summary shows it (UTC, day first)."""
    if when is None:
        return "—"
    return when.astimezone(UTC).strftime("%d/%m/%Y %H:%M UTC")


async def _pickups_of(app: App, practice_id: int, patient_id: int) -> list[Pickup]:
    async with app.db.read() as conn:
        ids = await pickup_repo.ids_of_patient(conn, practice_id, patient_id)
        return [await by_id(conn, i) for i in ids]


def _is_portal_reply(raw: bytes, email: str) -> bool:
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    message = message_from_bytes(head + b"\r\n\r\n", policy=default_policy)
    sender = str(message.get("From", "")).casefold()
    return str(message.get(PORTAL_HEADER, "")).strip() == "reply" and email.casefold() in sender


async def _portal_replies(
    app: App, mailbox_ids: set[int], email: str
) -> list[tuple[str, str, Any]]:
    """(mailbox address, folder, row) of every reply ``email`` sent through the portal into
    these mailboxes (From the patient and marked by the portal), wherever it was filed."""
    found: list[tuple[str, str, Any]] = []
    needle = email.casefold()
    for mailbox_id in sorted(mailbox_ids):
        async with app.db.read() as conn:
            box = await directory_repo.mailbox_by_id(conn, mailbox_id)
            folders = await mailstore_repo.list_folders(conn, mailbox_id) if box else []
        if box is None:
            continue
        for folder in folders:
            rows = list((await mailstore.fetch_rows(app, folder.id, None)).values())
            heads = await mailstore.load_heads(app, rows)
            candidates = [
                r
                for r in rows
                if mailstore.head_contains(heads.get(r.id, mailstore.NO_HEADS), 1, needle)
            ]
            if not candidates:
                continue
            raws = await mailstore.load_raw(app, candidates)
            for row in sorted(candidates, key=lambda r: r.uid):
                raw = raws.get(row.id)
                if raw is not None and await asyncio.to_thread(_is_portal_reply, raw, email):
                    found.append((box.address, folder.name, row))
    return found


def _summary(doc: dict[str, Any]) -> str:
    """``resume.txt``: the export, readable, in French."""
    p = doc["patient"]
    lines = [
        f"Données détenues par le cabinet « {doc['practice']} » sur le patient",
        f"{p['last_name'].upper()} {p['first_name']}",
        f"Export généré le {_shown(datetime.fromisoformat(doc['generated_at']))}, en réponse à "
        "une demande d'accès (RGPD, article 15).",
        "",
        "1. Fiche du registre des patients",
        f"   Nom : {p['last_name']}",
        f"   Prénom : {p['first_name']}",
        f"   Date de naissance : {p['birth_date']}",
        f"   Adresse électronique : {p['email']} ({doc['address_status_label']})",
        f"   Téléphone mobile : {p['mobile'] or '—'}",
        f"   INS : {p['ins'] or '—'}"
        + (f" (statut : {p['ins_status']})" if p.get("ins_status") else ""),
        f"   Mode de remise : {p['delivery_mode']}",
        f"   Date du consentement : {p['consent_date'] or '—'}",
        f"   Adresse partagée : {'oui' if p['shared_address'] else 'non'}",
        f"   Notes : {p['notes'] or '—'}",
        "",
        f"2. Messages déposés sur le portail de retrait sécurisé ({len(doc['pickups'])})",
    ]
    for item in doc["pickups"]:
        lines += [
            f"   Dépôt n° {item['id']} par {item['sender']} le "
            f"{_shown(datetime.fromisoformat(item['created_at']))} — "
            f"{_STATE_LABELS.get(item['state'], item['state'])}, disponible jusqu'au "
            f"{_shown(datetime.fromisoformat(item['expires_at']))}",
            f"     Envoyé à {item['contact']['email']}"
            + (
                f", code par SMS au {item['contact']['mobile']}"
                if item["contact"]["mobile"]
                else ""
            ),
            "     Message : "
            + (item["message_file"] or "plus conservé sur le portail (retiré ou expiré)"),
        ]
        for event in item["events"]:
            label = _EVENT_LABELS.get(event["event"], event["event"])
            lines.append(f"     - {_shown(datetime.fromisoformat(event['ts']))} : {label}")
    lines += ["", f"3. Réponses du patient par le portail ({len(doc['portal_replies'])})"]
    for reply in doc["portal_replies"]:
        lines.append(
            f"   {_shown(datetime.fromisoformat(reply['internal_date']))} — reçue dans "
            f"{reply['mailbox']} ({reply['folder']}) : {reply['message_file']}"
        )
    lines += [
        "",
        "Les messages sont joints au format .eml (lisibles par tout logiciel de messagerie).",
        "Le dossier médical tenu par les praticiens (messages de leurs boîtes) n'est pas inclus",
        "au-delà des échanges par le portail : adressez-vous au praticien concerné.",
        "",
    ]
    return "\n".join(lines)


def _write_zip(target: Path, doc: dict[str, Any], summary: str) -> zipfile.ZipFile:
    archive = zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED)
    archive.writestr("patient.json", json.dumps(doc, ensure_ascii=False, indent=1))
    archive.writestr("resume.txt", summary)
    return archive


async def export_patient(
    app: App, practice_id: int, patient_id: int, target: Path, *, actor: str, source: str
) -> PatientExport:
    """Write what the practice holds about one patient to ``target`` (a new ZIP file)."""
    patient: Patient = await patients.get_patient(app, practice_id, patient_id)
    practice = await practices.get_practice(app, practice_id)
    now = datetime.now(UTC)
    data = asdict(patient.data)
    pickups = await _pickups_of(app, practice_id, patient_id)
    messages: list[_Message] = []
    listed: list[dict[str, Any]] = []
    for item in pickups:
        async with app.db.read() as conn:
            contact = await read_contact(conn, app, item)
            sender = await directory_repo.mailbox_by_id(conn, item.sender_mailbox_id)
        message_file = None
        if item.blob_id is not None and item.state(now) == "open":
            message_file = f"messages/depot-{item.id}.eml"
            messages.append(_Message(message_file, pickup=item))
        listed.append(
            {
                "id": item.id,
                "sender": sender.address if sender else "",
                "created_at": _iso(item.created_at),
                "expires_at": _iso(item.expires_at),
                "state": item.state(now),
                "revoked_at": _iso(item.revoked_at),
                "locked_at": _iso(item.locked_at),
                "purged_at": _iso(item.purged_at),
                "size": item.size,
                "passphrase": item.has_passphrase,
                "contact": {"email": contact.email, "mobile": contact.mobile},
                "events": [
                    {"event": e.event, "detail": e.detail, "ts": _iso(e.ts)}
                    for e in await events(app, item.id)
                ],
                "message_file": message_file,
            }
        )
    replies = await _portal_replies(app, {p.sender_mailbox_id for p in pickups}, patient.data.email)
    replied: list[dict[str, Any]] = []
    for n, (address, folder, row) in enumerate(replies, start=1):
        path = f"messages/reponse-{n}.eml"
        messages.append(_Message(path, mailbox_id=row.mailbox_id, row=row))
        replied.append(
            {
                "mailbox": address,
                "folder": folder,
                "uid": row.uid,
                "internal_date": _iso(row.internal_date),
                "size": row.size,
                "message_file": path,
            }
        )
    doc: dict[str, Any] = {
        "generated_at": _iso(now),
        "practice": practice.name,
        "patient": {
            "id": patient.id,
            **data,
            "address_status": patient.address_status,
            "verified_at": _iso(patient.verified_at),
        },
        "address_status_label": {
            "unverified": "non vérifiée",
            "pending": "vérification en attente",
            "verified": "vérifiée",
        }.get(patient.address_status, patient.address_status),
        "pickups": listed,
        "portal_replies": replied,
        "kept_elsewhere": (
            "Les messages des boîtes des praticiens relèvent du dossier médical ; le journal "
            "d'audit ne contient aucune donnée de santé ni nom."
        ),
    }
    archive = await asyncio.to_thread(_write_zip, target, doc, _summary(doc))
    try:
        for message in messages:
            if message.pickup is not None:
                raw = await content(app, message.pickup)
            else:
                raw = (await mailstore.load_raw(app, [message.row])).get(message.row.id, b"")
            await asyncio.to_thread(archive.writestr, message.path, raw)
        await asyncio.to_thread(archive.close)
    except BaseException:
        await asyncio.to_thread(archive.close)
        target.unlink(missing_ok=True)
        raise
    async with app.db.write() as conn:
        await append(
            conn,
            AuditEvent(
                actor=actor,
                action="patient.export",
                target=f"patient:{patient_id}",
                source=source,
                details={"pickups": len(listed), "replies": len(replied)},
            ),
        )
    return PatientExport(patient_id, len(listed), len(replied), target, doc)


# --- erasure ---------------------------------------------------------------------------------


def _folded(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.strip().casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def check_confirmation(patient: Patient, confirm: str) -> None:
    """The patient's last name typed again (case and accents aside)."""
    if not confirm.strip() or _folded(confirm) != _folded(patient.data.last_name):
        raise InvalidInput(
            "Pour confirmer l'effacement, saisissez le nom de famille du patient "
            f"({patient.data.last_name}) à l'identique.",
            "To confirm the erasure, type the patient's last name "
            f"({patient.data.last_name}) exactly.",
        )


@dataclass(frozen=True)
class Erased:
    patient_id: int
    pickups: int
    revoked: int
    contacts: int


async def erase_patient(
    app: App, practice_id: int, patient_id: int, *, confirm: str, actor: str, source: str
) -> Erased:
    """Erase one patient from the registry and their contact data (see the module)."""
    patient = await patients.get_patient(app, practice_id, patient_id)
    check_confirmation(patient, confirm)
    now = datetime.now(UTC)
    pickups = await _pickups_of(app, practice_id, patient_id)
    contact_key = await address_books.contact_key(app, practice_id, patient.data.email)
    empty = json.dumps({"email": "", "mobile": ""}).encode()
    sealed: dict[int, bytes] = {}
    async with app.db.read() as conn:
        for item in pickups:
            sealed[item.id] = await app.keyring.seal(
                conn, scope_of(item), record_of(item.record_id), "contact", empty
            )
    gone: list[str] = []
    revoked = 0
    patients.forget_senders(app)
    async with app.db.write() as conn:
        for item in pickups:
            locked = await by_id(conn, item.id, lock=True)
            if locked.blob_id is not None:  # still on the portal: withdrawn, content deleted
                if locked.revoked_at is None:
                    await pickup_repo.mark_revoked(conn, locked.id, now)
                    await add_event(conn, locked, "revoked", "effacement", now=now)
                    await append(conn, audit_event(locked, "pickup.revoke", source))
                    revoked += 1
                await app.blobs.forget(conn, [locked.blob_id])
                gone.append(locked.blob_id)
            await pickup_repo.erase_patient(conn, locked.id, sealed[locked.id])
        contacts = (
            await address_books.forget_contact(conn, practice_id, contact_key)
            if contact_key is not None
            else 0
        )
        await patients_repo.delete_patient(conn, patient_id)
        await append(
            conn,
            AuditEvent(
                actor=actor,
                action="patient.erase",
                target=f"patient:{patient_id}",
                source=source,
                details={"pickups": len(pickups), "revoked": revoked, "contacts": contacts},
            ),
        )
    patients.forget_senders(app)
    if gone:
        await app.blobs.remove_files(gone)
    return Erased(patient_id, len(pickups), revoked, contacts)
