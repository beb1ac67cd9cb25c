"""Messages with structure, shared by the FETCH and BODYSTRUCTURE tests."""

from __future__ import annotations

NESTED = (
    b"From: =?utf-8?q?Dr_M=C3=A9decin?= <dr@cabinet.test>\r\n"
    b'To: Equipe: a@b.test, "Q, R" <q@r.test>;, solo@x.test\r\n'
    b"Subject: Compte rendu\r\n"
    b"Date: Tue, 3 Dec 2024 10:00:00 +0100\r\n"
    b"Message-ID: <cr1@cabinet.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--outer\r\n"
    b"Content-Type: multipart/alternative; boundary=inner\r\n"
    b"\r\n"
    b"--inner\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"R=C3=A9sultat normal\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b"<p>Resultat</p>\r\n"
    b"--inner--\r\n"
    b"--outer\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"Content-Description: transfere\r\n"
    b"\r\n"
    b"From: labo@ailleurs.test\r\n"
    b"Subject: analyse\r\n"
    b"\r\n"
    b"glycemie 0,9 g/l\r\n"
    b"--outer\r\n"
    b"Content-Type: application/pdf; name=cr.pdf\r\n"
    b'Content-Disposition: attachment; filename="cr.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"JVBERi0xLjQK\r\n"
    b"--outer--\r\n"
    b"epilogue\r\n"
)

#: Expected BODY[section] of NESTED, byte-exact.
SECTIONS: dict[str, bytes] = {
    "1.1": b"R=C3=A9sultat normal",
    "1.1.MIME": b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
    "1.2": b"<p>Resultat</p>",
    "2": b"From: labo@ailleurs.test\r\nSubject: analyse\r\n\r\nglycemie 0,9 g/l",
    "2.HEADER": b"From: labo@ailleurs.test\r\nSubject: analyse\r\n\r\n",
    "2.TEXT": b"glycemie 0,9 g/l",
    "2.1": b"glycemie 0,9 g/l",
    "2.MIME": b"Content-Type: message/rfc822\r\nContent-Description: transfere\r\n\r\n",
    "3": b"JVBERi0xLjQK",
    "4": b"",
}
