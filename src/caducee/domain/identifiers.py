"""French health and company identifiers: RPPS, ADELI, FINESS, SIRET. Pure functions, no I/O."""

from __future__ import annotations

import re

from caducee.errors import InvalidInput


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check used by RPPS and SIRET numbers."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def nir_key_valid(characters: str) -> bool:
    """The key of a NIR (and of an INS, its NIR form): ``characters`` are its 15 characters
    without separators, Corsica's 2A/2B allowed; key = 97 − (the 13 digits mod 97), 2A read as
    19 and 2B as 18."""
    number, key = characters[:13].lower(), characters[13:]
    number = number[:5] + number[5:7].replace("2a", "19").replace("2b", "18") + number[7:]
    if not (len(characters) == 15 and number.isdigit() and key.isdigit()):
        return False
    return 97 - int(number) % 97 == int(key)


def normalize_rpps(value: str) -> str:
    """An RPPS number: 11 digits whose last one is a Luhn key."""
    rpps = re.sub(r"\s", "", value)
    if not re.fullmatch(r"\d{11}", rpps):
        raise InvalidInput(
            f"Numéro RPPS invalide « {value} » : 11 chiffres attendus.",
            f"Invalid RPPS number '{value}': 11 digits expected.",
        )
    if not luhn_valid(rpps):
        raise InvalidInput(
            f"Numéro RPPS invalide « {value} » : la clé de contrôle (Luhn) est fausse. "
            "Vérifiez le numéro sur la carte CPS ou l'annuaire santé.",
            f"Invalid RPPS number '{value}': wrong check digit (Luhn). "
            "Check the number on the CPS card or in the health directory.",
        )
    return rpps


def normalize_adeli(value: str) -> str:
    """An ADELI number: 9 characters (department, including 2A/2B, then digits)."""
    adeli = re.sub(r"\s", "", value).upper()
    if not re.fullmatch(r"(\d{2}|2A|2B)\d{7}", adeli):
        raise InvalidInput(
            f"Numéro ADELI invalide « {value} » : 9 caractères attendus "
            "(département puis 7 chiffres).",
            f"Invalid ADELI number '{value}': 9 characters expected (department then 7 digits).",
        )
    return adeli


def normalize_finess(value: str) -> str:
    """A FINESS number: 9 characters (department, including 2A/2B, then 7 digits)."""
    finess = re.sub(r"\s", "", value).upper()
    if not re.fullmatch(r"(\d{2}|2A|2B)\d{7}", finess):
        raise InvalidInput(
            f"Numéro FINESS invalide « {value} » : 9 caractères attendus.",
            f"Invalid FINESS number '{value}': 9 characters expected.",
        )
    return finess


def normalize_siret(value: str) -> str:
    """A SIRET number: 14 digits with a Luhn key (La Poste's establishments use a mod-5 rule)."""
    siret = re.sub(r"\s", "", value)
    if not re.fullmatch(r"\d{14}", siret):
        raise InvalidInput(
            f"Numéro SIRET invalide « {value} » : 14 chiffres attendus.",
            f"Invalid SIRET number '{value}': 14 digits expected.",
        )
    la_poste = siret.startswith("356000000") and sum(map(int, siret)) % 5 == 0
    if not (luhn_valid(siret) or la_poste):
        raise InvalidInput(
            f"Numéro SIRET invalide « {value} » : la clé de contrôle est fausse.",
            f"Invalid SIRET number '{value}': wrong check digit.",
        )
    return siret
