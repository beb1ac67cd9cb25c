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

from collections.abc import Sequence

from caducee.app import App
from caducee.domain.addresses import domain_of
from caducee.domain.model import Mailbox, MailboxType
from caducee.errors import InvalidInput
from caducee.health import trust_list

#: Mailbox types bound to the trust space when their domain is listed.
BOUND_TYPES = frozenset({MailboxType.PER, MailboxType.ORG, MailboxType.APP})


async def mailbox_bound(app: App, box: Mailbox) -> bool:
    """Whether ``box`` is a PER/ORG/APP mailbox on a listed (MSSanté) domain."""
    return box.type in BOUND_TYPES and await trust_list.is_listed(app, domain_of(box.address))


#: Default product reference of the ``X-MSS-NIL`` header (configurable: ``[trust] product``).
PRODUCT_REFERENCE = "Caducee"


def check_mss_headers(mes_values: Sequence[str]) -> None:
    """``X-MSS-MES`` (its values, as submitted) takes only the value ``FIN`` (close an exchange
    with a patient's Mon espace santé address); anything else is refused rather than passed
    on."""
    for value in mes_values:
        if value.strip().upper() != "FIN":
            raise InvalidInput(
                "En-tête X-MSS-MES invalide : seule la valeur FIN est admise.",
                "Invalid X-MSS-MES header: only the value FIN is allowed.",
            )


def mssante_headers(app: App, *, trust_bound: bool, has_nil: bool) -> bytes:
    """Header lines to prepend to a message a trust-space mailbox (``trust_bound``) submits:
    ``X-MSS-NIL`` (the product reference) unless the client already set it (``has_nil``)."""
    if not trust_bound or has_nil:
        return b""
    reference = app.settings.mssante_product or PRODUCT_REFERENCE
    return f"X-MSS-NIL: {reference}\r\n".encode("ascii", "replace")
