"""Mail arriving from other servers (the MX door): recipient checks, then local delivery."""

from __future__ import annotations

from caducee.app import App
from caducee.domain.addresses import domain_of, normalize_address
from caducee.errors import InvalidInput, NotFound, QuotaExceeded
from caducee.services.delivery import deliver_local
from caducee.services.envelope import ClientInfo, Envelope
from caducee.services.received import received_header
from caducee.store import directory_repo as repo


def unknown_recipient(address: str) -> NotFound:
    return NotFound(
        f"Destinataire inconnu : {address} n'existe pas sur ce serveur.",
        f"Unknown recipient: {address} does not exist on this server.",
    )


async def check_recipient(app: App, address: str, size_hint: int = 0) -> str:
    """RCPT TO on the MX: the normalised address if we accept mail for it.

    Raises :class:`NotFound` (SMTP 550 5.1.1) for an address that is not one of our mailboxes,
    whatever the domain (we are not an open relay), and :class:`QuotaExceeded` (452 4.2.2) when
    the mailbox cannot take ``size_hint`` more bytes (RFC 1870 SIZE, or 0).
    """
    try:
        clean = normalize_address(address)
    except InvalidInput:
        raise unknown_recipient(address) from None
    async with app.db.read() as conn:
        mailbox = await repo.mailbox_by_address(conn, clean)
    if mailbox is None or mailbox.disabled:
        raise unknown_recipient(clean)
    if mailbox.used_bytes + max(size_hint, 1) > mailbox.quota_bytes:
        raise QuotaExceeded(
            f"La boîte {clean} est pleine ; réessayez plus tard.",
            f"Mailbox {clean} is full; try again later.",
        )
    return clean


async def our_domains(app: App) -> set[str]:
    async with app.db.read() as conn:
        return set(await repo.all_domains(conn))


async def receive(app: App, envelope: Envelope, raw: bytes, client: ClientInfo) -> None:
    """Deliver a message accepted by the MX to each local recipient's Inbox.

    A trace header is prepended (RFC 5321 §4.4). Returns once every copy is durably stored.
    """
    recipients = [r.address for r in envelope.recipients]
    single = recipients[0] if len(recipients) == 1 else None
    stamped = received_header(app.settings.hostname, client, single) + raw
    await deliver_local(app, stamped, recipients)


def is_local_domain(domains: set[str], address: str) -> bool:
    return domain_of(address.lower()) in domains
