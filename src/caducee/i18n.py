"""Language selection for messages shown to people (French by default, English available)."""

from __future__ import annotations

import os

SUPPORTED = ("fr", "en")


def language() -> str:
    """The language for user-facing messages: ``CADUCEE_LANG`` if supported, else French."""
    lang = os.environ.get("CADUCEE_LANG", "fr").strip().lower()[:2]
    return lang if lang in SUPPORTED else "fr"


def tr(fr: str, en: str) -> str:
    """Pick the French or English text according to :func:`language`."""
    return en if language() == "en" else fr
