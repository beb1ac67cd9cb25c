"""The MSSanté whitelist in force: import (file or URL, optional SHA-256 checksum), status,
lookups, and the scheduled refresh that keeps the last good list when a download fails."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from caducee.app import App
from caducee.errors import AccessDenied, CaduceeError, InvalidInput, TemporaryFailure
from caducee.health import whitelist
from caducee.services import audit, periodic, practices
from caducee.services.audit import AuditEvent, Detail, append
from caducee.store import trust_repo

log = logging.getLogger(__name__)

#: Seconds a whitelist download may take.
DOWNLOAD_TIMEOUT = 60.0


@dataclass(frozen=True)
class ImportReport:
    generated_at: datetime
    domain_count: int
    entry_count: int
    rejected: list[str]
    sha256: str
    unchanged: bool  # the same list was already in force


@dataclass(frozen=True)
class TrustStatus:
    info: trust_repo.ListInfo | None
    stale: bool  # no list, or generated longer ago than ``trust_list_max_age_days``
    max_age_days: int


def _is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def _read_limited(location: str, max_bytes: int) -> bytes:
    if _is_url(location):
        # Only http(s) reaches here (read_source refuses other schemes).
        request = urllib.request.Request(location, headers={"User-Agent": "Caducee"})  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT) as response:  # noqa: S310
                data: bytes = response.read(max_bytes + 1)
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise TemporaryFailure(
                f"Téléchargement de {location} impossible : {exc}.",
                f"Cannot download {location}: {exc}.",
            ) from None
    else:
        path = Path(location)
        try:
            with path.open("rb") as handle:
                data = handle.read(max_bytes + 1)
        except OSError as exc:
            raise InvalidInput(
                f"Lecture de {location} impossible : {exc.strerror}.",
                f"Cannot read {location}: {exc.strerror}.",
            ) from None
    if len(data) > max_bytes:
        raise InvalidInput(
            f"{location} dépasse la taille maximale ({max_bytes} octets).",
            f"{location} is larger than the limit ({max_bytes} bytes).",
        )
    return data


async def read_source(location: str, max_bytes: int = whitelist.MAX_BYTES) -> bytes:
    """The bytes of a file path or an http(s) URL, bounded in size and time."""
    if location.startswith("file:") or ("://" in location and not _is_url(location)):
        raise InvalidInput(
            "Seuls un chemin de fichier ou une adresse http(s) sont acceptés.",
            "Only a file path or an http(s) address is accepted.",
        )
    return await asyncio.to_thread(_read_limited, location, max_bytes)


def _origin(actor: str, origin: str) -> str:
    """The audit record's source: the client's address (admin console), else the command line
    or the system (the scheduled refresh)."""
    return origin or ("cli" if actor == "cli" else "system")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _audit_refusal(
    app: App, error: CaduceeError, location: str, actor: str, origin: str, data: bytes | None
) -> None:
    """A refused import, audited like an accepted one: who, from where, which file (its
    SHA-256 when it was read), and the kind of refusal — never the error's text, which may
    quote what was read."""
    details: dict[str, Detail] = {"error": type(error).__name__}
    if data is not None:
        details["sha256"] = await asyncio.to_thread(_sha256, data)
    await audit.record(
        app.db,
        AuditEvent(
            actor=actor,
            action="trust.import",
            target=location[:200],
            source=_origin(actor, origin),
            result="failed",
            details=details,
        ),
    )


async def import_whitelist(
    app: App,
    data: bytes,
    *,
    checksum: str | None = None,
    source: str = "",
    actor: str = "system",
    origin: str = "",
    require_checksum: bool = False,
    practice_admin: bool = False,
) -> ImportReport:
    """Verify, parse and install a whitelist; the list in force changes only on success.
    Every import is audited (``trust.import``), the refused ones too (``failed``, with the
    kind of refusal). ``require_checksum``: a list without its checksum is refused;
    ``practice_admin``: the actor is a practice's administrator (:func:`check_practice_admin`)
    — both the admin console's rules."""
    try:
        if practice_admin:
            await check_practice_admin(app)
        if require_checksum and not (checksum or "").strip():
            raise _checksum_missing()
        return await _install(app, data, checksum, source, actor, origin)
    except CaduceeError as error:
        await _audit_refusal(app, error, source, actor, origin, data)
        raise


