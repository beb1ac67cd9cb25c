"""Parsing the MSSanté whitelist: the format, DN matching, and hostile documents."""

from __future__ import annotations

import hashlib

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from caducee.errors import InvalidInput
from caducee.health.whitelist import (
    canonical_dn,
    canonical_name,
    parse_whitelist,
    verify_checksum,
)
from tests.health.whitelists import national_list, operator_dn, whitelist_xml


def test_national_list_parses_every_domain_and_certificate() -> None:
    parsed = parse_whitelist(national_list(5000))
    domains = parsed.domains()
    assert len(domains) == 5000 and len(parsed.entries) == 5500
    assert domains["etab10.mssante.fr"] == {
        canonical_dn(operator_dn(10)),
        canonical_dn(operator_dn(100_010)),
    }
    assert parsed.generated_at.isoformat() == "2026-11-27T02:00:00+00:00"  # Paris time, UTC+1
    assert parsed.entries[0].description == "Établissement etab0.mssante.fr"
    assert not parsed.rejected


def test_dn_written_in_any_order_or_spacing_matches_the_certificate_subject() -> None:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Opérateur Santé"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Messagerie"),
            x509.NameAttribute(NameOID.COMMON_NAME, "mx.operateur.fr"),
        ]
    )
    key = canonical_name(subject)
    assert canonical_dn("CN=mx.operateur.fr, OU=Messagerie, O=Opérateur Santé, C=FR") == key
    assert canonical_dn("C=FR,O=Opérateur  Santé,OU=Messagerie,CN=MX.operateur.fr") == key
    assert canonical_dn("/C=FR/O=Opérateur Santé/OU=Messagerie/CN=mx.operateur.fr") == key
    assert canonical_dn("C=FR; O=Opérateur Santé; OU=Messagerie; CN=mx.operateur.fr") == key
    assert canonical_dn("CN=autre.operateur.fr, OU=Messagerie, O=Opérateur Santé, C=FR") != key
    assert canonical_dn('CN=mx.operateur.fr, O="Opérateur, Santé", C=FR') != key
    assert canonical_dn('O="Opérateur, Santé"') == "O=opérateur, santé"


@pytest.mark.parametrize("dn", ["", "CN", "=x", "CN=", "  ,  "])
def test_unreadable_dn_is_refused(dn: str) -> None:
    with pytest.raises(InvalidInput):
        canonical_dn(dn)


def test_bad_entries_are_skipped_and_reported() -> None:
    data = whitelist_xml(
        [
            ("bon.mssante.fr", operator_dn(1)),
            ("pas un domaine", operator_dn(2)),
            ("sans-dn.mssante.fr", ""),
            ("-tiret.mssante.fr", operator_dn(3)),
        ]
    )
    parsed = parse_whitelist(data)
    assert list(parsed.domains()) == ["bon.mssante.fr"]
    assert len(parsed.rejected) == 3
    assert any("pas un domaine" in line for line in parsed.rejected)


def test_list_without_valid_domain_is_refused() -> None:
    with pytest.raises(InvalidInput, match="aucun domaine valide"):
        parse_whitelist(whitelist_xml([("pas un domaine", operator_dn(1))]))


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (b"<pas du xml", "XML invalide"),
        (
            b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
            b'<ListeBlancheMSSante xmlns="https://listeblanche.mssante.fr/schema">'
            b"<DateDeGeneration>&b;</DateDeGeneration></ListeBlancheMSSante>",
            "DTD, entités",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b"<ListeBlancheMSSante><DateDeGeneration>&x;</DateDeGeneration>"
            b"</ListeBlancheMSSante>",
            "DTD, entités",
        ),
        (b'<Autre xmlns="https://listeblanche.mssante.fr/schema"/>', "pas une liste blanche"),
        (
            whitelist_xml([("a.mssante.fr", operator_dn(1))], namespace="urn:autre"),
            "pas une liste blanche",
        ),
        (
            whitelist_xml([("a.mssante.fr", operator_dn(1))], generated="hier"),
            "DateDeGeneration illisible",
        ),
    ],
)
def test_hostile_or_foreign_documents_are_refused(document: bytes, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        parse_whitelist(document)


def test_size_limit() -> None:
    data = national_list(100)
    with pytest.raises(InvalidInput, match="trop grande"):
        parse_whitelist(data, max_bytes=len(data) - 1)


def test_checksum_file_in_sha256sum_format() -> None:
    data = national_list(10)
    digest = hashlib.sha256(data).hexdigest()
    verify_checksum(data, f"{digest}  liste-blanche.xml\n")
    verify_checksum(data, digest.upper())
    with pytest.raises(InvalidInput, match="ne correspond pas"):
        verify_checksum(data + b" ", digest)
    with pytest.raises(InvalidInput, match="illisible"):
        verify_checksum(data, "pas-une-empreinte")
