"""Who a télétransmission (TLT) mailbox may write to: the health insurers' domains.

``[teletransmission] insurer_domains`` (default ``*.rss.fr``) and the domains each practice adds
for its complementary insurers. The recipient rule (:mod:`caducee.health.recipient_policy`)
asks :func:`is_insurer` for every recipient of a TLT mailbox.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from caducee.app import App
from caducee.domain.addresses import domain_of
from caducee.domain.teletransmission import check_domain_pattern, domain_matches
from caducee.errors import InvalidInput, NotFound, PolicyRejected
from caducee.services import audit, practices
from caducee.store import lots_repo


async def insurer_patterns(app: App, practice_id: int) -> list[str]:
    """The insurer domains the practice's TLT mailboxes may write to: the configured ones and
    the practice's own."""
    async with app.db.read() as conn:
        own = await lots_repo.insurer_domains(conn, practice_id)
    return list(dict.fromkeys([*app.settings.tlt_insurer_domains, *own]))


def is_insurer(patterns: Iterable[str], address: str) -> bool:
    domain = domain_of(address.lower())
    return any(domain_matches(domain, pattern) for pattern in patterns)


def insurer_refusal(sender: str, refused: Sequence[str], patterns: Sequence[str]) -> PolicyRejected:
    listed = ", ".join(refused[:3]) + (" …" if len(refused) > 3 else "")
    allowed = ", ".join(patterns)
    return PolicyRejected(
        f"{sender} est une boîte de télétransmission : elle n'écrit qu'aux organismes "
        f"d'assurance maladie ({allowed}), jamais à un patient ni à un confrère. Destinataire(s) "
        f"refusé(s) : {listed}. Pour une complémentaire, l'administrateur du cabinet ajoute son "
        "domaine (« caducee lots insurer add »).",
        f"{sender} is a télétransmission mailbox: it writes only to health insurers "
        f"({allowed}), never to a patient or a colleague. Refused recipient(s): {listed}. For "
        "a complementary insurer, the practice's administrator adds its domain "
        "('caducee lots insurer add').",
    )


async def add_insurer_domain(
    app: App, practice_id: int, pattern: str, *, actor: str, source: str = "cli"
) -> str:
    clean = check_domain_pattern(pattern)
    await practices.get_practice(app, practice_id)  # NotFound, said as such
    async with app.db.write() as conn:
        if not await lots_repo.add_insurer_domain(conn, practice_id, clean):
            raise InvalidInput(
                f"Le domaine {clean} est déjà autorisé pour ce cabinet.",
                f"Domain {clean} is already allowed for this practice.",
            )
        await audit.append(
            conn,
            audit.AuditEvent(
                actor=actor,
                action="tlt.insurer_add",
                target=f"practice:{practice_id}",
                source=source,
                details={"pattern": clean},
            ),
        )
    return clean


async def remove_insurer_domain(
    app: App, practice_id: int, pattern: str, *, actor: str, source: str = "cli"
) -> None:
    clean = pattern.strip().lower()
    async with app.db.write() as conn:
        if not await lots_repo.remove_insurer_domain(conn, practice_id, clean):
            raise NotFound(
                f"Le cabinet n'a pas ajouté le domaine {clean} (les domaines par défaut se "
                "changent dans [teletransmission] insurer_domains).",
                f"The practice did not add domain {clean} (the default domains are set in "
                "[teletransmission] insurer_domains).",
            )
        await audit.append(
            conn,
            audit.AuditEvent(
                actor=actor,
                action="tlt.insurer_remove",
                target=f"practice:{practice_id}",
                source=source,
                details={"pattern": clean},
            ),
        )


async def practice_insurer_domains(app: App, practice_id: int) -> list[str]:
    """The domains the practice added (not the configured defaults)."""
    async with app.db.read() as conn:
        return await lots_repo.insurer_domains(conn, practice_id)
