"""What an SMTP session knows about its client and its current mail transaction.

The session (the protocol engine) keeps these up to date; handler hooks read them to apply
policy and to build the :class:`~caducee.services.envelope.ClientInfo` that services receive.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from caducee.protocols.smtp.parser import Mail
from caducee.services.envelope import ClientInfo, Envelope, EnvelopeRecipient


@dataclass
class SessionInfo:
    listener: str  # "smtp", "submission" or "submissions"
    ip: str
    helo: str = ""  # the EHLO/HELO argument; "" before it (and again after STARTTLS)
    esmtp: bool = False  # EHLO (True) or HELO (False)
    tls: str = ""  # e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384"; "" without TLS
    login: str = ""  # the authenticated account, "" before AUTH
    peer_certificate: bytes | None = None  # DER of the TLS client certificate, if presented

    def protocol(self, smtputf8: bool = False) -> str:
        """RFC 3848 / RFC 6531 §3.7.3 "with" protocol type for the Received header."""
        if not self.esmtp:
            return "SMTP"
        base = "UTF8SMTP" if smtputf8 else "ESMTP"
        return base + ("S" if self.tls else "") + ("A" if self.login else "")

    def client(self, smtputf8: bool = False) -> ClientInfo:
        return ClientInfo(
            ip=self.ip,
            helo=self.helo,
            tls=self.tls,
            login=self.login,
            protocol=self.protocol(smtputf8),
        )


@dataclass
class Transaction:
    """One mail transaction (RFC 5321 §3.3): from an accepted MAIL to the end of DATA or RSET."""

    mail: Mail
    mail_from: str  # as the handler accepted it (normalised), "" for <>
    recipients: list[EnvelopeRecipient] = field(default_factory=list)
    #: Accepted RCPT commands, repeats included (what the recipient limit counts).
    accepted_rcpts: int = 0
    #: Scratch space for the handler within this transaction (e.g. our domains, looked up once).
    context: dict[str, object] = field(default_factory=dict)
    #: The message received so far by BDAT (RFC 3030); None while no chunk came.
    chunks: bytearray | None = None

    def add_recipient(self, recipient: EnvelopeRecipient) -> None:
        """Record an accepted recipient; the same address twice is kept once."""
        self.accepted_rcpts += 1
        if all(r.address.lower() != recipient.address.lower() for r in self.recipients):
            self.recipients.append(recipient)

    def envelope(self) -> Envelope:
        params = self.mail.params
        return Envelope(
            mail_from=self.mail_from,
            recipients=tuple(self.recipients),
            envid=params.envid,
            ret=params.ret,
            smtputf8=params.smtputf8,
            body_8bitmime=params.body == "8BITMIME",
        )
