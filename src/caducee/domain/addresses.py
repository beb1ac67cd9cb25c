"""Mail addresses and domain names as Caducée accepts them for its own mailboxes."""

from __future__ import annotations

import re

from caducee.errors import InvalidInput

# RFC 5321 §4.1.2 dot-atom local part, restricted to the characters mail clients handle well.
_LOCAL = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalize_domain(value: str) -> str:
    """A lower-case DNS domain with at least two labels (RFC 1035 §2.3.1 letters-digits-hyphen)."""
    domain = value.strip().lower().rstrip(".")
    labels = domain.split(".")
    if len(domain) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise InvalidInput(
            f"Nom de domaine invalide « {value} » (exemple attendu : cabinet-exemple.fr).",
            f"Invalid domain name '{value}' (expected e.g. cabinet-exemple.fr).",
        )
    return domain


def normalize_address(value: str) -> str:
    """A lower-case ``local@domain`` address for one of our mailboxes (RFC 5321 §4.5.3.1 sizes)."""
    address = value.strip().lower()
    local, at, domain = address.rpartition("@")
    if not at or not local or len(local) > 64 or not _LOCAL.match(local):
        raise InvalidInput(
            f"Adresse invalide « {value} » (exemple attendu : dr.martin@cabinet-exemple.fr).",
            f"Invalid address '{value}' (expected e.g. dr.martin@cabinet-exemple.fr).",
        )
    return f"{local}@{normalize_domain(domain)}"


def domain_of(address: str) -> str:
    return address.rpartition("@")[2]


#: What replaces a recipient's address in text kept after delivery (a remote reply quoting it).
HIDDEN_ADDRESS = "<destinataire>"


def pseudonym_form(address: str) -> str:
    """The form of an address its keyed pseudonym is computed from: trimmed, angle brackets
    removed, lower-cased (a local part differing only in case reaches the same mailbox in
    practice)."""
    return address.strip().strip("<>").strip().lower().rstrip(".")


def hide_address(text: str, address: str) -> str:
    """``text`` with ``address`` (in any case) replaced by :data:`HIDDEN_ADDRESS`."""
    value = pseudonym_form(address)
    if not value or not text:
        return text
    return re.sub(re.escape(value), HIDDEN_ADDRESS, text, flags=re.IGNORECASE)
