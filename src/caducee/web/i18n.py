"""Languages of the web pages: French by default, English available (gettext catalogs).

The msgids are the French texts (French first); ``locale/en/LC_MESSAGES/caducee.po`` gives
the English. Catalogs are compiled from their ``.po`` files in memory at first use, so the
repository holds no binary ``.mo``. The language of a request comes from ``?lang=``, then the
``__Host-caducee-lang`` cookie (set when ``?lang=`` is used), then ``Accept-Language``, then French.
"""

from __future__ import annotations

import gettext as stdlib_gettext
import io
from contextvars import ContextVar
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

SUPPORTED = ("fr", "en")
DEFAULT = "fr"
LANG_COOKIE = "__Host-caducee-lang"
DOMAIN = "caducee"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"

current_language: ContextVar[str] = ContextVar("caducee_web_language", default=DEFAULT)


@cache
def translations(lang: str) -> stdlib_gettext.NullTranslations:
    """The compiled catalog of ``lang`` (French, the source language, needs none)."""
    path = LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    if lang == DEFAULT or not path.exists():
        return stdlib_gettext.NullTranslations()
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=lang, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return stdlib_gettext.GNUTranslations(compiled)


def gettext(message: str) -> str:
    """``message`` (French) in the language of the current request."""
    return translations(current_language.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current_language.get()).ngettext(singular, plural, n)


_ = gettext


def N_(message: str) -> str:
    """Marks a French text for the catalog; it is translated where it is shown."""
    return message


def parse_accept_language(header: str) -> str | None:
    """The supported language the client prefers most, if any (RFC 9110 §12.5.4)."""
    choices: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:20]):
        tag, _sep, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _eq, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in SUPPORTED and quality > 0:
            choices.append((-quality, index, primary))
    return min(choices)[2] if choices else None


def negotiate(query_lang: str | None, cookie_lang: str | None, accept: str | None) -> str:
    for candidate in (query_lang, cookie_lang):
        if candidate and candidate.lower() in SUPPORTED:
            return candidate.lower()
    if accept:
        preferred = parse_accept_language(accept)
        if preferred:
            return preferred
    return DEFAULT
