"""Gettext catalogs: the template matches the code, English is complete and well formed."""

from __future__ import annotations

import re

from babel.messages.pofile import read_po

from caducee.web import catalog
from caducee.web.i18n import LOCALE_DIR, translations

EN = LOCALE_DIR / "en" / "LC_MESSAGES" / "caducee.po"


def _ids(messages: object) -> set[object]:
    return {m.id if isinstance(m.id, str) else tuple(m.id) for m in messages if m.id}  # type: ignore[attr-defined]


def test_template_is_up_to_date() -> None:
    extracted = _ids(catalog.extract())
    with catalog.TEMPLATE.open("rb") as handle:
        stored = _ids(read_po(handle))
    assert extracted == stored, (
        "Catalogue périmé : lancez « python -m caducee.web.catalog » puis traduisez. "
        f"Nouveaux : {sorted(map(str, extracted - stored))[:10]} ; "
        f"disparus : {sorted(map(str, stored - extracted))[:10]}"
    )


def test_english_is_complete() -> None:
    with EN.open("rb") as handle:
        english = read_po(handle, locale="en")
    template = _ids(catalog.extract())
    assert _ids(english) >= template
    placeholders = re.compile(r"%\(\w+\)[sd]")
    for message in english:
        if not message.id:
            continue
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        strings = (
            [message.string] if isinstance(message.string, str) else list(message.string or ())
        )
        assert all(strings), f"untranslated: {message.id!r}"
        assert not message.fuzzy, message.id
        for text in strings:
            assert set(placeholders.findall(text)) == set(placeholders.findall(ids[0])), text


def test_compiled_catalog_translates() -> None:
    english = translations("en")
    assert english.gettext("Se connecter") == "Log in"
    assert english.ngettext("%(num)d clé", "%(num)d clés", 2) == "%(num)d keys"
    assert translations("fr").gettext("Se connecter") == "Se connecter"
