"""SQL of the MSSanté whitelist: replace the list in one transaction, look domains up."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from caducee.store.database import inserted_id
from caducee.store.tables import trust_domains, trust_lists
from caducee.store.times import aware

_BATCH = 2000


@dataclass(frozen=True)
class ListInfo:
    id: int
    generated_at: datetime
    imported_at: datetime
    source: str
    sha256: str
    domain_count: int
    entry_count: int


@dataclass(frozen=True)
class DomainRow:
    domain: str
    dn: str
    dn_key: str
    description: str
    support_contact: str
    updated: str


async def replace_list(
    conn: AsyncConnection,
    *,
    generated_at: datetime,
    imported_at: datetime,
    source: str,
    sha256: str,
    rows: Sequence[DomainRow],
) -> int:
    """Make ``rows`` the active list and drop older lists, in the caller's transaction (readers
    see the old list or the new one, never a mix)."""
    list_id = inserted_id(
        await conn.execute(
            insert(trust_lists).values(
                generated_at=generated_at,
                imported_at=imported_at,
                source=source[:500],
                sha256=sha256,
                domain_count=len({row.domain for row in rows}),
                entry_count=len(rows),
            )
        )
    )
    values = [
        {
            "list_id": list_id,
            "domain": row.domain,
            "dn": row.dn,
            "dn_key": row.dn_key,
            "description": row.description,
            "support_contact": row.support_contact,
            "updated": row.updated,
        }
        for row in rows
    ]
    for start in range(0, len(values), _BATCH):
        await conn.execute(insert(trust_domains), values[start : start + _BATCH])
    await conn.execute(delete(trust_domains).where(trust_domains.c.list_id != list_id))
    await conn.execute(delete(trust_lists).where(trust_lists.c.id != list_id))
    return list_id


async def active_list(conn: AsyncConnection) -> ListInfo | None:
    row = (
        await conn.execute(select(trust_lists).order_by(trust_lists.c.id.desc()).limit(1))
    ).first()
    if row is None:
        return None
    generated_at, imported_at = aware(row.generated_at), aware(row.imported_at)
    assert generated_at is not None and imported_at is not None
    return ListInfo(
        id=row.id,
        generated_at=generated_at,
        imported_at=imported_at,
        source=row.source,
        sha256=row.sha256,
        domain_count=row.domain_count,
        entry_count=row.entry_count,
    )


async def domain_entries(conn: AsyncConnection, domain: str) -> list[DomainRow]:
    """The entries of ``domain`` in the active list (empty when it is not listed)."""
    newest = select(func.max(trust_lists.c.id)).scalar_subquery()
    rows = (
        await conn.execute(
            select(trust_domains)
            .where(trust_domains.c.list_id == newest, trust_domains.c.domain == domain)
            .order_by(trust_domains.c.id)
        )
    ).all()
    return [
        DomainRow(r.domain, r.dn, r.dn_key, r.description, r.support_contact, r.updated)
        for r in rows
    ]


async def active_list_id(conn: AsyncConnection) -> int | None:
    found = await conn.scalar(select(func.max(trust_lists.c.id)))
    return int(found) if found is not None else None


async def all_entries(conn: AsyncConnection, list_id: int) -> list[tuple[str, str]]:
    """(domain, canonical DN) of every entry of a list."""
    rows = await conn.execute(
        select(trust_domains.c.domain, trust_domains.c.dn_key).where(
            trust_domains.c.list_id == list_id
        )
    )
    return [(row.domain, row.dn_key) for row in rows]
