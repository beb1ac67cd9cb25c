"""Limits of one SMTP listener: sizes, timeouts, counts, per-client-address admission.

Values follow RFC 5321 §4.5.3 (minimums every server must accept) and §4.5.3.2 (timeouts);
the defaults are what a small practice's server needs and an abusive client cannot exploit.
"""

from __future__ import annotations

from dataclasses import dataclass

from caducee.config import Settings
from caducee.protocols.tcp import ClientLimits
from caducee.services.envelope import MAX_RECIPIENTS

#: RFC 5321 §4.5.3.1.4: a command line is at most 512 octets, CRLF included.
COMMAND_LINE_MAX = 512
#: Extensions lengthen MAIL and RCPT: SIZE +26 (RFC 1870 §8), BODY +14 (RFC 6152), SMTPUTF8
#: +10 (RFC 6531 §3.4), RET and ENVID +120 and NOTIFY and ORCPT +530 (RFC 3461 §5), AUTH= +500
#: (RFC 4954 §5). We accept this much and say "line too long" beyond.
MAIL_LINE_MAX = COMMAND_LINE_MAX + 26 + 14 + 10 + 120 + 500
RCPT_LINE_MAX = COMMAND_LINE_MAX + 530
#: RFC 4954 §4: AUTH command lines and SASL responses up to 12,288 octets.
AUTH_LINE_MAX = 12288
#: The longest line the session reads at all; longer ones are discarded as they arrive.
READ_LINE_MAX = AUTH_LINE_MAX + 2
#: RFC 5322 §2.1.1: a header line is at most 998 octets, CRLF excluded.
HEADER_LINE_MAX = 998
#: More header fields than this is an abuse (parsers of every later reader suffer): 552 5.3.4.
MAX_HEADER_FIELDS = 1000
#: RFC 5321 §4.5.3.1.8: at least 100 recipients per message must be accepted; more get 452
#: (:data:`caducee.services.envelope.MAX_RECIPIENTS`, the limit of every door).
#: Bad commands (syntax, sequence, refused recipients, failed AUTH) before 421 and close.
MAX_ERRORS = 10
#: RFC 5321 §4.5.3.2.7: the server waits at least 5 minutes for the next command.
IDLE_TIMEOUT = 300.0
#: RFC 5321 §4.5.3.2.5-6: up to 10 minutes between data blocks and for the terminating dot.
DATA_TIMEOUT = 600.0
#: Per client address: simultaneous connections and new connections per minute.
MAX_CONNECTIONS_PER_IP = 20
CONNECTIONS_PER_MINUTE = 120


@dataclass(frozen=True)
class SmtpLimits:
    """Every limit of one SMTP listener (see the module constants for the reasons)."""

    max_message_bytes: int = 25 * 1024 * 1024
    idle_timeout: float = IDLE_TIMEOUT
    data_timeout: float = DATA_TIMEOUT
    max_recipients: int = MAX_RECIPIENTS
    max_errors: int = MAX_ERRORS
    max_header_fields: int = MAX_HEADER_FIELDS
    max_connections_per_ip: int = MAX_CONNECTIONS_PER_IP
    connections_per_minute: int = CONNECTIONS_PER_MINUTE

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpLimits:
        return cls(
            max_message_bytes=settings.max_message_bytes,
            idle_timeout=float(settings.smtp_idle_timeout_seconds),
            data_timeout=float(settings.smtp_data_timeout_seconds),
            max_connections_per_ip=settings.connections_per_address,
            connections_per_minute=settings.connections_per_minute,
        )

    def client_limits(self) -> ClientLimits:
        """Per-address admission (token bucket + concurrent count), shared TCP plumbing."""
        return ClientLimits(
            max_connections_per_ip=self.max_connections_per_ip,
            connections_per_minute=self.connections_per_minute,
        )


def line_limit(verb: str) -> int:
    """The longest line (CRLF included) accepted for a command ``verb`` (upper-case)."""
    if verb == "AUTH":
        return AUTH_LINE_MAX
    if verb == "MAIL":
        return MAIL_LINE_MAX
    if verb == "RCPT":
        return RCPT_LINE_MAX
    return COMMAND_LINE_MAX
