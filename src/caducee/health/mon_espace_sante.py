"""Mon espace santé: a patient's ``<INS>@patient.mssante.fr`` address, reached through the
MSSanté trust space (``patient.mssante.fr`` is a domain of the trust list).

The rules of the national service, applied here:

- only the practitioner starts an exchange: mail from such an address is accepted only as
  a reply (In-Reply-To / References) to a message one of our mailboxes sent to that very
  address; anything else is refused (550 5.7.1) with the reason;
- ``X-MSS-MES: FIN`` (and a ``[FIN]`` subject, which the webmail adds) closes the exchange:
  the sender's trace records it (« échange clos ») and a later reply in that thread is
  refused;
- messages are limited to 25 MB (the MSSanté limit; our default ``max_message_bytes``).
"""

from __future__ import annotations

import re
from email.parser import BytesHeaderParser
from email.policy import compat32

from caducee.app import App
from caducee.domain.addresses import domain_of
from caducee.domain.mime_structure import header_end
from caducee.errors import PolicyRejected
from caducee.services import trace

MES_DOMAIN = "patient.mssante.fr"
MES_MAX_BYTES = 25 * 1024 * 1024
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,900}>")


def is_mes_address(address: str) -> bool:
    return domain_of(address.lower()) == MES_DOMAIN


def closes_exchange(raw: bytes) -> bool:
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw[: header_end(raw)])
    fin = str(headers.get("X-MSS-MES", "")).strip().upper() == "FIN"
    return fin or "[FIN]" in str(headers.get("Subject", "")).upper()


def _referenced(raw: bytes) -> list[str]:
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw[: header_end(raw)])
    text = " ".join(str(headers.get(name, "")) for name in ("In-Reply-To", "References"))
    keys = [trace.trace_key(found) for found in _MESSAGE_ID.findall(text)[:50]]
    return [key for key in keys if key is not None]


async def record_sent(
    app: App, mailbox_id: int, message_id: str, recipients: list[str], raw: bytes
) -> None:
    """After a message left for Mon espace santé addresses: « échange clos » when it ends it."""
    targets = [r for r in recipients if is_mes_address(r)]
    key = trace.trace_key(message_id)
    if not targets or key is None or not closes_exchange(raw):
        return
    async with app.db.write() as conn:
        for address in targets:
            await trace.record(app, conn, mailbox_id, key, address, "closed", "X-MSS-MES: FIN")


async def check_inbound(app: App, sender: str, raw: bytes) -> None:
    """Mail from a Mon espace santé address: only a reply to us, in a thread still open."""
    if not is_mes_address(sender):
        return
    if len(raw) > MES_MAX_BYTES:
        raise PolicyRejected(
            "Mon espace santé : 25 Mo au plus par message.",
            "Mon espace santé: at most 25 MB per message.",
        )
    rows = await trace.sent_to(app, _referenced(raw), sender)
    if not rows:
        raise PolicyRejected(
            "Mon espace santé : seul le professionnel peut commencer un échange ; ce message "
            "ne répond à aucun message envoyé à cette adresse.",
            "Mon espace santé: only the health professional may start an exchange; this "
            "message replies to no message sent to this address.",
        )
    if any(event == "closed" for _, event in rows):
        raise PolicyRejected(
            "Mon espace santé : le professionnel a clos cet échange (X-MSS-MES: FIN).",
            "Mon espace santé: the health professional closed this exchange (X-MSS-MES: FIN).",
        )
