"""How a message reaches one recipient, and what a server-written message is: the vocabulary of
the recipient rule (:mod:`caducee.health.recipient_policy`), kept free of I/O so that every
layer can name it."""

from __future__ import annotations

from enum import Enum


class Route(Enum):
    LOCAL = "local"  # a mailbox of one of our domains
    PATIENT = "patient"  # a verified patient: through the patient channel only
    TRUST = "trust"  # a domain of the MSSanté trust space
    OUTSIDE = "outside"  # ordinary email


class Purpose(Enum):
    """What a message is, for the recipient rule."""

    MAIL = "mail"  # what a user writes, or the server writes in a mailbox's name (receipts)
    PATIENT_NOTICE = "patient-notice"  # the patient channel's own notice (pickup, document)
    ADDRESS_VERIFICATION = "address-verification"  # the double opt-in link
    #: An automatic answer (RFC 3834: absence, acknowledgement, emergency numbers): no health
    #: content, so it may go straight to a verified patient's own address; anyone else under
    #: the mailbox's ordinary rule.
    AUTO_REPLY = "auto-reply"
