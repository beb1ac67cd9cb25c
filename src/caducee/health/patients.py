"""The practice's patient registry and the verification of patients' addresses (issue #7).

A patient: last and first name, date of birth, optional INS (NIR form, key checked), personal
email, mobile (E.164), preferred delivery mode, consent date, notes, and whether the address
is shared (a family address). Everything but the delivery mode and the address state is
sealed (scope ``patients:<practice>``); the email is found through a keyed HMAC.

Address verification is a double opt-in (the CNIL's « écrire uniquement à l'adresse du
patient »): ``unverified`` → ``pending`` (a link was sent, valid :data:`VERIFY_DAYS` days,
single use, only its SHA-256 kept) → ``verified`` when the patient confirms from the link.
Until then the address receives nothing but the verification message.

:func:`recipient_verdict` is the one question every door asks (through
``flows.submission``) before mail leaves for an address of the registry.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid

from caducee.app import App
from caducee.domain import charter as charter_rules
from caducee.domain import web_links
from caducee.domain.addresses import domain_of, normalize_address
from caducee.domain.charter import Charter
from caducee.domain.identifiers import nir_key_valid
from caducee.domain.recipient_route import Purpose
from caducee.domain.web_links import Page
from caducee.errors import AlreadyExists, InvalidInput, NotFound
from caducee.health import charter, generated_mail
from caducee.health.patient_settings import settings_of
from caducee.health.sms import normalise_mobile
from caducee.services import address_books, mailboxes, practices
from caducee.services.audit import AuditEvent, append
from caducee.services.local_domains import our_domains
from caducee.services.scope_keys import PATIENT_EMAIL, keyed_email, patient_scope, scope_key
from caducee.store import patients_repo, pickup_repo, queue_repo
from caducee.store.crypto import aad_for, open_sealed

DELIVERY_MODES = ("retrait", "pdf", "zip")
#: INS identity statuses (RNIV): a qualified INS was checked by the INSi teleservice on a
#: validated identity; the others never leave the registry.
INS_STATUSES = ("", "provisoire", "recuperee", "validee", "qualifiee")
STATUSES = ("unverified", "pending", "verified")
VERIFY_DAYS = 7
MAX_TEXT = 200
MAX_NOTES = 2000


@dataclass(frozen=True)
class PatientData:
    """What the practice types in (validated by :func:`validate`)."""

    last_name: str
    first_name: str
    birth_date: str  # ISO date
    email: str
    mobile: str = ""  # E.164 once validated
    ins: str = ""  # 15 characters, no separators
    delivery_mode: str = "retrait"
    consent_date: str = ""  # ISO date, or empty
    notes: str = ""
    shared_address: bool = False
    #: Identity status of the INS (Référentiel national d'identitovigilance): "", "provisoire",
    #: "recuperee", "validee" or "qualifiee"; only a qualified INS is written on the wire.
    ins_status: str = ""
    ins_status_date: str = ""  # ISO date the status was set (a qualification: INSi check)


@dataclass(frozen=True)
class Patient:
    id: int
    practice_id: int
    data: PatientData
    address_status: str
    verified_at: datetime | None

    @property
    def display_name(self) -> str:
        return f"{self.data.last_name.upper()} {self.data.first_name}"

    @property
    def qualified_ins(self) -> str:
        """The INS when its identity is qualified (the only INS used on the wire), else ""."""
        return self.data.ins if self.data.ins and self.data.ins_status == "qualifiee" else ""


@dataclass(frozen=True)
class Verdict:
    """What sending to an address means: ``not_patient`` (outside the registry), ``verified``
    (``patient`` set), or a refusal: ``unverified``, ``shared``, ``conflict``, ``unregistered``
    (a patient of the old address book, not in the registry)."""

    kind: str
    patient: Patient | None = None

    @property
    def refused(self) -> bool:
        return self.kind in ("unverified", "shared", "conflict", "unregistered")


# --- validation --------------------------------------------------------------------------------


def _text(value: str, label_fr: str, label_en: str, *, required: bool, limit: int) -> str:
    clean = " ".join(value.split())
    if required and not clean:
        raise InvalidInput(f"{label_fr} : champ obligatoire.", f"{label_en}: required.")
    if len(clean) > limit:
        raise InvalidInput(
            f"{label_fr} : {limit} caractères au plus.", f"{label_en}: at most {limit} characters."
        )
    return clean


def _date(value: str, label_fr: str, label_en: str, *, required: bool) -> str:
    value = value.strip()
    if not value:
        if required:
            raise InvalidInput(f"{label_fr} : champ obligatoire.", f"{label_en}: required.")
        return ""
    parsed: date | None = None
    for pattern in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            parsed = datetime.strptime(value, pattern).date()
            break
        except ValueError:
            continue
    if parsed is None or parsed > date.today() or parsed.year < 1890:
        raise InvalidInput(
            f"{label_fr} invalide : {value[:20]!r} (écrivez JJ/MM/AAAA).",
            f"Invalid {label_en.lower()}: {value[:20]!r} (write DD/MM/YYYY).",
        )
    return parsed.isoformat()


def normalize_ins(value: str) -> str:
    """The 15 characters of an INS (NIR form: 13 + a 2-digit key), key checked."""
    clean = "".join(value.split()).replace(".", "").upper()
    if not clean:
        return ""
    if len(clean) != 15 or not nir_key_valid(clean):
        raise InvalidInput(
            "INS invalide : 15 chiffres (13 + la clé de 2 chiffres), clé vérifiée.",
            "Invalid INS: 15 digits (13 + the 2-digit key), key checked.",
        )
    return clean


def validate(data: PatientData) -> PatientData:
    mode = data.delivery_mode.strip().lower() or "retrait"
    if mode not in DELIVERY_MODES:
        raise InvalidInput(
            "Mode d'envoi inconnu : « retrait », « pdf » ou « zip ».",
            "Unknown delivery mode: 'retrait', 'pdf' or 'zip'.",
        )
    mobile = data.mobile.strip()
    return PatientData(
        last_name=_text(data.last_name, "Nom", "Last name", required=True, limit=MAX_TEXT),
        first_name=_text(data.first_name, "Prénom", "First name", required=True, limit=MAX_TEXT),
        birth_date=_date(data.birth_date, "Date de naissance", "Date of birth", required=True),
        email=normalize_address(data.email),
        mobile=normalise_mobile(mobile) if mobile else "",
        ins=normalize_ins(data.ins),
        delivery_mode=mode,
        consent_date=_date(
            data.consent_date, "Date du consentement", "Consent date", required=False
        ),
        notes=data.notes.strip()[:MAX_NOTES],
        shared_address=bool(data.shared_address),
        **_ins_status(data),
    )


def _ins_status(data: PatientData) -> dict[str, str]:
    status = data.ins_status.strip().lower()
    if status not in INS_STATUSES:
        raise InvalidInput(
            "Statut de l'identité inconnu : provisoire, recuperee, validee ou qualifiee.",
            "Unknown identity status: provisoire, recuperee, validee or qualifiee.",
        )
    if status in ("recuperee", "qualifiee") and not data.ins.strip():
        raise InvalidInput(
            "Une identité récupérée ou qualifiée a un INS : saisissez-le.",
            "A retrieved or qualified identity has an INS: enter it.",
        )
    when = _date(data.ins_status_date, "Date du statut INS", "INS status date", required=False)
    if status and not when:
        when = date.today().isoformat()
    return {"ins_status": status, "ins_status_date": when if status else ""}


# --- keys and sealing --------------------------------------------------------------------------


def _scope(practice_id: int) -> str:
    return patient_scope(practice_id)


async def _key(app: App, practice_id: int) -> bytes:
    return await scope_key(app, _scope(practice_id))


def _email_key(key: bytes, email: str) -> str:
    return keyed_email(key, PATIENT_EMAIL, email)


async def _patient(app: App, row: patients_repo.PatientRow) -> Patient:
    async with app.db.read() as conn:
        opened = await app.keyring.open(
            conn, _scope(row.practice_id), row.ref, "patient", row.sealed
        )
    return _patient_of(row, opened)


def _patient_of(row: patients_repo.PatientRow, opened: bytes) -> Patient:
    fields = json.loads(opened)
    data = PatientData(**fields, delivery_mode=row.delivery_mode, shared_address=row.shared_address)
    return Patient(row.id, row.practice_id, data, row.address_status, row.verified_at)


def _open_all(key: bytes, scope: str, rows: list[patients_repo.PatientRow]) -> list[Patient]:
    return [
        _patient_of(row, open_sealed(key, row.sealed, aad_for(scope, row.ref, "patient")))
        for row in rows
    ]


def _sealed_fields(data: PatientData) -> bytes:
    fields = asdict(data)
    del fields["delivery_mode"], fields["shared_address"]
    return json.dumps(fields, ensure_ascii=False).encode()


def _audit(
    actor: str, action: str, patient_id: int, source: str, **details: str | int | None
) -> AuditEvent:
    return AuditEvent(
        actor=actor,
        action=action,
        target=f"patient:{patient_id}",
        source=source,
        details=dict(details),
    )


# --- the registry ---------------------------------------------------------------------


async def _check_address_free(
    app: App, practice_id: int, email: str, key: bytes, except_id: int | None
) -> None:
    if domain_of(email) in await our_domains(app):
        raise InvalidInput(
            f"{email} est une adresse de notre messagerie, pas l'adresse personnelle d'un patient.",
            f"{email} is an address of our mail server, not a patient's personal address.",
        )
    if await address_books.book_of(app, practice_id, email) == "pro":
        raise AlreadyExists(
            f"{email} est dans le carnet des professionnels : une adresse ne peut pas être à "
            "la fois celle d'un professionnel et celle d'un patient.",
            f"{email} is in the professional address book: an address cannot be both a "
            "professional's and a patient's.",
        )
    async with app.db.read() as conn:
        owner = await patients_repo.id_by_email_key(conn, practice_id, _email_key(key, email))
    if owner is not None and owner != except_id:
        raise AlreadyExists(
            f"L'adresse {email} est déjà celle d'un autre patient : chaque patient doit avoir "
            "sa propre adresse (cochez « adresse partagée » s'il s'agit d'une adresse "
            "familiale : elle ne recevra alors aucun contenu de santé).",
            f"Address {email} already belongs to another patient: each patient needs an "
            "address of their own.",
        )


async def add_patient(
    app: App, practice_id: int, data: PatientData, *, actor: str, source: str
) -> Patient:
    data = validate(data)
    await practices.get_practice(app, practice_id)
    key = await _key(app, practice_id)
    await _check_address_free(app, practice_id, data.email, key, None)
    ref = secrets.token_hex(16)
    now = datetime.now(UTC)
    _forget_senders(app)
    async with app.db.write() as conn:
        sealed = await app.keyring.seal(
            conn, _scope(practice_id), ref, "patient", _sealed_fields(data)
        )
        patient_id = await patients_repo.insert_patient(
            conn,
            practice_id=practice_id,
            ref=ref,
            sealed=sealed,
            email_key=_email_key(key, data.email),
            delivery_mode=data.delivery_mode,
            shared_address=data.shared_address,
            now=now,
        )
        if patient_id is None:
            raise AlreadyExists(
                "Cette adresse est déjà celle d'un autre patient.",
                "This address already belongs to another patient.",
            )
        await append(conn, _audit(actor, "patient.create", patient_id, source))
    return Patient(patient_id, practice_id, data, "unverified", None)


async def get_patient(app: App, practice_id: int, patient_id: int) -> Patient:
    async with app.db.read() as conn:
        row = await patients_repo.by_id(conn, practice_id, patient_id)
    if row is None:
        raise NotFound(f"Patient n° {patient_id} introuvable.", f"Patient #{patient_id} not found.")
    return await _patient(app, row)


async def list_patients(app: App, practice_id: int, query: str = "") -> list[Patient]:
    """The practice's patients, sorted by name; ``query`` filters on name, email, birth date."""
    scope = _scope(practice_id)
    async with app.db.read() as conn:
        rows = list(await patients_repo.of_practice(conn, practice_id))
        if not rows:
            return []
        key = await app.keyring.data_key(conn, scope)
    # One transaction, then every record opened in a worker thread: the compose page asks for
    # the registry each time it is shown, and a practice may hold thousands of patients.
    found = await asyncio.to_thread(_open_all, key, scope, rows)
    needle = query.strip().casefold()
    if needle:
        found = [
            p
            for p in found
            if needle
            in f"{p.data.last_name} {p.data.first_name} {p.data.email} "
            f"{p.data.birth_date}".casefold()
        ]
    return sorted(found, key=lambda p: (p.data.last_name.casefold(), p.data.first_name.casefold()))


