"""Synthetic télétransmission traffic for the tests: lots (S/MIME enveloped IRIS/B2 parts, made
with ``cryptography`` for a fund certificate made here) and returns (ARL, NOEMIE, unknown) in
the publicly known formats."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
from email.utils import format_datetime, make_msgid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

FUND = "01422@422.01.rss.fr"
SENDER_NUMBER = "12345678901234"


def compostage(when: dt.datetime, serial: int = 1) -> str:
    """AAAAMMJJHHMMSS + 5 digits."""
    return when.strftime("%Y%m%d%H%M%S") + f"{serial:05d}"


def fund_certificate() -> x509.Certificate:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Caisse de test")])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )


def enveloped_payload(certificate: x509.Certificate, parts: int = 2) -> bytes:
    """The S/MIME enveloped (``smime.p7m``) DER around ``application/EDI-consent`` parts with
    ``Content-Description: IRIS/B2`` — binary, as a real lot is opaque to the MTA."""
    inner = b"".join(
        b"--inner\r\nContent-Type: application/EDI-consent\r\n"
        b"Content-Description: IRIS/B2\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(bytes(range(256)) * 4 + f"FSE {n}".encode()).replace(b"\n", b"\r\n")
        for n in range(parts)
    )
    body = b'Content-Type: multipart/mixed; boundary="inner"\r\n\r\n' + inner + b"--inner--\r\n"
    return (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(body)
        .add_recipient(certificate)
        .encrypt(serialization.Encoding.DER, [])
    )


def lot_message(
    sender: str,
    *,
    subject: str,
    fund: str = FUND,
    certificate: x509.Certificate | None = None,
    crlf_end: bool = True,
) -> bytes:
    """A lot as billing software writes it: an S/MIME enveloped body, base64 in 76-column lines."""
    certificate = certificate or fund_certificate()
    der = enveloped_payload(certificate)
    encoded = base64.encodebytes(der).replace(b"\n", b"\r\n")
    head = (
        f"From: {sender}\r\nTo: {fund}\r\nSubject: {subject}\r\n"
        f"Date: {format_datetime(dt.datetime.now(dt.UTC))}\r\n"
        f"Message-ID: {make_msgid(domain='facturation.test')}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"\r\n'
        'Content-Disposition: attachment; filename="smime.p7m"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode()
    raw = head + encoded
    return raw if crlf_end else raw.rstrip(b"\r\n")


def lot_subject(sender_number: str, compostage_: str, count: int = 12, sequence: int = 42) -> str:
    return f"IR{sequence:06d}/{sender_number}/{compostage_}/{count:05d}"


def return_message(
    to: str,
    *,
    description: str,
    subject: str,
    payload: bytes,
    gzipped: bool = True,
    sender: str = FUND,
) -> bytes:
    """A return (ARL, NOEMIE) as a fund sends it: an ``application/EDI-consent`` part, base64,
    possibly gzipped."""
    data = gzip.compress(payload) if gzipped else payload
    encoded = base64.encodebytes(data).decode().replace("\n", "\r\n")
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Date: {format_datetime(dt.datetime.now(dt.UTC))}\r\n"
        f"Message-ID: {make_msgid(domain='422.01.rss.fr')}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nRetour\r\n"
        f"--b1\r\nContent-Type: application/EDI-consent\r\nContent-Description: {description}\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n{encoded}--b1--\r\n"
    ).encode()


def arl(to: str, sender_number: str, compostage_: str, *, positive: bool = True) -> bytes:
    word = "POSITIF" if positive else "NEGATIF"
    payload = f"ARL {word} {sender_number} LOT {compostage_} 00012 FSE\r\n".encode()
    return return_message(
        to, description=f"ARL {word}/B2", subject=f"ARL/{sender_number}", payload=payload
    )


def noemie(to: str, sender_number: str, compostage_: str) -> bytes:
    payload = f"NOEMIE 580 {sender_number} {compostage_} PAIEMENT\r\n".encode()
    return return_message(
        to, description="NOEMIE/PS", subject=f"NOEMIE/{sender_number}", payload=payload
    )
