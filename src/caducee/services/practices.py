"""Practices (cabinets, établissements): identity, mail domains, mailbox limit.

A new practice requires a second factor (TOTP or a security key) for web access to mail: its
people enrol one at their first web login. Mail clients keep using app passwords. An
administrator may lift the rule (``practice.require_second_factor``, audited).
"""

from __future__ import annotations

from datetime import UTC, datetime

from caducee.app import App
from caducee.domain.addresses import normalize_domain
from caducee.domain.identifiers import normalize_finess, normalize_siret
from caducee.domain.model import DEFAULT_MAILBOX_LIMIT, Practice
from caducee.errors import AlreadyExists, InvalidInput, NotFound
from caducee.services.audit import AuditEvent, append
from caducee.services.local_domains import domains_changed
from caducee.store import directory_repo as repo
from caducee.store import web_repo

MAX_NAME = 200


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(
            f"Nom de cabinet invalide : entre 1 et {MAX_NAME} caractères.",
            f"Invalid practice name: 1 to {MAX_NAME} characters.",
        )
    return name


def _check_limit(limit: int) -> int:
    if not 1 <= limit <= 100_000:
        raise InvalidInput(
            f"Limite de boîtes invalide ({limit}) : entre 1 et 100 000.",
            f"Invalid mailbox limit ({limit}): between 1 and 100,000.",
        )
    return limit


async def create_practice(
    app: App,
    name: str,
    domains: list[str],
    *,
    finess: str | None = None,
    siret: str | None = None,
    mailbox_limit: int = DEFAULT_MAILBOX_LIMIT,
    actor: str = "cli",
    source: str = "cli",
) -> Practice:
    name = _check_name(name)
    clean_domains = sorted({normalize_domain(d) for d in domains})
    if not clean_domains:
        raise InvalidInput(
            "Un cabinet a besoin d'au moins un domaine de messagerie.",
            "A practice needs at least one mail domain.",
        )
    finess = normalize_finess(finess) if finess else None
    siret = normalize_siret(siret) if siret else None
    _check_limit(mailbox_limit)
    async with app.db.write() as conn:
        for domain in clean_domains:
            if await repo.domain_owner(conn, domain) is not None:
                raise AlreadyExists(
                    f"Le domaine {domain} appartient déjà à un cabinet.",
                    f"Domain {domain} already belongs to a practice.",
                )
        practice_id = await repo.insert_practice(conn, name, finess, siret, mailbox_limit)
        for domain in clean_domains:
            await repo.insert_domain(conn, practice_id, domain)
        # Secure by default: web access to mail asks for a second factor from the start.
        await web_repo.set_second_factor_required(conn, practice_id, True, datetime.now(UTC))
        await append(
            conn,
            AuditEvent(
                actor=actor,
                action="practice.create",
                target=f"practice:{practice_id}",
                source=source,
                details={"domains": ",".join(clean_domains), "require_second_factor": True},
            ),
        )
        practice = await repo.get_practice(conn, practice_id)
    domains_changed(app)
    assert practice is not None
    return practice


async def get_practice(app: App, practice_id: int) -> Practice:
    async with app.db.read() as conn:
        practice = await repo.get_practice(conn, practice_id)
    if practice is None:
        raise NotFound(
            f"Cabinet n° {practice_id} introuvable.", f"Practice #{practice_id} not found."
        )
    return practice


async def list_practices(app: App) -> list[Practice]:
    async with app.db.read() as conn:
        result = []
        for practice_id in await repo.list_practice_ids(conn):
            practice = await repo.get_practice(conn, practice_id)
            assert practice is not None
            result.append(practice)
        return result


async def practice_of_domain(app: App, domain: str) -> Practice:
    domain = normalize_domain(domain)
    async with app.db.read() as conn:
        practice_id = await repo.domain_owner(conn, domain)
        practice = await repo.get_practice(conn, practice_id) if practice_id else None
    if practice is None:
        raise NotFound(
            f"Domaine inconnu : {domain} n'est le domaine d'aucun cabinet de cette installation.",
            f"Unknown domain: {domain} belongs to no practice of this installation.",
        )
    return practice


async def update_practice(
    app: App,
    practice_id: int,
    *,
    name: str | None = None,
    finess: str | None = None,
    siret: str | None = None,
    mailbox_limit: int | None = None,
    add_domains: list[str] | None = None,
    actor: str = "cli",
    source: str = "cli",
) -> Practice:
    values: dict[str, object] = {}
    if name is not None:
        values["name"] = _check_name(name)
    if finess is not None:
        values["finess"] = normalize_finess(finess) if finess else None
    if siret is not None:
        values["siret"] = normalize_siret(siret) if siret else None
    if mailbox_limit is not None:
        values["mailbox_limit"] = _check_limit(mailbox_limit)
    new_domains = sorted({normalize_domain(d) for d in add_domains or []})
    async with app.db.write() as conn:
        practice = await repo.get_practice(conn, practice_id, for_update=True)
        if practice is None:
            raise NotFound(
                f"Cabinet n° {practice_id} introuvable.", f"Practice #{practice_id} not found."
            )
        for domain in new_domains:
            owner = await repo.domain_owner(conn, domain)
            if owner is not None and owner != practice_id:
                raise AlreadyExists(
                    f"Le domaine {domain} appartient déjà à un autre cabinet.",
                    f"Domain {domain} already belongs to another practice.",
                )
            if owner is None:
                await repo.insert_domain(conn, practice_id, domain)
        if values:
            await repo.update_practice(conn, practice_id, **values)
        await append(
            conn,
            AuditEvent(
                actor=actor,
                action="practice.update",
                target=f"practice:{practice_id}",
                source=source,
                details={"fields": ",".join(sorted(values)), "domains": ",".join(new_domains)},
            ),
        )
        updated = await repo.get_practice(conn, practice_id)
    domains_changed(app)
    assert updated is not None
    return updated
