"""A practice's two address books — « Professionnels » and « Patients » — kept apart: an address
is in one book at most, and each book is searched on its own. Names and addresses are sealed
with the practice's contacts key; the colleagues of the practice (its mailboxes) complete the
professional book. Patients are now kept in the patient registry (:mod:`caducee.health.patients`,
with address verification): no patient contact is added here any more; patient contacts
recorded before it are still known (``book_of``) so that sending to them asks for their
registration."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from caducee.app import App
from caducee.domain.addresses import normalize_address
from caducee.errors import AlreadyExists, InvalidInput, NotFound
from caducee.services.audit import AuditEvent, append
from caducee.services.scope_keys import (
    CONTACT_EMAIL,
    PATIENT_EMAIL,
    keyed_email,
    patient_scope,
    scope_key,
)
from caducee.store import address_book_repo, directory_repo, patients_repo, queue_repo
from caducee.store.connection import AsyncConnection

Kind = Literal["pro", "patient"]
KINDS: tuple[str, ...] = ("pro", "patient")
MAX_NAME = 200
#: Suggestions returned for one query.
MAX_SUGGESTIONS = 20


@dataclass(frozen=True)
class Contact:
    id: int  # 0: a colleague (a mailbox of the practice), not a stored contact
    kind: str
    name: str
    email: str


def _scope(practice_id: int) -> str:
    return f"contacts:{practice_id}"


def _other(kind: str) -> str:
    return "Patients" if kind == "pro" else "Professionnels"


async def _key(app: App, practice_id: int) -> bytes:
    return await scope_key(app, _scope(practice_id))


def _email_key(key: bytes, email: str) -> str:
    return keyed_email(key, CONTACT_EMAIL, email)


async def _is_registered_patient(app: App, practice_id: int, address: str) -> bool:
    """Whether ``address`` is a patient's of the practice's registry (found by its keyed
    pseudonym, as :mod:`caducee.health.patients` stores it)."""
    scope = patient_scope(practice_id)
    async with app.db.read() as conn:
        if not await queue_repo.has_data_key(conn, scope):
            return False
    key = await scope_key(app, scope)
    async with app.db.read() as conn:
        return await patients_repo.email_key_exists(
            conn, practice_id, keyed_email(key, PATIENT_EMAIL, address)
        )


async def add_contact(
    app: App, practice_id: int, kind: str, name: str, email: str, *, actor: str, source: str
) -> Contact:
    if kind not in KINDS:
        raise InvalidInput("Carnet inconnu.", "Unknown address book.")
    if kind == "patient":
        raise InvalidInput(
            "Les patients s'enregistrent dans le registre des patients (menu « Patients »), où "
            "leur adresse est vérifiée avant tout envoi.",
            "Patients are recorded in the patient registry ('Patients' menu), where their "
            "address is verified before anything is sent.",
        )
    address = normalize_address(email)
    name = " ".join(name.split())[:MAX_NAME]
    if await _is_registered_patient(app, practice_id, address):
        raise AlreadyExists(
            f"{address} est l'adresse d'un patient du registre : un correspondant est soit un "
            "professionnel, soit un patient.",
            f"{address} is the address of a patient of the registry: a correspondent is either "
            "a professional or a patient.",
        )
    key = await _key(app, practice_id)
    email_key = _email_key(key, address)
    ref = secrets.token_hex(16)
    scope = _scope(practice_id)
    async with app.db.write() as conn:
        existing = await address_book_repo.kind_of(conn, practice_id, email_key)
        if existing is not None:
            where = "ce carnet" if existing == kind else f"le carnet {_other(kind)}"
            raise AlreadyExists(
                f"{address} est déjà dans {where} : un contact n'est que dans un carnet.",
                f"{address} is already in an address book: a contact is in one book only.",
            )
        sealed = await app.keyring.seal(
            conn, scope, ref, "contact", json.dumps({"name": name, "email": address}).encode()
        )
        contact_id = await address_book_repo.insert_contact(
            conn,
            practice_id=practice_id,
            kind=kind,
            ref=ref,
            email_key=email_key,
            sealed=sealed,
            now=datetime.now(UTC),
        )
        if contact_id is None:  # added by someone else meanwhile
            raise AlreadyExists(
                f"{address} est déjà dans un carnet.", f"{address} is already in an address book."
            )
        await append(
            conn,
            AuditEvent(
                actor=actor,
                action="contact.add",
                target=f"practice:{practice_id}",
                source=source,
                details={"kind": kind, "contact": contact_id},
            ),
        )
    return Contact(contact_id, kind, name, address)


async def contacts_of(app: App, practice_id: int, kind: str) -> list[Contact]:
    async with app.db.read() as conn:
        rows = await address_book_repo.contacts_of(conn, practice_id, kind)
        out = []
        for row in rows:
            opened = json.loads(
                await app.keyring.open(conn, _scope(practice_id), row.ref, "contact", row.sealed)
            )
            out.append(Contact(row.id, row.kind, opened["name"], opened["email"]))
    return sorted(out, key=lambda c: (c.name.casefold(), c.email))


async def colleagues(app: App, practice_id: int) -> list[Contact]:
    """The practice's own mailboxes, named after their owner (professional book)."""
    async with app.db.read() as conn:
        boxes = await directory_repo.list_mailboxes(conn, practice_id)
        out = []
        for box in boxes:
            if box.disabled:
                continue
            owner = await directory_repo.account_by_id(conn, box.owner_account_id)
            name = owner.display_name if owner is not None and box.address == owner.login else ""
            out.append(Contact(0, "pro", name, box.address))
    return out


