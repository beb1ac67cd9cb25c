"""Protected attachments: the PDF and the ZIP open with the password only, and hold what the
practitioner attached."""

from __future__ import annotations

import io
import re
import subprocess
import zipfile
from pathlib import Path

import pikepdf
import pytest
import pyzipper
from PIL import Image

from caducee.domain import protected_attachments
from caducee.domain.protected_attachments import (
    PASSWORD_ALPHABET,
    Attachment,
    encrypted_pdf,
    encrypted_zip,
    generate_password,
    zip_notice,
)
from caducee.errors import InvalidInput, LimitReached


def pdf_file(pages: int) -> bytes:
    pdf = pikepdf.new()
    for _ in range(pages):
        pdf.add_blank_page()
    output = io.BytesIO()
    pdf.save(output)
    return output.getvalue()


def image_file(kind: str) -> bytes:
    output = io.BytesIO()
    mode = "RGBA" if kind == "PNG" else "RGB"
    Image.new(mode, (320, 200), (200, 30, 30)).save(output, kind)
    return output.getvalue()


def page_text(page: pikepdf.Page) -> bytes:
    return b"".join(
        stream.read_bytes()
        for stream in (
            page.Contents if isinstance(page.Contents, pikepdf.Array) else [page.Contents]
        )
    )


ATTACHMENTS = [
    Attachment("compte-rendu.pdf", "application/pdf", pdf_file(3)),
    Attachment("ordonnance.txt", "text/plain", "Prendre 1 comprimé matin et soir.\n".encode()),
    Attachment("radio.jpg", "image/jpeg", image_file("JPEG")),
    Attachment("schema.png", "image/png", image_file("PNG")),
    Attachment("resultats.xlsx", "application/vnd.ms-excel", b"PK\x03\x04 tableur"),
]


def test_generated_passwords_are_random_readable_and_long_enough() -> None:
    passwords = {generate_password() for _ in range(200)}
    assert len(passwords) == 200
    for password in passwords:
        assert re.fullmatch(r"[A-Z2-9]{4}(-[A-Z2-9]{4}){4}", password)
        assert not set(password) & set("01OIL")
    assert len(PASSWORD_ALPHABET) ** 20 >= 2**80


