"""Inbound mail from a domain of the MSSanté trust space: the connection must be the listed
operator's (mutual TLS, see :mod:`caducee.health.trust_tls`). Called by the MX at MAIL FROM."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cryptography import x509

from caducee.app import App
from caducee.health import trust_list
from caducee.health.trust_tls import Refusal, TrustStore, check_peer, load_trust_store
from caducee.health.whitelist import canonical_name
from caducee.services.audit import AuditEvent, record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeerTls:
    """What the MX knows of a connection's TLS: ``version`` None without TLS."""

    version: str | None
    cipher: str | None
    certificate: bytes | None  # DER of the client certificate, if one was presented

    @classmethod
    def from_description(cls, description: str, certificate: bytes | None) -> PeerTls:
        """From a session's ``"TLSv1.3 TLS_AES_256_GCM_SHA384"`` ("" without TLS)."""
        if not description:
            return cls(None, None, None)
        version, _, cipher = description.partition(" ")
        return cls(version, cipher or None, certificate)


def _store(app: App) -> TrustStore:
    cached = app.components.get("TrustStore")
    if isinstance(cached, TrustStore):
        return cached
    store = load_trust_store(app.settings)
    app.components["TrustStore"] = store
    return store


async def _listed_operator(app: App, peer: PeerTls) -> bool:
    """Whether the connection presents a valid trust-store certificate listed for any domain."""
    if peer.certificate is None:
        return False
    refusal = check_peer(_store(app), "", frozenset(), peer.certificate, peer.version, peer.cipher)
    if refusal is not None and refusal.reason != "dn-mismatch":
        return False
    key = canonical_name(x509.load_der_x509_certificate(peer.certificate).subject)
    return await trust_list.dn_listed(app, key)


def _refused(fr: str, en: str, reason: str) -> Refusal:
    return Refusal("5.7.1", fr, en, reason)


async def check_recipient_domain(
    app: App, sender: str, recipient: str, peer: PeerTls, ip: str
) -> Refusal | None:
    """A listed domain of ours (an MSSanté domain) receives only from the trust space: from a
    listed sender domain (whose connection :func:`check_sender_domain` already checked), or a
    null sender (delivery reports) over a connection of a listed operator."""
    rcpt_domain = recipient.rpartition("@")[2].lower().rstrip(".")
    if not await trust_list.is_listed(app, rcpt_domain):
        return None
    sender_domain = sender.rpartition("@")[2].lower().rstrip(".") if sender else ""
    if sender_domain:
        if await trust_list.is_listed(app, sender_domain):
            return None
        refusal = _refused(
            f"{rcpt_domain} est une messagerie de l'espace de confiance MSSanté : elle ne reçoit "
            f"pas de courrier de {sender_domain}, domaine hors de l'espace de confiance.",
            f"{rcpt_domain} is an MSSanté trust-space mailbox: it does not accept mail from "
            f"{sender_domain}, a domain outside the trust space.",
            "sender-outside",
        )
    elif not await _listed_operator(app, peer):
        refusal = _refused(
            "Espace de confiance MSSanté : notification de remise acceptée seulement d'un "
            "opérateur listé, en TLS mutuel.",
            "MSSanté trust space: delivery reports are accepted only from a listed operator, "
            "over mutual TLS.",
            "report-outside",
        )
    else:
        refusal = None
    if refusal is not None:
        await _audit(app, rcpt_domain, refusal, peer, ip)
    return refusal


async def _audit(app: App, domain: str, refusal: Refusal, peer: PeerTls, ip: str) -> None:
    log.info("trust space refusal domain=%s reason=%s ip=%s", domain, refusal.reason, ip)
    await record(
        app.db,
        AuditEvent(
            actor=f"mx:{domain}",
            action="trust.inbound",
            target=domain,
            source=ip,
            result="denied",
            details={"reason": refusal.reason, "tls": peer.version or "none"},
        ),
    )


async def check_sender_domain(app: App, domain: str, peer: PeerTls, ip: str) -> Refusal | None:
    """None when ``domain`` is outside the trust space or the connection is its operator's;
    otherwise the refusal, audited (``trust.inbound`` denied, with the reason)."""
    domain = domain.lower().rstrip(".")
    if not domain:
        return None
    allowed = await trust_list.allowed_dns(app, domain)
    if not allowed:
        return None
    refusal = check_peer(_store(app), domain, allowed, peer.certificate, peer.version, peer.cipher)
    if refusal is not None:
        await _audit(app, domain, refusal, peer, ip)
    return refusal