async def delete_contact(
    app: App, practice_id: int, contact_id: int, *, actor: str, source: str
) -> None:
    async with app.db.write() as conn:
        if not await address_book_repo.delete_contact(conn, practice_id, contact_id):
            raise NotFound("Contact introuvable.", "Contact not found.")
        await append(
            conn,
            AuditEvent(
                actor=actor,
                action="contact.delete",
                target=f"practice:{practice_id}",
                source=source,
                details={"contact": contact_id},
            ),
        )


async def contact_key(app: App, practice_id: int, address: str) -> str | None:
    """The keyed pseudonym ``address`` has in the practice's books (None: not an address)."""
    try:
        clean = normalize_address(address)
    except InvalidInput:
        return None
    return _email_key(await _key(app, practice_id), clean)


async def forget_contact(conn: AsyncConnection, practice_id: int, key: str) -> int:
    """Remove the contact of pseudonym ``key`` (:func:`contact_key`) from the practice's books,
    in the caller's transaction (a patient's erasure, issue 19); how many went. The caller
    audits."""
    return await address_book_repo.delete_by_email_key(conn, practice_id, key)


async def suggest(app: App, practice_id: int, kind: str, query: str) -> list[Contact]:
    """Autocompletion in one book (the professional one includes the colleagues)."""
    if kind not in KINDS:
        raise InvalidInput("Carnet inconnu.", "Unknown address book.")
    needle = query.strip().casefold()
    pool = await contacts_of(app, practice_id, kind)
    if kind == "pro":
        known = {c.email for c in pool}
        pool += [c for c in await colleagues(app, practice_id) if c.email not in known]
    found = [c for c in pool if needle in c.name.casefold() or needle in c.email.casefold()]
    return found[:MAX_SUGGESTIONS]


async def book_of(app: App, practice_id: int, address: str) -> str | None:
    """Which book ``address`` is in ("pro", "patient"), if any."""
    try:
        clean = normalize_address(address)
    except InvalidInput:
        return None
    key = await _key(app, practice_id)
    async with app.db.read() as conn:
        return await address_book_repo.kind_of(conn, practice_id, _email_key(key, clean))
