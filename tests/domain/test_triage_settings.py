"""A practice's triage settings (pure): the types are the charter's, keywords are IMAP atoms,
what may not be disabled or confused, the stored JSON and the console's form."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caducee.domain import charter
from caducee.domain.triage import DEFAULT_TYPES, Triage
from caducee.domain.triage_settings import (
    TriageSettings,
    from_dict,
    from_form,
    keyword_of,
    keywords,
    slug,
    to_dict,
)
from caducee.errors import InvalidInput

FORBIDDEN = set(' (){%*"]\\') | {chr(c) for c in range(0x20)} | {"\x7f"}


def test_the_default_types_are_the_charters() -> None:
    assert [t.id for t in DEFAULT_TYPES] == [t.id for t in charter.ALL_MESSAGE_TYPES]
    assert charter.OUT_OF_SCOPE.id == "hors-champ"


def test_keywords_of_the_issue_and_of_added_types() -> None:
    assert [keyword_of(t.id) for t in DEFAULT_TYPES] == [
        "$Caducee-Resultats", "$Caducee-Conseil", "$Caducee-Renouvellement",
        "$Caducee-RendezVous", "$Caducee-Administratif", "$Caducee-HorsChamp",
    ]  # fmt: skip
    assert keyword_of("certif-sport") == "$Caducee-CertifSport"
    assert keywords(Triage("conseil", True)) == ("$Caducee-Conseil", "$Caducee-Urgent")
    assert keywords(Triage("rendez-vous", False)) == ("$Caducee-RendezVous",)


@given(st.text(max_size=60))
def test_any_label_makes_an_imap_atom(label: str) -> None:
    keyword = keyword_of(slug(label) or "x")
    assert keyword.startswith("$Caducee-") and not set(keyword) & FORBIDDEN


def test_out_of_scope_and_the_default_cannot_be_disabled() -> None:
    with pytest.raises(InvalidInput, match="hors champ"):
        from_dict({"types": [{"id": "hors-champ", "enabled": False}]})
    with pytest.raises(InvalidInput, match="par défaut"):
        from_dict({"default_type": "conseil", "types": [{"id": "conseil", "enabled": False}]})
    with pytest.raises(InvalidInput, match="se confond"):
        from_dict({"types": [{"id": "urgent", "label_fr": "Urgent"}]})
    with pytest.raises(InvalidInput, match="se confond"):
        from_dict({"types": [{"id": "rendezvous", "label_fr": "RDV"}]})
    with pytest.raises(InvalidInput, match="Adresse d'alerte"):
        from_dict({"alert_email": "pas une adresse"})


def test_json_round_trip_and_form() -> None:
    settings = from_form(
        {
            "libelle_conseil": "Questions",
            "mots_conseil": "question, avis",
            "nouveau_libelle": "Vaccins à jour",
            "nouveau_mots": "vaccin; rappel",
            "defaut": "hors-champ",
            "alerte_courriel": " Secretariat@Cabinet.test ",
        },
        enabled=["conseil", "hors-champ"],
    )
    by_id = {t.id: t for t in settings.rules.types}
    assert by_id["conseil"].label_fr == "Questions" and by_id["conseil"].enabled
    assert by_id["conseil"].keywords == ("question", "avis")
    assert not by_id["resultats"].enabled
    assert by_id["vaccins-a-jour"].keywords == ("vaccin", "rappel")
    assert settings.alert_email == "secretariat@cabinet.test"
    assert from_dict(to_dict(settings)) == settings
    assert from_dict({}) == TriageSettings()