async def update_patient(
    app: App, practice_id: int, patient_id: int, data: PatientData, *, actor: str, source: str
) -> Patient:
    """Change a patient; a new email goes back to « non vérifiée »."""
    current = await get_patient(app, practice_id, patient_id)
    data = validate(data)
    key = await _key(app, practice_id)
    email_changed = data.email != current.data.email
    if email_changed:
        await _check_address_free(app, practice_id, data.email, key, patient_id)
    status = "unverified" if email_changed else current.address_status
    _forget_senders(app)
    async with app.db.write() as conn:
        ref = secrets.token_hex(16)
        sealed = await app.keyring.seal(
            conn, _scope(practice_id), ref, "patient", _sealed_fields(data)
        )
        await patients_repo.update_patient(
            conn,
            patient_id,
            ref=ref,
            sealed=sealed,
            email_key=_email_key(key, data.email),
            delivery_mode=data.delivery_mode,
            shared_address=data.shared_address,
            address_status=status,
            now=datetime.now(UTC),
            forget_verification=email_changed,
        )
        await append(
            conn,
            _audit(actor, "patient.update", patient_id, source, email_changed=email_changed),
        )
    verified_at = None if email_changed else current.verified_at
    return Patient(patient_id, practice_id, data, status, verified_at)


async def delete_patient(
    app: App, practice_id: int, patient_id: int, *, actor: str, source: str
) -> None:
    await get_patient(app, practice_id, patient_id)
    _forget_senders(app)
    async with app.db.write() as conn:
        await patients_repo.delete_patient(conn, patient_id)
        await pickup_repo.unlink_patient(conn, practice_id, patient_id)
        await append(conn, _audit(actor, "patient.delete", patient_id, source))


