"""The MSSanté whitelist (*liste blanche*): safe parsing and distinguished-name matching.

The list is an XML document in the namespace ``https://listeblanche.mssante.fr/schema``::

    <ListeBlancheMSSante xmlns="https://listeblanche.mssante.fr/schema">
      <DateDeGeneration>2026-11-27T03:00:00</DateDeGeneration>
      <ListeDomaines>
        <Domaine>
          <Nom>hopital-exemple.mssante.fr</Nom>
          <Description>…</Description>
          <DNCertificatOperateur>CN=mx.operateur.fr, OU=…, O=…, C=FR</DNCertificatOperateur>
          <ResponsableContact>…</ResponsableContact>
          <SupportContact>…</SupportContact>
          <DateMAJ>2026-10-01</DateMAJ>
        </Domaine>
        …

A domain may appear several times, once per certificate DN of its operator. This module is pure
(no I/O): it turns bytes into a :class:`Whitelist` or raises :class:`InvalidInput` with a French
reason. Parsing refuses DTDs, entities and external references (defusedxml) and bounds the size.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from xml.etree.ElementTree import Element
from zoneinfo import ZoneInfo

import defusedxml.ElementTree as SafeET
from cryptography import x509
from cryptography.x509.oid import NameOID

from caducee.errors import InvalidInput

NAMESPACE = "https://listeblanche.mssante.fr/schema"
#: Largest whitelist accepted (the national list is a few MB).
MAX_BYTES = 32 * 1024 * 1024
#: Largest number of ``Domaine`` entries accepted.
MAX_ENTRIES = 200_000
_PARIS = ZoneInfo("Europe/Paris")
_DOMAIN = re.compile(r"^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))+$")

#: Attribute types as written in DNs, mapped to one spelling (RFC 4514 §3 and OpenSSL's).
_TYPE_ALIASES = {
    "S": "ST",
    "E": "EMAILADDRESS",
    "EMAIL": "EMAILADDRESS",
    "SN": "SURNAME",
    "SERIALNUMBER": "SERIALNUMBER",
    "2.5.4.5": "SERIALNUMBER",
    "1.2.840.113549.1.9.1": "EMAILADDRESS",
}
_OID_NAMES = {
    NameOID.COMMON_NAME: "CN",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.COUNTRY_NAME: "C",
    NameOID.EMAIL_ADDRESS: "EMAILADDRESS",
    NameOID.SERIAL_NUMBER: "SERIALNUMBER",
    NameOID.SURNAME: "SURNAME",
    NameOID.GIVEN_NAME: "GN",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.ORGANIZATION_IDENTIFIER: "ORGANIZATIONIDENTIFIER",
}


@dataclass(frozen=True)
class Entry:
    """One ``Domaine`` element: a domain and one certificate DN of its operator."""

    domain: str
    dn: str  # as written in the list
    dn_key: str  # canonical form, see :func:`canonical_dn`
    description: str = ""
    support_contact: str = ""
    updated: str = ""


@dataclass
class Whitelist:
    generated_at: datetime
    entries: list[Entry]
    sha256: str
    #: Entries skipped, with the reason (line of the report shown to the operator).
    rejected: list[str] = field(default_factory=list)

    def domains(self) -> dict[str, frozenset[str]]:
        """Domain → set of canonical DNs allowed for it."""
        allowed: dict[str, set[str]] = {}
        for entry in self.entries:
            allowed.setdefault(entry.domain, set()).add(entry.dn_key)
        return {domain: frozenset(dns) for domain, dns in allowed.items()}


def _normalise_value(value: str) -> str:
    return " ".join(value.split()).casefold()


def _split_rdns(text: str) -> list[str]:
    """Split a DN on ``,`` ``;`` or ``/`` (OpenSSL one-line form), honouring backslash escapes
    and double quotes (RFC 4514 §2.4, RFC 1779 quoting)."""
    text = text.strip()
    separators = ",;"
    if text.startswith("/"):
        text, separators = text[1:], "/"
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char in separators and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def canonical_dn(text: str) -> str:
    """A comparable form of a DN written in the whitelist: attribute types in upper case with
    aliases folded, values with spaces collapsed and case folded, RDNs sorted (lists write them
    in either order). Raises :class:`InvalidInput` when it is not a DN."""
    pairs: list[tuple[str, str]] = []
    for part in _split_rdns(text):
        if not part.strip():
            continue
        # A multi-valued RDN (a+b) counts as its attributes.
        for atom in part.split("+"):
            name, sep, value = atom.partition("=")
            name = name.strip().upper()
            if not sep or not name or not value.strip():
                raise InvalidInput(
                    f"DN de certificat illisible : « {text[:200]} ».",
                    f"Unreadable certificate DN: '{text[:200]}'.",
                )
            pairs.append((_TYPE_ALIASES.get(name, name), _normalise_value(value)))
    if not pairs:
        raise InvalidInput("DN de certificat vide.", "Empty certificate DN.")
    return ",".join(f"{name}={value}" for name, value in sorted(pairs))


def canonical_name(name: x509.Name) -> str:
    """The canonical form (see :func:`canonical_dn`) of a certificate's subject."""
    pairs = []
    for attribute in name:
        label = _OID_NAMES.get(attribute.oid, attribute.oid.dotted_string)
        value = attribute.value if isinstance(attribute.value, str) else attribute.value.hex()
        pairs.append((_TYPE_ALIASES.get(label, label), _normalise_value(value)))
    return ",".join(f"{label}={value}" for label, value in sorted(pairs))


