"""A practice's patient-channel settings: the sensitive-data (DLP) policy and extra terms, and
the dedicated patient-facing mailbox (patient traffic apart from professional traffic).

The patient-facing mailbox writes outside the trust space only to verified patients, through
the patient channel (« uniquement à l'adresse du patient »), unless the practice explicitly
opens it to ordinary mail (``patient_mailbox_open``, audited): see
:mod:`caducee.health.recipient_policy`."""

from __future__ import annotations

from dataclasses import dataclass

from caducee.app import App
from caducee.domain.dlp_terms import TermList, parse_terms
from caducee.errors import InvalidInput
from caducee.health import dlp
from caducee.services import mailboxes
from caducee.services.audit import AuditEvent, append
from caducee.store import practice_repo

MAX_TERMS_CHARS = 20_000


@dataclass(frozen=True)
class PatientSettings:
    dlp_policy: dlp.DlpPolicy = dlp.DlpPolicy.AVERTIR
    dlp_terms: tuple[str, ...] = ()
    patient_mailbox_id: int | None = None
    patient_mailbox_open: bool = False

    def term_list(self) -> TermList:
        return TermList.default(self.dlp_terms)


async def settings_of(app: App, practice_id: int) -> PatientSettings:
    async with app.db.read() as conn:
        row = await practice_repo.patient_settings_of(conn, practice_id)
    if row is None:
        return PatientSettings()
    return PatientSettings(
        dlp.parse_policy(row.dlp_policy),
        tuple(parse_terms(row.dlp_terms)),
        row.patient_mailbox_id,
        row.patient_mailbox_open,
    )


async def save_settings(
    app: App,
    practice_id: int,
    *,
    dlp_policy: str,
    dlp_terms: str = "",
    patient_mailbox: str = "",
    patient_mailbox_open: bool = False,
    actor: str,
    source: str,
) -> PatientSettings:
    policy = dlp.parse_policy(dlp_policy)
    if len(dlp_terms) > MAX_TERMS_CHARS:
        raise InvalidInput(
            f"Liste de termes trop longue : {MAX_TERMS_CHARS} caractères au plus.",
            f"Term list too long: at most {MAX_TERMS_CHARS} characters.",
        )
    terms = parse_terms(dlp_terms)
    mailbox_id: int | None = None
    if patient_mailbox.strip():
        box = await mailboxes.get_mailbox(app, patient_mailbox)
        if box.practice_id != practice_id:
            raise InvalidInput(
                "La boîte des patients doit être une boîte du cabinet.",
                "The patient mailbox must be one of the practice's mailboxes.",
            )
        mailbox_id = box.id
    open_to_all = bool(patient_mailbox_open and mailbox_id is not None)
    row = practice_repo.PatientSettingsRow(policy.value, "\n".join(terms), mailbox_id, open_to_all)
    async with app.db.write() as conn:
        await practice_repo.save_patient_settings(conn, practice_id, row)
        await append(
            conn,
            AuditEvent(
                actor=actor,
                action="practice.patient_settings",
                target=f"practice:{practice_id}",
                source=source,
                details={
                    "dlp": policy.value,
                    "terms": len(terms),
                    "mailbox": mailbox_id,
                    "mailbox_open": open_to_all,
                },
            ),
        )
    return PatientSettings(policy, tuple(terms), mailbox_id, open_to_all)