async def _install(
    app: App, data: bytes, checksum: str | None, source: str, actor: str, origin: str
) -> ImportReport:
    if checksum is not None:
        await asyncio.to_thread(whitelist.verify_checksum, data, checksum)
    # Up to 32 MB of XML: parsed in a worker thread, never on the event loop (the admin
    # console and the scheduled refresh run in a serving process).
    parsed = await asyncio.to_thread(whitelist.parse_whitelist, data)
    domains = len({entry.domain for entry in parsed.entries})
    async with app.db.write() as conn:
        current = await trust_repo.active_list(conn)
        unchanged = current is not None and current.sha256 == parsed.sha256
        if not unchanged:
            await trust_repo.replace_list(
                conn,
                generated_at=parsed.generated_at,
                imported_at=datetime.now(UTC),
                source=source,
                sha256=parsed.sha256,
                rows=[
                    trust_repo.DomainRow(
                        e.domain, e.dn, e.dn_key, e.description, e.support_contact, e.updated
                    )
                    for e in parsed.entries
                ],
            )
            await append(
                conn,
                AuditEvent(
                    actor=actor,
                    action="trust.import",
                    target=source[:200],
                    source=_origin(actor, origin),
                    details={
                        "domains": domains,
                        "entries": len(parsed.entries),
                        "rejected": len(parsed.rejected),
                        "sha256": parsed.sha256,
                    },
                ),
            )
    forget_snapshot(app)
    return ImportReport(
        parsed.generated_at, domains, len(parsed.entries), parsed.rejected, parsed.sha256, unchanged
    )


async def check_practice_admin(app: App) -> None:
    """The list is the node's, shared by every practice it serves: a practice's administrator
    (the admin console) may replace it only on a node that serves that practice alone; with
    several, the operator does (``caducee trust import``, ``[trust] list_url``)."""
    if len(await practices.list_practices(app)) > 1:
        raise AccessDenied(
            "Ce serveur héberge plusieurs cabinets : la liste blanche, commune à tous, est "
            "importée par l'exploitant (caducee trust import).",
            "This server hosts several practices: the whitelist, shared by all, is imported "
            "by the operator (caducee trust import).",
        )


def _checksum_missing() -> InvalidInput:
    return InvalidInput(
        "Indiquez l'empreinte SHA-256 de la liste (ou l'adresse de son fichier .sha256).",
        "Give the list's SHA-256 checksum (or its .sha256 file's address).",
    )


def _https_only(location: str) -> None:
    if not location.startswith("https://"):
        raise InvalidInput(
            "Seule une adresse https:// est acceptée ici (ou envoyez le fichier).",
            "Only an https:// address is accepted here (or upload the file).",
        )


async def import_from(
    app: App,
    location: str,
    *,
    checksum_location: str | None = None,
    checksum: str | None = None,
    actor: str = "system",
    origin: str = "",
    https_only: bool = False,
    require_checksum: bool = False,
    practice_admin: bool = False,
) -> ImportReport:
    """Read the list (and its checksum, given or read from ``checksum_location``) from a file
    or an http(s) URL, then :func:`import_whitelist`; a list that cannot be read is a refused
    import too (audited). ``https_only``: the admin console's rule for what the server
    fetches; ``require_checksum``: refuse a list without its checksum."""
    data: bytes | None = None
    try:
        if practice_admin:
            await check_practice_admin(app)
        if https_only:
            for address in (location, checksum_location or "https://"):
                _https_only(address)
        if require_checksum and not (checksum or "").strip() and not checksum_location:
            raise _checksum_missing()
        data = await read_source(location)
        if checksum_location and not checksum:
            checksum = (await read_source(checksum_location, 4096)).decode("ascii", "replace")
    except CaduceeError as error:
        await _audit_refusal(app, error, location, actor, origin, data)
        raise
    return await import_whitelist(
        app, data, checksum=checksum, source=location, actor=actor, origin=origin,
        practice_admin=practice_admin,
    )  # fmt: skip


