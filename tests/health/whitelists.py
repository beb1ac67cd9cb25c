"""Whitelist files in the MSSanté format, generated for tests (thousands of domains)."""

from __future__ import annotations

from xml.sax.saxutils import escape

from caducee.health.whitelist import NAMESPACE


def operator_dn(index: int) -> str:
    return f"CN=mx{index}.operateur{index % 97}.fr, OU=Messagerie, O=Operateur {index}, C=FR"


def whitelist_xml(
    entries: list[tuple[str, str]],
    *,
    generated: str = "2026-11-27T03:00:00",
    namespace: str = NAMESPACE,
) -> bytes:
    """The XML of a whitelist listing ``(domain, certificate DN)`` pairs."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<ListeBlancheMSSante xmlns="{namespace}">',
        f"<DateDeGeneration>{generated}</DateDeGeneration>",
        "<ListeDomaines>",
    ]
    for domain, dn in entries:
        parts.append(
            "<Domaine>"
            f"<Nom>{escape(domain)}</Nom>"
            f"<Description>Établissement {escape(domain)}</Description>"
            f"<DNCertificatOperateur>{escape(dn)}</DNCertificatOperateur>"
            "<ResponsableContact>responsable@operateur.fr</ResponsableContact>"
            "<SupportContact>support@operateur.fr</SupportContact>"
            "<DateMAJ>2026-10-01</DateMAJ>"
            "</Domaine>"
        )
    parts += ["</ListeDomaines>", "</ListeBlancheMSSante>"]
    return "\n".join(parts).encode()


def national_list(count: int = 5000, **options: str) -> bytes:
    """``count`` domains, every tenth one served by two operator certificates."""
    entries: list[tuple[str, str]] = []
    for index in range(count):
        domain = f"etab{index}.mssante.fr"
        entries.append((domain, operator_dn(index)))
        if index % 10 == 0:
            entries.append((domain, operator_dn(index + 100_000)))
    return whitelist_xml(entries, **options)
