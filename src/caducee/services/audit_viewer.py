"""The admin console's audit viewer: a practice's records (its accounts, mailboxes and
settings), and the audit of their export."""

from __future__ import annotations

from caducee.app import App
from caducee.domain.model import Practice
from caducee.services import audit
from caducee.services.audit import AuditEvent, AuditRecord
from caducee.services.lockout import normalize_source
from caducee.store import web_repo
from caducee.store.web_repo import AuditFilter

# --- audit viewer ----------------------------------------------------------------------------


def practice_target(practice: Practice) -> str:
    return f"practice:{practice.id}"


async def practice_audit(
    app: App,
    practice: Practice,
    flt: AuditFilter,
    *,
    limit: int | None = 100,
    before_seq: int | None = None,
) -> list[AuditRecord]:
    """Audit records about one practice (its accounts, mailboxes and settings), newest first."""
    async with app.db.read() as conn:
        rows = await web_repo.practice_audit_records(
            conn,
            practice.domains,
            practice_target(practice),
            flt,
            limit=limit,
            before_seq=before_seq,
        )
    return [
        AuditRecord(**{name: getattr(row, name) for name in AuditRecord.__dataclass_fields__})
        for row in rows
    ]


async def audit_export_recorded(
    app: App, actor: str, practice: Practice, count: int, *, source: str
) -> None:
    """Audit that the practice's audit log was exported (how many records, not which)."""
    await audit.record(
        app.db,
        AuditEvent(
            actor=actor,
            action="audit.export",
            target=practice_target(practice),
            source=normalize_source(source),
            details={"records": count, "format": "csv"},
        ),
    )
