"""Who a mailbox may write to: one rule for everything that leaves in a mailbox's name.

What its users submit (SMTP submission, webmail, REST API: all through
:func:`caducee.flows.submission.submit`) and what the server writes on its behalf (read
receipts, pickup notices, protected documents, address verification, auto-replies: through
:func:`caducee.health.generated_mail.send_generated` or ``submit``) ask the same question,
:func:`decide`, for each recipient. The answer is a :class:`Decision`:

- ``local``: a mailbox of one of our domains;
- ``patient``: a verified patient of the sender's practice. Ordinary mail never goes to the
  patient's mailbox: the patient channel carries it (pickup notice or protected attachment),
  from any mailbox, MSSanté or not; only its notice, without health content, leaves;
- ``trust``: a domain of the MSSanté trust space;
- ``outside``: anything else, ordinary email.

Refused, with the fix in the message: a registered patient whose address is unverified, shared
or in conflict, an old patient-book entry not in the registry; an ``outside`` recipient when the
sender is bound to the trust space (a PER/ORG/APP mailbox on a listed domain), or is the
practice's patient-facing mailbox and the practice has not opened it to ordinary mail.

A télétransmission (TLT) mailbox writes only to the insurers' domains
(:mod:`caducee.health.insurers`), never to a patient, whatever the purpose; its lots get neither
the sensitive-data check nor the patient channel nor the trust-space rule.

Server-written mail says its :class:`Purpose`: an address verification goes only to a
registered patient's own address; a patient-channel notice goes to a verified patient as the
channel's own message, anywhere else under the mailbox's ordinary rule; an auto-reply (no health
content: an acknowledgement, an absence, the emergency numbers) goes to a verified patient's own
address directly, anywhere else under the mailbox's ordinary rule (an MSSanté mailbox answers
nobody outside the trust space but its verified patients); anything else (receipts) never goes
straight to a patient and is held to the mailbox's ordinary rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from caducee.app import App
from caducee.domain.addresses import domain_of
from caducee.domain.model import Mailbox, MailboxType
from caducee.domain.recipient_route import Purpose, Route
from caducee.errors import InvalidInput, NotFound, PolicyRejected
from caducee.health import insurers, patient_settings, patients, trust_list, trust_policy
from caducee.services import mailboxes
from caducee.services.local_domains import our_domains


@dataclass(frozen=True)
class Sender:
    """The mailbox a message leaves in the name of, and what binds it."""

    address: str
    mailbox: Mailbox | None
    trust_bound: bool = False
    patient_facing_closed: bool = False
    #: The practice's patient-channel settings (DLP policy, terms), for one of our mailboxes
    #: (None for a TLT mailbox: lots pass untouched).
    settings: patient_settings.PatientSettings | None = None
    #: For a télétransmission mailbox: the insurer domains it may write to (else None).
    insurers: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Decision:
    address: str
    route: Route
    patient: patients.Patient | None = None
    refusal: tuple[str, str] | None = None

    @property
    def refused(self) -> bool:
        return self.refusal is not None

    @property
    def leaves_trust_space(self) -> bool:
        """Whether the message (or, for a patient, its notice) crosses into ordinary email."""
        return self.route in (Route.PATIENT, Route.OUTSIDE)


async def sender_of(app: App, address: str) -> Sender:
    """The rules binding ``address`` (one of our mailboxes, or not ours: ordinary rules)."""
    if not address:
        return Sender(address, None)
    try:
        box = await mailboxes.get_mailbox(app, address)
    except (NotFound, InvalidInput):
        return Sender(address, None)
    return await rules_of(app, box)


async def rules_of(app: App, box: Mailbox) -> Sender:
    """The rules binding one of our mailboxes, already looked up."""
    if box.type is MailboxType.TLT:
        patterns = await insurers.insurer_patterns(app, box.practice_id)
        return Sender(box.address, box, insurers=tuple(patterns))
    bound = await trust_policy.mailbox_bound(app, box)
    settings = await patient_settings.settings_of(app, box.practice_id)
    closed = settings.patient_mailbox_id == box.id and not settings.patient_mailbox_open
    return Sender(
        box.address, box, trust_bound=bound, patient_facing_closed=closed, settings=settings
    )


async def decide(
    app: App,
    sender: Sender,
    address: str,
    *,
    purpose: Purpose = Purpose.MAIL,
    domains: set[str] | None = None,
) -> Decision:
    """What sending to ``address`` in ``sender``'s name means (see the module's docstring).
    The patient registry is asked first: a patient is a patient whatever their domain."""
    if sender.insurers is not None:
        return await _teletransmission(app, sender, sender.insurers, address, domains)
    box = sender.mailbox
    verdict = (
        await patients.recipient_verdict(app, box.practice_id, address)
        if box is not None
        else patients.Verdict("not_patient")
    )
    if purpose is Purpose.ADDRESS_VERIFICATION:
        if verdict.patient is None or verdict.kind == "shared":
            return Decision(address, Route.OUTSIDE, refusal=_not_a_patient(address))
        return Decision(address, Route.PATIENT, verdict.patient)
    if verdict.refused:
        text = patients.refusal_text(app, verdict, address)
        return Decision(address, Route.PATIENT, verdict.patient, text)
    if verdict.patient is not None:
        return Decision(address, Route.PATIENT, verdict.patient)
    domain = domain_of(address)
    if domain in (domains if domains is not None else await our_domains(app)):
        return Decision(address, Route.LOCAL)
    if await trust_list.is_listed(app, domain):
        return Decision(address, Route.TRUST)
    if sender.trust_bound:
        return Decision(address, Route.OUTSIDE, refusal=_trust_refusal(sender.address, [address]))
    if sender.patient_facing_closed:
        text = _patient_mailbox_refusal(sender.address, [address])
        return Decision(address, Route.OUTSIDE, refusal=text)
    return Decision(address, Route.OUTSIDE)


async def _teletransmission(
    app: App, sender: Sender, patterns: tuple[str, ...], address: str, domains: set[str] | None
) -> Decision:
    """A TLT mailbox's recipient: an insurer (the patient registry is not even asked: an
    insurer is no patient), or refused."""
    if not insurers.is_insurer(patterns, address):
        error = insurers.insurer_refusal(sender.address, [address], patterns)
        return Decision(address, Route.OUTSIDE, refusal=(error.fr, error.en))
    domain = domain_of(address)
    if domain in (domains if domains is not None else await our_domains(app)):
        return Decision(address, Route.LOCAL)
    if await trust_list.is_listed(app, domain):
        return Decision(address, Route.TRUST)
    return Decision(address, Route.OUTSIDE)


async def decide_all(
    app: App, sender: Sender, addresses: Iterable[str], *, purpose: Purpose = Purpose.MAIL
) -> list[Decision]:
    domains = await our_domains(app)
    return [
        await decide(app, sender, address, purpose=purpose, domains=domains)
        for address in dict.fromkeys(addresses)
    ]


def refusal(sender: Sender, decisions: Sequence[Decision]) -> PolicyRejected | None:
    """One error for every refused recipient of a message (None: all may receive it). The
    trust-space and patient-mailbox refusals name up to three addresses in one sentence."""
    refused = [d for d in decisions if d.refused]
    if not refused:
        return None
    if sender.insurers is not None:
        return insurers.insurer_refusal(
            sender.address, [d.address for d in refused], sender.insurers
        )
    outside = [d.address for d in refused if d.route is Route.OUTSIDE]
    if outside and sender.trust_bound:
        return PolicyRejected(*_trust_refusal(sender.address, outside))
    if outside and sender.patient_facing_closed:
        return PolicyRejected(*_patient_mailbox_refusal(sender.address, outside))
    first = refused[0].refusal
    assert first is not None
    return PolicyRejected(*first)


def _listed(addresses: Sequence[str]) -> str:
    return ", ".join(addresses[:3]) + (" …" if len(addresses) > 3 else "")


def _trust_refusal(sender: str, outside: Sequence[str]) -> tuple[str, str]:
    listed = _listed(outside)
    return (
        f"{sender} est une messagerie de l'espace de confiance MSSanté : elle ne peut écrire "
        f"qu'à des adresses de l'espace de confiance et aux patients dont l'adresse est "
        f"vérifiée. Destinataire(s) hors espace : {listed}. Pour un patient, enregistrez-le "
        "dans le registre des patients et faites vérifier son adresse (canal patient) ; "
        "sinon, écrivez depuis une adresse hors MSSanté.",
        f"{sender} is an MSSanté trust-space mailbox: it may write only to trust-space "
        f"addresses and to patients whose address is verified. Recipient(s) outside: {listed}. "
        "For a patient, register them in the patient registry and have their address verified "
        "(patient channel); otherwise write from a non-MSSanté address.",
    )


def _patient_mailbox_refusal(sender: str, outside: Sequence[str]) -> tuple[str, str]:
    listed = _listed(outside)
    return (
        f"{sender} est la boîte des patients du cabinet : hors de l'espace de confiance, elle "
        f"n'écrit qu'aux patients dont l'adresse est vérifiée, par le canal patient. "
        f"Destinataire(s) non vérifié(s) : {listed}. Enregistrez le patient et faites vérifier "
        "son adresse, ou écrivez depuis une autre boîte ; l'administrateur du cabinet peut "
        "aussi autoriser le courrier ordinaire depuis cette boîte (Administration > Cabinet).",
        f"{sender} is the practice's patient mailbox: outside the trust space it writes only "
        f"to patients whose address is verified, through the patient channel. Unverified "
        f"recipient(s): {listed}. Register the patient and have their address verified, or "
        "write from another mailbox; the practice's administrator may also allow ordinary mail "
        "from this mailbox (Administration > Practice).",
    )


def _not_a_patient(address: str) -> tuple[str, str]:
    return (
        f"{address} n'est pas l'adresse d'un patient du registre : le lien de vérification "
        "ne part qu'à l'adresse personnelle d'un patient enregistré.",
        f"{address} is not the address of a patient of the registry: the verification link "
        "goes only to a registered patient's own address.",
    )


def patient_only_by_channel(address: str) -> tuple[str, str]:
    """Why a server-written message (a receipt, an auto-reply) does not go to a patient."""
    return (
        f"{address} est un patient : il ne reçoit rien d'autre que les messages du canal "
        "patient (avis de retrait, document protégé).",
        f"{address} is a patient: it receives nothing but the patient channel's messages "
        "(pickup notice, protected document).",
    )
