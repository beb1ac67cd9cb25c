"""Sensitive-data detection: what a sender would be warned about, and what must stay quiet."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caducee.domain.dlp_terms import DEFAULT_TERMS, TermList, parse_terms
from caducee.errors import InvalidInput
from caducee.health.dlp import (
    MAX_SCAN_CHARS,
    DlpPolicy,
    decide,
    parse_policy,
    scan_message,
    scan_text,
    summary,
)

TERMS = TermList.default()
NO_TERMS = TermList.of([])


def kinds(text: str, terms: TermList = TERMS) -> list[str]:
    return [finding.kind for finding in scan_text(text, terms)]


def nir_with_key(number: str) -> str:
    """``number``: 13 characters (2A/2B allowed); returns it followed by its right key."""
    value = int(number[:5] + number[5:7].replace("2A", "19").replace("2B", "18") + number[7:])
    return f"{number}{97 - value % 97:02d}"


# --- NIR / INS -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    [
        "1 85 05 78 006 084 91",
        "185057800608491",
        "1.85.05.78.006.084.91",
        "2 69 05 2A 123 456 88",  # Corsica: 2A counts as 19
        nir_with_key("269052B123456"),  # 2B counts as 18
    ],
)
def test_nir_with_right_key_is_found_and_masked(written: str) -> None:
    [finding] = scan_text(f"INS du patient : {written}.", TERMS)
    assert finding.kind == "nir" and finding.offset == len("INS du patient : ")
    assert finding.label_fr == "Numéro de sécurité sociale (NIR / INS)"
    assert (
        finding.excerpt[:5].replace(" ", "").replace(".", "")[:3]
        == written.replace(" ", "").replace(".", "")[:3]
    )
    hidden = written.replace(" ", "").replace(".", "")[7:13]
    assert hidden not in finding.excerpt.replace(" ", "").replace(".", "")
    assert "*" in finding.excerpt


def test_nir_excerpt_shows_sex_year_month_and_key_only() -> None:
    [finding] = scan_text("1 85 05 78 006 084 91", NO_TERMS)
    assert finding.excerpt == "1 85 05 ** *** *** 91"


@pytest.mark.parametrize(
    "written",
    [
        "1 85 05 78 006 084 42",  # wrong key
        "2 69 05 2A 123 456 87",  # wrong key (Corsica)
        "5 85 05 78 006 084 91",  # no NIR starts with 5
        "1 85 05 78 006 084",  # no key
        "31850578006084910",  # inside a longer number
    ],
)
def test_nir_lookalikes_are_not_reported(written: str) -> None:
    assert "nir" not in kinds(written)


@settings(max_examples=200, deadline=None)
@given(
    sex=st.sampled_from("1278"),
    year=st.integers(0, 99),
    month=st.integers(1, 12),
    department=st.sampled_from(["75", "13", "2A", "2B", "97", "99"]),
    rest=st.integers(0, 999_999),
    separator=st.sampled_from(["", " ", "."]),
)
def test_generated_valid_nirs_are_found_and_wrong_keys_are_not(
    sex: str, year: int, month: int, department: str, rest: int, separator: str
) -> None:
    number = f"{sex}{year:02d}{month:02d}{department}{rest:06d}"
    valid = nir_with_key(number)
    groups = [valid[0], valid[1:3], valid[3:5], valid[5:7], valid[7:10], valid[10:13], valid[13:]]
    assert kinds(f"n° {separator.join(groups)} fin", NO_TERMS) == ["nir"]
    wrong_key = (int(valid[13:]) % 97) + 1  # another key in 1..97
    wrong = f"{number}{wrong_key:02d}"
    assert "nir" not in kinds(f"n° {wrong} fin", NO_TERMS)


# --- RPPS ----------------------------------------------------------------------------------------


def test_rpps_found_with_luhn_key() -> None:
    assert kinds("Dr Martin, RPPS 10001234565") == ["rpps"]
    assert kinds("Identifiant 10001234565") == ["rpps"]  # every RPPS starts with 10
    assert kinds("RPPS : 81234567899") == ["rpps"]  # other digits: after the word only
    assert scan_text("RPPS 10001234565", NO_TERMS)[0].excerpt == "10*******65"


def test_rpps_lookalikes_are_not_reported() -> None:
    assert kinds("RPPS 10001234566") == []  # wrong Luhn key
    assert kinds("RPPS 81234567897") == []
    assert kinds("Commande 81234567899") == []  # no context, not starting with 10
    assert kinds("RPPS 100012345650") == []  # 12 digits


# --- Dates of birth ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Patiente née le 01/02/1980.",
        "Patient né le 1 février 1980",
        "Né(e) le 1er février 1980",
        "Date de naissance : 1980-02-01",
        "DDN 01.02.80",
        "NÉE LE 29/02/1984",
    ],
)
def test_dates_of_birth_are_found(text: str) -> None:
    [finding] = scan_text(text, NO_TERMS)
    assert finding.kind == "date_naissance" and finding.label_en == "Date of birth"
    assert not any(char.isdigit() for char in finding.excerpt)


@pytest.mark.parametrize(
    "text",
    [
        "Rendez-vous le 01/02/2024",  # a date without birth context
        "Née le 31/02/1980",  # not a date
        "Né le 01/02/2999",  # in the future
        "Date de naissance : inconnue. Rendez-vous pris pour le 12/03/2024 à 10 h.",
    ],
)
def test_other_dates_are_not_reported(text: str) -> None:
    assert "date_naissance" not in kinds(text, NO_TERMS)


# --- CIM-10 --------------------------------------------------------------------------------------


def test_cim10_codes_in_context_are_found() -> None:
    assert kinds("Diagnostic : F32.1", NO_TERMS) == ["cim10"]
    assert kinds("Code CIM-10 E11", NO_TERMS) == ["cim10"]
    assert kinds("cim10: C50.91 puis code J45", NO_TERMS) == ["cim10", "cim10"]
    assert scan_text("Code CIM-10 F32.1", NO_TERMS)[0].excerpt == "***.*"


def test_cim10_lookalikes_are_not_reported() -> None:
    assert kinds("Bus B52 à l'arrêt A12, bâtiment E11", NO_TERMS) == []  # no context
    assert kinds("code postal f32", NO_TERMS) == []  # lower case
    assert kinds("code 1F32", NO_TERMS) == []


# --- Terms ---------------------------------------------------------------------------------------


def test_default_terms_are_about_fifty_and_include_the_usual_ones() -> None:
    assert 45 <= len(DEFAULT_TERMS) <= 100
    for term in (
        "VIH",
        "séropositif",
        "cancer",
        "chimiothérapie",
        "dépression",
        "IVG",
        "schizophrénie",
        "méthadone",
    ):
        assert term in DEFAULT_TERMS


def test_terms_match_whole_words_without_accents_or_case() -> None:
    findings = scan_text("Suivi : SEROPOSITIF, sous Methadone ; cancers ; vihxx ; ivg.", TERMS)
    assert [(f.kind, f.excerpt) for f in findings] == [
        ("terme", "S**********"),
        ("terme", "M********"),
        ("terme", "i**"),
    ]


def test_multi_word_terms_allow_any_spacing_and_hyphens() -> None:
    assert kinds("une  Fausse-couche en 2020") == ["terme"]
    assert kinds("sclérose\nen plaques") == ["terme"]


def test_practice_terms_are_added() -> None:
    extra = parse_terms("# termes du cabinet\nMaladie de Crohn\nrectocolite; Lyme\n")
    assert extra == ["Maladie de Crohn", "rectocolite", "Lyme"]
    terms = TermList.default(extra)
    assert kinds("maladie de crohn", terms) == ["terme"]
    assert kinds("maladie de crohn") == []


# --- Messages ------------------------------------------------------------------------------------


def sample_message() -> bytes:
    message = EmailMessage()
    message["From"] = "dr.martin@cabinet.test"
    message["To"] = "patient@exemple.fr"
    message["Subject"] = "Résultats VIH"
    message.set_content("Bonjour,\nvoici vos résultats. NIR 1 85 05 78 006 084 91.\n")
    message.add_alternative(
        "<html><head><style>.cancer{}</style></head><body><p>Traitement par "
        "<b>m&eacute;thadone</b></p><script>var depression;</script></body></html>",
        subtype="html",
    )
    message.add_attachment(
        b"%PDF-1.4",
        maintype="application",
        subtype="pdf",
        filename="compte-rendu-chimiotherapie.pdf",
    )
    return bytes(message)


def test_scan_message_reads_subject_text_html_and_file_names() -> None:
    findings = scan_message(sample_message(), TERMS)
    assert [(f.where, f.kind, f.excerpt) for f in findings] == [
        ("sujet", "terme", "V**"),
        ("texte", "nir", "1 85 05 ** *** *** 91"),
        ("html", "terme", "m********"),  # not "cancer" in the style nor the script
        ("nom de fichier", "terme", "c*************"),
    ]
    assert summary(findings) == {"nir": 1, "terme": 3}


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"Subject: =?utf-8?b?invalid?=\r\n\r\nIVG",
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain;"
        b" charset=nonexistent\r\nContent-Transfer-Encoding: base64\r\n\r\n@@@\r\n--x",
        b"\xff\xfe\x00garbage\r\n\r\n\x00\x01",
        b"Content-Type: text/html\r\n\r\n<p><b>IVG<<<</p",
    ],
)
def test_broken_mime_never_crashes(raw: bytes) -> None:
    scan_message(raw, TERMS)


def test_work_is_bounded() -> None:
    text = "cancer " * (MAX_SCAN_CHARS // 7 + 10_000) + "VIH"
    findings = scan_text(text, TERMS)
    assert len(findings) == 100 and all(f.offset < MAX_SCAN_CHARS for f in findings)
    assert kinds("x" * MAX_SCAN_CHARS + " VIH") == []  # beyond the scanned part


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_random_text_never_crashes(text: str) -> None:
    for finding in scan_text(text, TERMS):
        assert 0 <= finding.offset < len(text)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_never_crash(raw: bytes) -> None:
    scan_message(raw, TERMS)


# --- Policy --------------------------------------------------------------------------------------


def test_policy_parsing() -> None:
    assert parse_policy("avertir") is DlpPolicy.AVERTIR
    assert parse_policy(" Bloquer ") is DlpPolicy.BLOQUER
    assert parse_policy("pickup") is DlpPolicy.RETRAIT
    with pytest.raises(InvalidInput, match="avertir, bloquer ou retrait"):
        parse_policy("ignorer")


def test_decisions() -> None:
    findings = scan_text("NIR 1 85 05 78 006 084 91, suivi VIH", TERMS)
    clean = decide(DlpPolicy.BLOQUER, scan_text("Bonjour, à jeudi.", TERMS))
    assert clean.action == "envoyer" and not clean.blocked and clean.header == ""
    blocked = decide(DlpPolicy.BLOQUER, findings)
    assert blocked.blocked and (blocked.smtp_code, blocked.smtp_status) == (550, "5.7.1")
    assert "numéro de sécurité sociale" in blocked.reason_fr and "VIH" not in blocked.reason_fr
    assert blocked.header == "bloque; nir=1; terme=1"
    warned = decide(DlpPolicy.AVERTIR, findings)
    assert warned.action == "avertir" and warned.smtp_code == 0
    assert warned.header == "avertissement; nir=1; terme=1"
    pickup = decide(DlpPolicy.RETRAIT, findings)
    assert pickup.secure_pickup and "portail" in pickup.reason_fr