def test_pdf_opens_with_the_password_only(tmp_path: Path) -> None:
    password = generate_password()
    data = encrypted_pdf(ATTACHMENTS, password, title="Documents du Dr Martin")
    with pytest.raises(pikepdf.PasswordError):
        pikepdf.open(io.BytesIO(data))
    with pytest.raises(pikepdf.PasswordError):
        pikepdf.open(io.BytesIO(data), password="AAAA-BBBB-CCCC-DDDD-EEEE")
    with pikepdf.open(io.BytesIO(data), password=password) as pdf:
        # cover + 3 PDF pages + 1 text page + 2 image pages; the spreadsheet is attached
        assert len(pdf.pages) == 7
        assert list(pdf.attachments) == ["resultats.xlsx"]
        attached = pdf.attachments["resultats.xlsx"].get_file().read_bytes()
        assert attached == b"PK\x03\x04 tableur"
        cover = page_text(pdf.pages[0])
        for name in (b"compte-rendu.pdf", b"ordonnance.txt", b"radio.jpg", b"resultats.xlsx"):
            assert name in cover
        assert "Documents du Dr Martin".encode("cp1252") in cover
        assert "Prendre 1 comprimé matin et soir.".encode("cp1252") in page_text(pdf.pages[4])
        assert "/Im1" in str(pdf.pages[5].Resources.XObject.keys())
        assert pdf.encryption.R == 6 and pdf.encryption.bits == 256
    path = tmp_path / "protege.pdf"
    path.write_bytes(data)
    shown = subprocess.run(
        ["qpdf", "--show-encryption", f"--password={password}", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "R = 6" in shown and "Supplied password is user password" in shown
    for target in ("stream", "string", "file"):  # AESv3: AES-256 (PDF 2.0, R6)
        assert f"{target} encryption method: AESv3" in shown
    wrong = subprocess.run(
        ["qpdf", "--show-encryption", "--password=AAAA-BBBB", str(path)],
        capture_output=True,
        text=True,
    )
    assert "Incorrect password supplied" in wrong.stdout + wrong.stderr


def test_text_files_wrap_and_break_pages() -> None:
    long_line = "mot " * 200
    text = "\n".join([long_line] + [f"ligne {n}" for n in range(120)])
    data = encrypted_pdf(
        [Attachment("notes.txt", "text/plain", text.encode())], "secret-1", title="Notes"
    )
    with pikepdf.open(io.BytesIO(data), password="secret-1") as pdf:
        assert len(pdf.pages) == 1 + 3  # cover, then 120 lines + 9 wrapped ones on 3 pages
        assert b"(ligne 119)" in page_text(pdf.pages[3])
        assert b"(Notes.txt" not in page_text(pdf.pages[1])
        assert all(len(line) < 120 for line in page_text(pdf.pages[1]).split(b"\n"))


def test_an_unreadable_pdf_is_attached_rather_than_merged() -> None:
    broken = Attachment("abime.pdf", "application/pdf", b"%PDF-1.7 pas vraiment un PDF")
    data = encrypted_pdf([broken], "secret-1", title="Essai")
    with pikepdf.open(io.BytesIO(data), password="secret-1") as pdf:
        assert len(pdf.pages) == 1 and list(pdf.attachments) == ["abime.pdf"]


def test_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidInput, match="Aucune pièce jointe"):
        encrypted_pdf([], "secret-1", title="Vide")
    monkeypatch.setattr(protected_attachments, "MAX_TOTAL_BYTES", 1000)
    with pytest.raises(LimitReached, match="trop volumineuses"):
        encrypted_pdf([Attachment("gros.txt", "text/plain", b"x" * 1001)], "s", title="Gros")
    monkeypatch.setattr(protected_attachments, "MAX_PAGES", 5)
    with pytest.raises((LimitReached, InvalidInput), match="pages"):
        encrypted_pdf([Attachment("long.txt", "text/plain", b"l\n" * 400)], "s", title="Long")


def test_zip_opens_with_the_password_only() -> None:
    password = generate_password()
    data = encrypted_zip(ATTACHMENTS[:2], password)
    with pyzipper.AESZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == ["document-1.pdf", "document-2.txt"]
        with pytest.raises(RuntimeError):
            archive.read("document-2.txt")  # no password
        archive.setpassword(b"AAAA-BBBB-CCCC-DDDD-EEEE")
        with pytest.raises(RuntimeError):
            archive.read("document-2.txt")
        archive.setpassword(password.encode())
        assert archive.read("document-2.txt") == ATTACHMENTS[1].data
        assert archive.read("document-1.pdf") == ATTACHMENTS[0].data
    with zipfile.ZipFile(io.BytesIO(data)) as plain:
        for info in plain.infolist():
            assert info.compress_type == 99  # WinZip AES (APPNOTE 7.2)
            start = info.extra.index(b"\x01\x99")  # AES extra field: …, "AE", strength
            assert info.extra[start + 6 : start + 8] == b"AE"
            assert info.extra[start + 8] == 3  # 3 = 256-bit keys
        with pytest.raises(NotImplementedError, match="compression method"):
            # the standard library does not know AES, even with the password
            plain.read("document-2.txt", pwd=password.encode())


def test_zip_can_keep_file_names() -> None:
    data = encrypted_zip([*ATTACHMENTS[:2], ATTACHMENTS[1]], "secret-1", keep_names=True)
    with pyzipper.AESZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == ["compte-rendu.pdf", "ordonnance.txt", "ordonnance (2).txt"]


def test_zip_notice_names_free_tools() -> None:
    notice = zip_notice()
    for tool in ("7-Zip", "Keka", "The Unarchiver", "téléphone", "SMS"):
        assert tool in notice
    assert "7-Zip" in zip_notice("en") and "phone" in zip_notice("en")
