"""CSV import into the patient registry: every row validated on its own; a clear report of
what went in and what was rejected (line number and reason). A bad row is rejected, the
others go in; nothing is half-written.

Format: a header row with French column names (case and accents ignored): ``nom``,
``prenom``, ``naissance`` (or ``date de naissance``), ``email`` (or ``adresse``), and
optionally ``mobile``, ``ins``, ``mode``, ``consentement``, ``notes``, ``partagee``
(oui/non). Separator ``;`` or ``,`` (detected from the header); UTF-8 with or without BOM,
or Windows-1252.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

from caducee.app import App
from caducee.errors import CaduceeError, InvalidInput
from caducee.health import patients
from caducee.health.patients import PatientData

MAX_BYTES = 2 * 1024 * 1024
MAX_ROWS = 5000

_COLUMNS = {
    "nom": "last_name",
    "prenom": "first_name",
    "naissance": "birth_date",
    "date de naissance": "birth_date",
    "email": "email",
    "courriel": "email",
    "adresse": "email",
    "mobile": "mobile",
    "telephone": "mobile",
    "ins": "ins",
    "mode": "delivery_mode",
    "consentement": "consent_date",
    "notes": "notes",
    "partagee": "shared_address",
}
_REQUIRED = ("last_name", "first_name", "birth_date", "email")


@dataclass
class ImportReport:
    imported: list[int] = field(default_factory=list)  # patient ids
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)


def _plain(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name.strip().lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _decode(data: bytes) -> str:
    if len(data) > MAX_BYTES:
        raise InvalidInput(
            f"Fichier trop volumineux : {MAX_BYTES // (1024 * 1024)} Mo au plus.",
            f"File too large: at most {MAX_BYTES // (1024 * 1024)} MB.",
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def parse(data: bytes) -> list[tuple[int, PatientData | str]]:
    """(line, data or the reason it is unusable) per row; raises InvalidInput for the file."""
    text = _decode(data)
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") >= first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput("Fichier vide.", "Empty file.") from None
    columns = [_COLUMNS.get(_plain(name)) for name in header]
    missing = [c for c in _REQUIRED if c not in columns]
    if missing:
        raise InvalidInput(
            "Colonnes obligatoires absentes de la première ligne : nom, prenom, naissance, email.",
            "Required columns missing from the first line: nom, prenom, naissance, email.",
        )
    rows: list[tuple[int, PatientData | str]] = []
    for line, values in enumerate(reader, start=2):
        if not any(v.strip() for v in values):
            continue
        if len(rows) >= MAX_ROWS:
            raise InvalidInput(
                f"Trop de lignes : {MAX_ROWS} patients au plus par import.",
                f"Too many rows: at most {MAX_ROWS} patients per import.",
            )
        fields: dict[str, str] = {}
        for column, value in zip(columns, values, strict=False):
            if column is not None:
                fields[column] = value.strip()
        shared = _plain(fields.pop("shared_address", "")) in ("oui", "o", "1", "x", "yes")
        try:
            rows.append((line, PatientData(**fields, shared_address=shared)))
        except TypeError:
            rows.append((line, "colonnes incomplètes / incomplete columns"))
    return rows


async def import_csv(
    app: App,
    practice_id: int,
    data: bytes,
    *,
    actor: str,
    source: str,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Import every valid row; ``progress(done, total)`` is told after each row."""
    report = ImportReport()
    rows = parse(data)
    for done, (line, item) in enumerate(rows, start=1):
        if progress is not None:
            progress(done - 1, len(rows))
        if isinstance(item, str):
            report.rejected.append((line, item))
            continue
        missing = [name for name in _REQUIRED if not getattr(item, name)]
        if missing:
            report.rejected.append((line, "champ obligatoire vide / required field empty"))
            continue
        try:
            created = await patients.add_patient(app, practice_id, item, actor=actor, source=source)
        except CaduceeError as error:
            report.rejected.append((line, error.message()))
            continue
        report.imported.append(created.id)
    if progress is not None:
        progress(len(rows), len(rows))
    return report
