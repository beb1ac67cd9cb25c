"""The SMTP envelope as services see it (RFC 5321 §2.3.1, with RFC 3461 DSN parameters)."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Recipients of one message, whatever the door (SMTP, webmail, API): RFC 5321 §4.5.3.1.8 asks
#: every server to accept at least 100; more are refused (SMTP: 452 at RCPT).
MAX_RECIPIENTS = 100


@dataclass(frozen=True)
class EnvelopeRecipient:
    address: str
    #: RFC 3461 §4.1 NOTIFY: empty = not given; else a subset of NEVER, SUCCESS, FAILURE, DELAY.
    notify: tuple[str, ...] = ()
    #: RFC 3461 §4.2 ORCPT, kept verbatim ("rfc822;addr").
    orcpt: str | None = None


@dataclass(frozen=True)
class Envelope:
    mail_from: str  # "" for the null reverse-path <>
    recipients: tuple[EnvelopeRecipient, ...] = field(default_factory=tuple)
    envid: str | None = None  # RFC 3461 §4.4 ENVID (xtext-decoded)
    ret: str | None = None  # RFC 3461 §4.3 RET: FULL or HDRS
    smtputf8: bool = False  # RFC 6531
    body_8bitmime: bool = False  # RFC 6152


@dataclass(frozen=True)
class ClientInfo:
    """Who is talking to us, for Received headers, policies and the audit trail."""

    ip: str
    helo: str = ""
    tls: str = ""  # e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384", empty without TLS
    login: str = ""  # authenticated account, empty on the MX
    protocol: str = "ESMTP"  # RFC 3848 with-protocol: ESMTP, ESMTPS, ESMTPSA, UTF8SMTPS, ...
