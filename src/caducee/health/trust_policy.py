"""The MSSanté rules of a trust-space mailbox's own messages: which mailboxes are bound to the
trust space, the ``X-MSS-NIL`` and ``X-MSS-MES`` headers.

A PER, ORG or APP mailbox whose domain is listed in the whitelist is a mailbox of the trust
space: it writes to our own domains, to other trust-space domains and to verified patients
(through the patient channel) only — the recipient rule itself is
:mod:`caducee.health.recipient_policy`, which every door and every server-written message
goes through. Télétransmission (TLT) mailboxes and mailboxes of domains outside the trust space
keep ordinary mail rules.
"""

from __future__ import annotations

from caducee.app import App
from caducee.domain.addresses import domain_of
from caducee.domain.model import Mailbox, MailboxType
from caducee.errors import InvalidInput, NotFound
from caducee.health import trust_list
from caducee.services import mailboxes

#: Mailbox types bound to the trust space when their domain is listed.
BOUND_TYPES = frozenset({MailboxType.PER, MailboxType.ORG, MailboxType.APP})


async def mailbox_bound(app: App, box: Mailbox) -> bool:
    """Whether ``box`` is a PER/ORG/APP mailbox on a listed (MSSanté) domain."""
    return box.type in BOUND_TYPES and await trust_list.is_listed(app, domain_of(box.address))


async def bound_to_trust_space(app: App, sender: str) -> bool:
    """Whether ``sender`` is a PER/ORG/APP mailbox of ours on a listed (MSSanté) domain."""
    if not sender:
        return False
    try:
        box = await mailboxes.get_mailbox(app, sender)
    except (NotFound, InvalidInput):
        return False
    return await mailbox_bound(app, box)


#: Default product reference of the ``X-MSS-NIL`` header (configurable: ``[trust] product``).
PRODUCT_REFERENCE = "Caducee"


def check_mss_headers(raw: bytes) -> None:
    """``X-MSS-MES`` takes only the value ``FIN`` (close an exchange with a patient's Mon espace
    santé address); anything else is refused rather than passed on."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"x-mss-mes" and value.strip().upper() != b"FIN":
            raise InvalidInput(
                "En-tête X-MSS-MES invalide : seule la valeur FIN est admise.",
                "Invalid X-MSS-MES header: only the value FIN is allowed.",
            )


async def mssante_headers(app: App, sender: str, raw: bytes) -> bytes:
    """Header lines to prepend to a message a trust-space mailbox submits: ``X-MSS-NIL`` (the
    product reference) unless the client already set it."""
    if not await bound_to_trust_space(app, sender):
        return b""
    head = raw.split(b"\r\n\r\n", 1)[0].lower()
    if head.startswith(b"x-mss-nil:") or b"\r\nx-mss-nil:" in head:
        return b""
    reference = app.settings.mssante_product or PRODUCT_REFERENCE
    return f"X-MSS-NIL: {reference}\r\n".encode("ascii", "replace")
