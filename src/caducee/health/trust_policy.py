"""What a mailbox of an MSSanté domain may write to (one rule for every door: SMTP submission,
webmail, API — all go through :func:`caducee.services.submission.submit`).

A PER, ORG or APP mailbox whose domain is listed in the whitelist is a mailbox of the trust
space: it writes to our own domains and to other trust-space domains only. Anything else is
refused with an explanation (the patient channel of a later issue will add its own way out).
Télétransmission (TLT) mailboxes and mailboxes of domains outside the trust space keep ordinary
mail rules.
"""

from __future__ import annotations

from collections.abc import Iterable

from caducee.app import App
from caducee.domain.addresses import domain_of
from caducee.domain.model import MailboxType
from caducee.errors import InvalidInput, NotFound, PolicyRejected
from caducee.health import trust_list
from caducee.services import mailboxes

#: Mailbox types bound to the trust space when their domain is listed.
BOUND_TYPES = frozenset({MailboxType.PER, MailboxType.ORG, MailboxType.APP})


async def bound_to_trust_space(app: App, sender: str) -> bool:
    """Whether ``sender`` is a PER/ORG/APP mailbox of ours on a listed (MSSanté) domain."""
    if not sender or not await trust_list.is_listed(app, domain_of(sender)):
        return False
    try:
        box = await mailboxes.get_mailbox(app, sender)
    except NotFound:
        return False
    return box.type in BOUND_TYPES


async def check_recipients(
    app: App, sender: str, recipients: Iterable[str], our_domains: set[str]
) -> None:
    """Raise :class:`PolicyRejected` when a trust-space mailbox writes outside the trust space."""
    outside = []
    for address in recipients:
        domain = domain_of(address)
        if domain in our_domains or await trust_list.is_listed(app, domain):
            continue
        outside.append(address)
    if not outside or not await bound_to_trust_space(app, sender):
        return
    listed = ", ".join(outside[:3]) + (" …" if len(outside) > 3 else "")
    raise PolicyRejected(
        f"{sender} est une messagerie de l'espace de confiance MSSanté : elle ne peut écrire "
        f"qu'à des adresses de l'espace de confiance. Destinataire(s) hors espace : {listed}. "
        "Pour un patient, utilisez le canal patient ; sinon, écrivez depuis une adresse hors "
        "MSSanté.",
        f"{sender} is an MSSanté trust-space mailbox: it may write only to trust-space "
        f"addresses. Recipient(s) outside: {listed}. For a patient, use the patient channel; "
        "otherwise write from a non-MSSanté address.",
    )


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
