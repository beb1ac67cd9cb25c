"""Sensitive-data detection (DLP) for mail leaving towards a patient or outside the trust
space: NIR / INS, RPPS, dates of birth, CIM-10 codes and French health terms.

The scanning itself is pure and lives in :mod:`caducee.domain.dlp_scan` (a big message is
scanned in a worker process by :func:`scan`); its names are re-exported here. The
practice's policy (:class:`DlpPolicy`) turns findings into a :class:`DlpDecision`
(:func:`decide`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from caducee.domain.dlp_scan import LABELS as LABELS
from caducee.domain.dlp_scan import MAX_FINDINGS as MAX_FINDINGS
from caducee.domain.dlp_scan import MAX_SCAN_CHARS as MAX_SCAN_CHARS
from caducee.domain.dlp_scan import Finding as Finding
from caducee.domain.dlp_scan import mask as mask
from caducee.domain.dlp_scan import scan_message as scan_message
from caducee.domain.dlp_scan import scan_text as scan_text
from caducee.domain.dlp_scan import summary as summary
from caducee.domain.dlp_terms import TermList
from caducee.errors import InvalidInput
from caducee.services import cpu_pool


async def scan(raw: bytes, terms: TermList) -> list[Finding]:
    """:func:`scan_message` off the event loop: a big message (``cpu_pool.PROCESS_THRESHOLD``)
    in a worker process — pure-Python scanning holds the interpreter lock, 0.7 s for a 110 kB
    deeply nested message —, a small one in a thread (issue 17)."""
    return await cpu_pool.run_sized(len(raw), scan_message, raw, terms)


class DlpPolicy(enum.StrEnum):
    """What a practice does with a message in which sensitive data was found."""

    AVERTIR = "avertir"  # send, with a warning header and a trace entry
    BLOQUER = "bloquer"  # refuse (SMTP 550 5.7.1)
    RETRAIT = "retrait"  # send through the secure pickup portal only


POLICY_NAMES = {
    "avertir": DlpPolicy.AVERTIR,
    "warn": DlpPolicy.AVERTIR,
    "bloquer": DlpPolicy.BLOQUER,
    "block": DlpPolicy.BLOQUER,
    "retrait": DlpPolicy.RETRAIT,
    "pickup": DlpPolicy.RETRAIT,
}


def parse_policy(value: str) -> DlpPolicy:
    """A policy as written in the settings or the admin form (French, or English aliases)."""
    policy = POLICY_NAMES.get(value.strip().lower())
    if policy is None:
        raise InvalidInput(
            f"Politique de données sensibles inconnue {value!r} : avertir, bloquer ou retrait.",
            f"Unknown sensitive-data policy {value!r}: avertir (warn), bloquer (block) or "
            "retrait (secure pickup).",
        )
    return policy


#: Header added to a warned message: the kinds and counts, never the values.
WARNING_HEADER = "X-Caducee-DLP"


@dataclass(frozen=True)
class DlpDecision:
    action: str  # "envoyer" (nothing found), "avertir", "bloquer", "retrait"
    findings: list[Finding]
    header: str  # value of the X-Caducee-DLP header ("" when nothing found)
    smtp_code: int  # 550 when blocked, else 0
    smtp_status: str  # "5.7.1" when blocked, else ""
    reason_fr: str
    reason_en: str

    @property
    def blocked(self) -> bool:
        return self.action == "bloquer"

    @property
    def secure_pickup(self) -> bool:
        return self.action == "retrait"


def _kinds_fr(findings: list[Finding]) -> str:
    return ", ".join(sorted({f.label_fr.lower() for f in findings}))


def _kinds_en(findings: list[Finding]) -> str:
    return ", ".join(sorted({f.label_en.lower() for f in findings}))


def decide(policy: DlpPolicy, findings: list[Finding]) -> DlpDecision:
    """What to do with a message: nothing found → "envoyer"; else what ``policy`` says."""
    if not findings:
        return DlpDecision("envoyer", [], "", 0, "", "", "")
    header = "; ".join(f"{kind}={count}" for kind, count in summary(findings).items())
    kinds_fr, kinds_en = _kinds_fr(findings), _kinds_en(findings)
    if policy is DlpPolicy.BLOQUER:
        return DlpDecision(
            "bloquer",
            findings,
            f"bloque; {header}",
            550,
            "5.7.1",
            f"Message refusé : il contient des données de santé ou d'identification ({kinds_fr})."
            " Retirez-les, ou envoyez-les par le portail de retrait sécurisé.",
            f"Message refused: it contains health or identifying data ({kinds_en})."
            " Remove them, or send them through the secure pickup portal.",
        )
    if policy is DlpPolicy.RETRAIT:
        return DlpDecision(
            "retrait",
            findings,
            f"retrait; {header}",
            0,
            "",
            f"Données sensibles détectées ({kinds_fr}) : le message sera remis par le portail "
            "de retrait sécurisé.",
            f"Sensitive data found ({kinds_en}): the message will be delivered through the "
            "secure pickup portal.",
        )
    return DlpDecision(
        "avertir",
        findings,
        f"avertissement; {header}",
        0,
        "",
        f"Attention : données sensibles détectées ({kinds_fr}).",
        f"Warning: sensitive data found ({kinds_en}).",
    )