async def find_by_email(app: App, practice_id: int, address: str) -> Patient | None:
    try:
        email = normalize_address(address)
    except InvalidInput:
        return None
    async with app.db.read() as conn:
        has_key = await queue_repo.has_data_key(conn, _scope(practice_id))
    if not has_key:
        return None
    key = await _key(app, practice_id)
    async with app.db.read() as conn:
        row = await patients_repo.by_email_key(conn, practice_id, _email_key(key, email))
    return await _patient(app, row) if row is not None else None


# --- verification (double opt-in) -----------------------------------------------------


def verification_message(
    *,
    hostname: str,
    practice_name: str,
    sender: str,
    patient_email: str,
    link: str,
    rules: Charter | None = None,
) -> bytes:
    """No health content: the practice's name, the link, and the practice's charter (its
    short form in both languages, then the full charter in French: the patient agrees here
    to be written to, so the rules come with the question)."""
    rules = rules or Charter()
    message = EmailMessage(policy=SMTP)
    message["From"] = formataddr((practice_name, sender))
    message["To"] = patient_email
    message["Subject"] = f"Confirmez votre adresse pour {practice_name}"
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=hostname)
    message["Auto-Submitted"] = "auto-generated"
    message["Content-Language"] = "fr, en"
    message.set_content(
        f"Bonjour,\n\n{practice_name} souhaite vous écrire à cette adresse par sa messagerie "
        "sécurisée de santé. Pour confirmer que cette adresse est bien la vôtre, et que vous "
        f"seul(e) la consultez, ouvrez ce lien (valable {VERIFY_DAYS} jours) :\n\n{link}\n\n"
        "Si vous n'êtes pas patient(e) de ce cabinet, ignorez ce courriel.\n\n"
        f"{charter_rules.short_text(rules, 'fr')}\n\n"
        "— English —\n\n"
        f"Hello,\n\n{practice_name} would like to write to you at this address through its "
        "secure health messaging. To confirm that this address is yours and that only you "
        f"read it, open this link (valid {VERIFY_DAYS} days):\n\n{link}\n\n"
        "If you are not a patient of this practice, ignore this email.\n\n"
        f"{charter_rules.short_text(rules, 'en')}\n\n"
        "————\n\n"
        f"{charter_rules.full_text(rules, 'fr', today=datetime.now(UTC).date())}\n"
    )
    return message.as_bytes()


