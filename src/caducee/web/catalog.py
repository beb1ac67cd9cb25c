"""Keep the gettext catalogs in step with the code: ``python -m caducee.web.catalog``.

Extracts every French text of the web door (templates: ``_()``/``ngettext()``; Python:
``_()``, ``gettext()``, ``ngettext()`` and ``N_()``) into ``locale/caducee.pot`` and merges it
into each language's ``.po`` (new texts arrive untranslated, gone ones are marked obsolete).
The test suite fails when the template is stale or an English text is missing.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po, write_po

from caducee.web.i18n import DOMAIN, LOCALE_DIR

WEB_DIR = Path(__file__).resolve().parent
TEMPLATE = LOCALE_DIR / f"{DOMAIN}.pot"
LANGUAGES = ("en",)

METHOD_MAP = [
    ("templates/**.html", "jinja2.ext:babel_extract"),
    ("**.py", "python"),
]
OPTIONS_MAP = {
    "templates/**.html": {"extensions": "jinja2.ext.i18n", "newstyle_gettext": "true"},
}
KEYWORDS = {**DEFAULT_KEYWORDS, "N_": None}


def extract() -> Catalog:
    catalog = Catalog(project="Caducée", domain=DOMAIN, charset="utf-8", fuzzy=False)
    for filename, lineno, message, _comments, context in extract_from_dir(
        str(WEB_DIR), METHOD_MAP, OPTIONS_MAP, KEYWORDS, strip_comment_tags=True
    ):
        catalog.add(message, None, [(f"web/{filename}", lineno)], context=context)
    return catalog


def render_pot(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    write_po(out, catalog, omit_header=True, sort_output=True, width=100)
    return out.getvalue()


def update() -> None:
    template = extract()
    TEMPLATE.parent.mkdir(parents=True, exist_ok=True)
    TEMPLATE.write_bytes(render_pot(template))
    for lang in LANGUAGES:
        path = LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
        if path.exists():
            with path.open("rb") as handle:
                catalog = read_po(handle, locale=lang, domain=DOMAIN)
        else:
            catalog = Catalog(locale=lang, domain=DOMAIN, project="Caducée", charset="utf-8")
        catalog.update(template, no_fuzzy_matching=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        out = io.BytesIO()
        write_po(out, catalog, sort_output=True, width=100, ignore_obsolete=True)
        path.write_bytes(out.getvalue())
        missing = [m.id for m in catalog if m.id and not m.string]
        if missing:
            print(f"{lang}: {len(missing)} texte(s) à traduire / to translate", file=sys.stderr)


if __name__ == "__main__":
    update()