async def status(app: App) -> TrustStatus:
    async with app.db.read() as conn:
        info = await trust_repo.active_list(conn)
    max_age = app.settings.trust_list_max_age_days
    stale = info is None or info.generated_at < datetime.now(UTC) - timedelta(days=max_age)
    return TrustStatus(info, stale, max_age)


async def entries(app: App, domain: str) -> list[trust_repo.DomainRow]:
    async with app.db.read() as conn:
        return await trust_repo.domain_entries(conn, domain.lower().rstrip("."))


@dataclass
class _Snapshot:
    """The active list in memory: checked against the database at most every
    ``[trust] snapshot_seconds`` (an import on another node shows within that delay)."""

    list_id: int | None = None
    checked_at: float = float("-inf")
    domains: dict[str, frozenset[str]] = field(default_factory=dict)
    dns: frozenset[str] = frozenset()


async def _snapshot(app: App) -> _Snapshot:
    snapshot = app.components.get("TrustSnapshot")
    if not isinstance(snapshot, _Snapshot):
        snapshot = _Snapshot()
        app.components["TrustSnapshot"] = snapshot
    now = time.monotonic()
    if now - snapshot.checked_at < app.settings.trust_snapshot_seconds:
        return snapshot
    async with app.db.read() as conn:
        list_id = await trust_repo.active_list_id(conn)
        if list_id != snapshot.list_id:
            rows = await trust_repo.all_entries(conn, list_id) if list_id is not None else []
            grouped: dict[str, set[str]] = {}
            for domain, dn_key in rows:
                grouped.setdefault(domain, set()).add(dn_key)
            snapshot.domains = {d: frozenset(keys) for d, keys in grouped.items()}
            snapshot.dns = frozenset(key for _, key in rows)
            snapshot.list_id = list_id
    snapshot.checked_at = now
    return snapshot


def forget_snapshot(app: App) -> None:
    """Drop this node's in-memory copy (after an import here)."""
    app.components.pop("TrustSnapshot", None)


async def is_listed(app: App, domain: str) -> bool:
    """Whether ``domain`` belongs to the trust space."""
    return domain.lower().rstrip(".") in (await _snapshot(app)).domains


async def allowed_dns(app: App, domain: str) -> frozenset[str]:
    """Canonical certificate DNs (see :func:`whitelist.canonical_dn`) listed for ``domain``."""
    return (await _snapshot(app)).domains.get(domain.lower().rstrip("."), frozenset())


async def dn_listed(app: App, dn_key: str) -> bool:
    """Whether a canonical DN is listed for any domain."""
    return dn_key in (await _snapshot(app)).dns


class TrustListRefresher:
    """Downloads ``trust_list_url`` every ``trust_list_refresh_hours``; a failed download or a
    bad file is logged and audited, and the last good list stays in force."""

    name = "trust-list"

    def __init__(self, app: App, *, first_delay: float = 30.0) -> None:
        self.app = app
        self.first_delay = first_delay

    async def refresh_once(self) -> ImportReport | None:
        settings = self.app.settings
        if not settings.trust_list_url:
            return None
        try:
            report = await import_from(
                self.app,
                settings.trust_list_url,
                checksum_location=settings.trust_list_checksum_url or None,
            )
        except (InvalidInput, TemporaryFailure) as exc:
            log.warning(
                "trust list refresh failed, keeping the current list error=%s",
                type(exc).__name__,
            )
            return None  # audited by the import (trust.import, failed)
        log.info(
            "trust list refreshed domains=%d unchanged=%s", report.domain_count, report.unchanged
        )
        return report

    async def run(self, stop: asyncio.Event) -> None:
        await periodic.repeat(
            stop,
            self.refresh_once,
            first_delay=self.first_delay,
            next_delay=lambda: max(60.0, self.app.settings.trust_list_refresh_hours * 3600.0),
            what="trust list refresh",
        )
