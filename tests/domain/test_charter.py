"""The practice's charter as data: defaults, validation (French and English errors, explicit
limits), the console's fields, the stored JSON, and the short and full renderings."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from caducee.domain import charter
from caducee.domain.charter import (
    EMERGENCY_NUMBERS,
    MESSAGE_TYPES,
    OUT_OF_SCOPE,
    Charter,
    Closure,
)
from caducee.errors import InvalidInput

DEFAULT_FORM = charter.form_values(Charter())


def form(**changes: str) -> dict[str, str]:
    values = {k: v for k, v in DEFAULT_FORM.items() if isinstance(v, str)}
    values.update(changes)
    return values


def refused(accepted: list[str] | None = None, **changes: str) -> InvalidInput:
    types = list(DEFAULT_FORM["types"]) if accepted is None else accepted
    with pytest.raises(InvalidInput) as caught:
        charter.from_form(form(**changes), types)
    assert caught.value.fr and caught.value.en and caught.value.fr != caught.value.en
    return caught.value


def test_defaults_are_a_correct_charter() -> None:
    default = Charter()
    assert default.accepted == ("resultats", "conseil", "renouvellement", "rendez-vous",
                                "administratif")  # fmt: skip
    assert default.delay_days == 2 and default.hours[0] == ((time(9), time(12)),
                                                            (time(14), time(18)))  # fmt: skip
    assert default.hours[5] == default.hours[6] == ()
    assert charter.from_form(form(), DEFAULT_FORM["types"]) == default
    assert charter.from_dict(charter.to_dict(default)) == default
    assert charter.from_dict({}) == default


def test_message_types_are_shared_data() -> None:
    assert [t.id for t in MESSAGE_TYPES] == [
        "resultats", "conseil", "renouvellement", "rendez-vous", "administratif",
    ]  # fmt: skip
    assert charter.message_type("hors-champ") is OUT_OF_SCOPE
    assert not Charter().accepts("hors-champ")
    assert Charter().accepts("conseil")
    with pytest.raises(InvalidInput):
        charter.message_type("ordonnance")
    assert refused(["hors-champ"]).fr.startswith("Type de message non acceptable")
    assert "au moins un type" in refused([]).fr


def test_validation_limits() -> None:
    assert "de 0 à 15" in refused(delai="16").fr
    assert "nombre de jours" in refused(delai="deux").fr
    assert "se chevauchent" in refused(horaires_lundi="09:00-12:00, 11:00-13:00").fr
    assert "finit avant" in refused(horaires_mardi="12:00-09:00").fr
    assert "4 plages au plus" in refused(horaires_jeudi="8-9, 10-11, 12-13, 14-15, 16-17").fr
    assert "heure invalide" in refused(horaires_lundi="25:00-26:00").fr
    assert "n'est pas une plage" in refused(horaires_lundi="le matin").fr
    closed = {f"horaires_{d}": "" for d, _en in charter.WEEKDAY_NAMES}
    assert "au moins une plage" in refused(**closed).fr
    assert "ligne 2" in refused(fermetures="01/08/2025 Congés\nbientôt").fr
    assert "ligne 1" in refused(fermetures="31/02/2025").fr
    assert "la fin précède" in refused(fermetures="10/08/2025 au 01/08/2025").fr
    assert "366 jours" in refused(fermetures="01/01/2025 au 31/12/2026").fr
    many = "\n".join(f"{d:02d}/01/2026" for d in range(1, 32))
    assert "30 au plus" in refused(fermetures=many).fr
    assert "80 caractères" in refused(fermetures="01/08/2025 " + "x" * 81).fr
    assert "Région inconnue" in refused(region="75").fr
    assert "le 15 et le 112" in refused(urgences="Appelez le 115.").fr
    assert "le 15 et le 112" in refused(urgences="Appelez le 04 15 22 33 ou le 112.").fr
    assert "2000 caractères" in refused(texte_libre="x" * 2001).fr
    assert "contrôle" in refused(texte_libre="a\x00b").fr
    assert refused(texte_libre="x" * 2001).en.startswith("Free text too long")


def test_console_fields_are_read_generously() -> None:
    made = charter.from_form(
        form(
            horaires_lundi="9h-12h30 et 14h–18h",
            horaires_samedi="9:00 à 12:00",
            horaires_mercredi="fermé",
            fermetures="04/08/2025 au 22/08/2025 Congés d'été\n\n2025-12-24 - 2025-12-31 : Fêtes\n"
            "01/05/2026",
            region="57",
            urgences="Le soir, appelez le 116 117 ; en cas d'urgence vitale, le 15 ou le 112.",
            texte_libre="Le Dr Martin ne consulte pas le jeudi.",
        ),
        ["conseil", "resultats", "conseil"],
    )
    assert made.accepted == ("resultats", "conseil")
    assert made.hours[0] == ((time(9), time(12, 30)), (time(14), time(18)))
    assert made.hours[2] == () and made.hours[5] == ((time(9), time(12)),)
    assert made.closures == (
        Closure(date(2025, 8, 4), date(2025, 8, 22), "Congés d'été"),
        Closure(date(2025, 12, 24), date(2025, 12, 31), "Fêtes"),
        Closure(date(2026, 5, 1), date(2026, 5, 1), ""),
    )
    again = charter.form_values(made)
    assert (
        charter.from_form({k: v for k, v in again.items() if isinstance(v, str)}, again["types"])
        == made
    )
    assert charter.from_dict(charter.to_dict(made)) == made


def test_stored_json_is_validated_again() -> None:
    with pytest.raises(InvalidInput):
        charter.from_dict({"types": ["hors-champ"]})
    with pytest.raises(InvalidInput):
        charter.from_dict({"horaires": {"lundi": [{"debut": "x"}]}})


def test_short_form() -> None:
    text = charter.short_text(Charter(), "fr", "https://mail.test/portail/t/charte")
    assert text.startswith(
        "Ce service ne remplace pas une consultation. En cas d'urgence : 15 ou 112"
    )
    assert "Réponse sous 2 jours ouvrés." in text and text.endswith("/portail/t/charte")
    one = Charter(delay_days=1)
    assert "Réponse sous 1 jour ouvré." in charter.short_text(one)
    assert "Answer within 1 working day." in charter.short_text(one, "en")
    assert "same working day" in charter.short_text(Charter(delay_days=0), "en")
    both = charter.short_text_bilingual(Charter())
    assert "En cas d'urgence" in both and "In an emergency" in both


def test_full_form_and_view() -> None:
    made = Charter(
        accepted=("resultats", "rendez-vous"),
        closures=(
            Closure(date(2025, 1, 2), date(2025, 1, 3), "Passé"),
            Closure(date(2025, 8, 4), date(2025, 8, 22), "Congés d'été"),
        ),
        region="974",
        free_text="Premier paragraphe.\n\nSecond paragraphe.",
    )
    shown = charter.view(made, "fr", today=date(2025, 6, 1))
    assert [a.id for a in shown.accepted] == ["resultats", "rendez-vous"]
    assert "Conseil simple" in shown.refused
    assert shown.closures == ("Congés d'été (du 04/08/2025 au 22/08/2025)",)
    assert shown.region == "La Réunion"
    assert shown.hours[5].hours == "fermé" and not shown.hours[5].open
    assert [n for n, _label in shown.numbers] == ["15", "112", "114", "3114", "116 117"]
    assert shown.paragraphs == ("Premier paragraphe.", "Second paragraphe.")
    text = charter.full_text(made, "fr", today=date(2025, 6, 1))
    for number in EMERGENCY_NUMBERS:
        assert f"- {number.number} : " in text
    assert "Passé" not in text and "Second paragraphe." in text
    english = charter.full_text(made, "en")
    assert "Opening hours:" in english and "- Saturday: closed" in english
    now = datetime(2025, 6, 6, 19, tzinfo=ZoneInfo("Europe/Paris"))  # a Friday evening
    assert "12/06/2025" in charter.view(made, "fr", now=now).next_answer  # Mon, Tue, Wed


def test_custom_emergency_text_replaces_the_default_paragraph_only() -> None:
    custom = "Le soir : maison médicale de garde. Urgence : 15 ou 112."
    made = charter.from_form(form(urgences=custom), DEFAULT_FORM["types"])
    assert made.emergency("fr") == made.emergency("en") == custom
    assert "N'utilisez jamais" in Charter().emergency("fr")
    assert "3114" in charter.full_text(made)  # the national numbers stay