async def practice_sender(app: App, practice_id: int) -> str:
    """The address patient mail is sent from: the practice's patient-facing mailbox when it
    has one, else its first mailbox."""
    chosen = (await settings_of(app, practice_id)).patient_mailbox_id
    boxes = await mailboxes.list_mailboxes(app, practice_id)
    for box in boxes:
        if box.id == chosen:
            return box.address
    if not boxes:
        raise NotFound(
            "Le cabinet n'a aucune boîte aux lettres d'où écrire au patient.",
            "The practice has no mailbox to write to the patient from.",
        )
    return boxes[0].address


async def send_verification(
    app: App, practice_id: int, patient_id: int, *, actor: str, source: str
) -> str:
    """Send the verification link; returns the link (for the tests and the CLI's output)."""
    patient = await get_patient(app, practice_id, patient_id)
    if patient.data.shared_address:
        raise InvalidInput(
            "Adresse marquée partagée ou familiale : elle ne peut pas être vérifiée comme "
            "l'adresse personnelle du patient. Demandez-lui une adresse à lui seul.",
            "Address marked shared or family: it cannot be verified as the patient's own "
            "address. Ask the patient for an address of their own.",
        )
    token = secrets.token_urlsafe(24)  # 192 bits
    now = datetime.now(UTC)
    _forget_senders(app)
    async with app.db.write() as conn:
        await patients_repo.start_verification(
            conn,
            patient_id,
            token,
            expires_at=now + timedelta(days=VERIFY_DAYS),
            address_status="pending" if patient.address_status != "verified" else "verified",
            now=now,
        )
        await append(conn, _audit(actor, "patient.verification_sent", patient_id, source))
    practice = await practices.get_practice(app, practice_id)
    sender = await practice_sender(app, practice_id)
    link = web_links.url(app.settings.public_base_url, Page.ADDRESS_VERIFICATION, token=token)
    raw = verification_message(
        hostname=app.settings.hostname,
        practice_name=practice.name,
        sender=sender,
        patient_email=patient.data.email,
        link=link,
        rules=await charter.charter_of(app, practice_id),
    )
    await generated_mail.send_generated(
        app, raw, sender, patient.data.email, purpose=Purpose.ADDRESS_VERIFICATION, source=source
    )
    return link