def _local(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag


def _child_text(element: Element, name: str) -> str:
    for child in element:
        if _local(child.tag)[1] == name:
            return (child.text or "").strip()
    return ""


def _parse_date(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"DateDeGeneration illisible : « {text[:50]} » (date ISO 8601 attendue).",
            f"Unreadable DateDeGeneration: '{text[:50]}' (ISO 8601 date expected).",
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=_PARIS)  # the list is generated in France
    return value.astimezone(UTC)


def verify_checksum(data: bytes, checksum_text: str) -> None:
    """Check ``data`` against a SHA-256 checksum file (the hex digest, optionally followed by a
    file name as ``sha256sum`` writes it). Raises :class:`InvalidInput` on mismatch."""
    words = checksum_text.strip().split()
    expected = words[0].lower() if words else ""
    if not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise InvalidInput(
            "Fichier d'empreinte illisible : une empreinte SHA-256 hexadécimale est attendue.",
            "Unreadable checksum file: a hexadecimal SHA-256 digest is expected.",
        )
    actual = hashlib.sha256(data).hexdigest()
    if not hmac.compare_digest(actual, expected):
        raise InvalidInput(
            "L'empreinte SHA-256 de la liste blanche ne correspond pas : fichier altéré ou "
            "incomplet ; la liste en place est conservée.",
            "The whitelist's SHA-256 checksum does not match: file altered or truncated; the "
            "current list is kept.",
        )


def parse_whitelist(data: bytes, *, max_bytes: int = MAX_BYTES) -> Whitelist:
    """Parse the whitelist XML. Entries with an invalid domain or DN are skipped and reported;
    a document without any valid entry is refused."""
    if len(data) > max_bytes:
        raise InvalidInput(
            f"Liste blanche trop grande ({len(data)} octets ; limite {max_bytes}).",
            f"Whitelist too large ({len(data)} bytes; limit {max_bytes}).",
        )
    try:
        root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except SafeET.ParseError as exc:
        raise InvalidInput(
            f"Liste blanche : XML invalide ({exc}).", f"Whitelist: invalid XML ({exc})."
        ) from None
    except Exception as exc:  # defusedxml's DTDForbidden, EntitiesForbidden, ...
        raise InvalidInput(
            "Liste blanche refusée : DTD, entités et références externes sont interdites "
            f"({type(exc).__name__}).",
            f"Whitelist refused: DTDs, entities and external references are forbidden "
            f"({type(exc).__name__}).",
        ) from None
    namespace, local = _local(root.tag)
    if local != "ListeBlancheMSSante" or namespace not in (NAMESPACE, ""):
        raise InvalidInput(
            f"Ce document n'est pas une liste blanche MSSanté (racine « {local} », espace de "
            f"noms « {namespace} »).",
            f"This document is not an MSSanté whitelist (root '{local}', namespace '{namespace}').",
        )
    generated = _child_text(root, "DateDeGeneration")
    if not generated:
        raise InvalidInput(
            "Liste blanche sans DateDeGeneration.", "Whitelist without DateDeGeneration."
        )
    generated_at = _parse_date(generated)
    entries: list[Entry] = []
    rejected: list[str] = []
    domains_elements = [c for c in root if _local(c.tag)[1] == "ListeDomaines"]
    position = 0
    for holder in domains_elements:
        for element in holder:
            if _local(element.tag)[1] != "Domaine":
                continue
            position += 1
            if position > MAX_ENTRIES:
                raise InvalidInput(
                    f"Liste blanche : plus de {MAX_ENTRIES} domaines.",
                    f"Whitelist: more than {MAX_ENTRIES} domains.",
                )
            name = _child_text(element, "Nom").lower().rstrip(".")
            dn = _child_text(element, "DNCertificatOperateur")
            if not _DOMAIN.match(name):
                rejected.append(f"#{position}: domaine invalide / invalid domain {name[:100]!r}")
                continue
            try:
                key = canonical_dn(dn)
            except InvalidInput:
                rejected.append(f"#{position} {name}: DN invalide / invalid DN {dn[:100]!r}")
                continue
            entries.append(
                Entry(
                    domain=name,
                    dn=dn[:1000],
                    dn_key=key[:1000],
                    description=_child_text(element, "Description")[:500],
                    support_contact=_child_text(element, "SupportContact")[:500],
                    updated=_child_text(element, "DateMAJ")[:50],
                )
            )
    if not entries:
        raise InvalidInput(
            "Liste blanche sans aucun domaine valide ; la liste en place est conservée.",
            "Whitelist without any valid domain; the current list is kept.",
        )
    return Whitelist(generated_at, entries, hashlib.sha256(data).hexdigest(), rejected)
