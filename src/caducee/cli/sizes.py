"""Human sizes on the command line: ``5G``, ``500M``, ``1024K``, or bytes."""

from __future__ import annotations

import re

from caducee.errors import InvalidInput

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(?:I?B|O)?\s*", text.upper())
    if not match:
        raise InvalidInput(
            f"Taille invalide « {text} » : par exemple 500M, 5G ou un nombre d'octets.",
            f"Invalid size '{text}': for example 500M, 5G or a number of bytes.",
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


def format_size(size: int) -> str:
    for unit in ("T", "G", "M", "K"):
        if size >= _UNITS[unit] and size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]} {unit}o"
    if size >= 1024**2:
        return f"{size / 1024**2:.1f} Mo"
    return f"{size} o"