async def pending_verification(app: App, token: str) -> Patient | None:
    """The patient a verification link is for, if it is valid (unknown, expired and used
    links all give None)."""
    async with app.db.read() as conn:
        row = await patients_repo.by_verification_token(conn, token)
    if row is None:
        return None
    expires = row.verify_expires_at
    if expires is None or expires < datetime.now(UTC):
        return None
    return await _patient(app, row)


async def confirm_verification(app: App, token: str, *, source: str) -> Patient | None:
    """The patient confirmed from the link: the address is verified (the link is then used
    up). None for an unknown, expired or used link — audited as such."""
    patient = await pending_verification(app, token)
    _forget_senders(app)
    async with app.db.write() as conn:
        if patient is None:
            await append(
                conn,
                AuditEvent(
                    actor="patient",
                    action="patient.verify",
                    target="patient:?",
                    source=source,
                    result="denied",
                ),
            )
            return None
        now = datetime.now(UTC)
        await patients_repo.mark_verified(conn, patient.id, token, now)
        await append(conn, _audit("patient", "patient.verify", patient.id, source))
    return replace(patient, address_status="verified", verified_at=now)


# --- the sending policy ---------------------------------------------------------------


#: How long a node trusts its answer to « is this sender a verified patient of that practice? »
#: (a registry change on this node forgets every answer at once; other nodes within this delay).
SENDER_TTL_SECONDS = 60.0
SENDER_CACHE_SIZE = 4096


class PatientSenders:
    """The node's recent answers to « which verified patient of that practice is this sender? »,
    so that mail arriving on the MX asks the registry once per sender and minute, not once per
    message (the triage of patient mail and the auto-replies both ask)."""

    def __init__(self, _app: App) -> None:
        self.answers: OrderedDict[tuple[int, str], tuple[Patient | None, float]] = OrderedDict()

    def forget(self) -> None:
        self.answers.clear()


def _forget_senders(app: App) -> None:
    app.component(PatientSenders, PatientSenders).forget()


#: For the registry's other writers (a patient's erasure, :mod:`caducee.health.patient_rgpd`).
forget_senders = _forget_senders


async def verified_sender(app: App, practice_id: int, address: str) -> Patient | None:
    """The verified patient of ``practice_id`` whose own address ``address`` is (None: not a
    verified patient's, or shared, or in conflict with a professional contact); cached
    :data:`SENDER_TTL_SECONDS` per node."""
    try:
        clean = normalize_address(address)
    except InvalidInput:
        return None
    cache = app.component(PatientSenders, PatientSenders)
    key = (practice_id, clean)
    clock = time.monotonic()
    hit = cache.answers.get(key)
    if hit is not None and clock - hit[1] <= SENDER_TTL_SECONDS:
        return hit[0]
    verdict = await recipient_verdict(app, practice_id, clean)
    found = verdict.patient if verdict.kind == "verified" else None
    cache.answers[key] = (found, clock)
    cache.answers.move_to_end(key)
    while len(cache.answers) > SENDER_CACHE_SIZE:
        cache.answers.popitem(last=False)
    return found


async def recipient_verdict(app: App, practice_id: int, address: str) -> Verdict:
    patient = await find_by_email(app, practice_id, address)
    if patient is None:
        if await address_books.book_of(app, practice_id, address) == "patient":
            return Verdict("unregistered")  # an old patient-book entry: register them first
        return Verdict("not_patient")
    if patient.data.shared_address:
        return Verdict("shared", patient)
    if await address_books.book_of(app, practice_id, patient.data.email) == "pro":
        return Verdict("conflict", patient)
    if patient.address_status != "verified":
        return Verdict("unverified", patient)
    return Verdict("verified", patient)


def refusal_text(app: App, verdict: Verdict, address: str = "") -> tuple[str, str]:
    """The French and English explanation of a refused patient recipient, with its fix."""
    if verdict.patient is None:  # unregistered
        url = web_links.url(app.settings.public_base_url, Page.NEW_PATIENT, {"email": address})
        return (
            f"{address} est un patient du carnet d'adresses, pas encore du registre des "
            f"patients : enregistrez-le et faites vérifier son adresse : {url}",
            f"{address} is a patient of the address book, not yet of the patient registry: "
            f"register them and have their address verified: {url}",
        )
    url = web_links.url(
        app.settings.public_base_url, Page.PATIENT_RECORD, patient_id=verdict.patient.id
    )
    email = verdict.patient.data.email
    if verdict.kind == "shared":
        return (
            f"{email} est marquée comme adresse partagée ou familiale : elle ne peut pas "
            f"recevoir de contenu de santé. Demandez au patient une adresse personnelle : {url}",
            f"{email} is marked as a shared or family address: it cannot receive health "
            f"content. Ask the patient for a personal address: {url}",
        )
    if verdict.kind == "conflict":
        return (
            f"{email} est aussi dans le carnet des professionnels : corrigez la fiche : {url}",
            f"{email} is also in the professional address book: fix the record: {url}",
        )
    return (
        f"L'adresse de ce patient ({email}) n'est pas encore vérifiée : envoyez-lui le lien de "
        f"vérification, puis écrivez-lui une fois qu'il l'a confirmé : {url}",
        f"This patient's address ({email}) is not verified yet: send the verification link, "
        f"then write once the patient has confirmed it: {url}",
    )
