"""``caducee triage``: classify a patient message with a practice's triage rules, so the
practice can try them: type, urgency and the warning signs found, as JSON.

    caducee triage message.eml            an RFC 5322 message, or plain text taken as its body
    caducee triage -                      the same from standard input
    caducee triage --jsonl messages.jsonl one {"id", "subject", "body"} per line → one
                                          {"id", "type", "urgent"} per line
    caducee triage --types rules.json …   try types before saving them (see rules_from_json)

``--practice ID`` names the practice whose rules apply: the settings saved in the admin console
(« Tri des messages »), read by ``practice_rules`` from the installation in ``--data``; without
it, the default types (the JSON of ``--types`` is the shape the practice's settings are stored in).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from caducee.app import App
from caducee.cli.common import DEFAULT_DATA, DataOption, fail, with_app
from caducee.domain.triage import DEFAULT_RULES, TriageRules, classify
from caducee.domain.triage_input import message_text, rules_from_json
from caducee.health import patient_triage
from caducee.i18n import language, tr
from caducee.services import practices

#: A message or a JSONL file bigger than this is refused (a patient message is a few kB).
MAX_INPUT = 16 * 1024 * 1024


def practice_rules(practice_id: int | None, data: Path = DEFAULT_DATA) -> TriageRules:
    """The triage rules a practice saved (the installation in ``data``), or the default types
    for no practice. An unknown practice is an error."""
    if practice_id is None:
        return DEFAULT_RULES

    async def read(app: App) -> TriageRules:
        await practices.get_practice(app, practice_id)  # NotFound: a clear error
        return await patient_triage.rules_of(app, practice_id)

    return with_app(data, read)


def _read(source: str) -> bytes:
    if source == "-":
        data = sys.stdin.buffer.read(MAX_INPUT + 1)
    else:
        try:
            with Path(source).open("rb") as handle:
                data = handle.read(MAX_INPUT + 1)
        except OSError as error:
            raise fail(
                tr(
                    f"impossible de lire {source} : {error.strerror}",
                    f"cannot read {source}: {error.strerror}",
                )
            ) from None
    if len(data) > MAX_INPUT:
        raise fail(tr("entrée trop grande (16 Mio au plus)", "input too large (16 MiB at most)"))
    return data


def _rules(practice: int | None, types: Path | None, data: Path) -> TriageRules:
    if types is None:
        return practice_rules(practice, data)
    try:
        return rules_from_json(json.loads(types.read_text("utf-8")))
    except (OSError, ValueError) as error:
        raise fail(
            tr(
                f"règles de tri illisibles dans {types} : {error}",
                f"unreadable triage rules in {types}: {error}",
            )
        ) from None


def _jsonl(data: bytes, rules: TriageRules) -> int:
    errors = 0
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            if not isinstance(item, dict):
                raise ValueError("not an object")
        except ValueError:
            errors += 1
            print(
                tr(
                    f"ligne {number} : objet JSON attendu, ignorée",
                    f"line {number}: a JSON object is expected, skipped",
                ),
                file=sys.stderr,
            )
            continue
        result = classify(str(item.get("subject") or ""), str(item.get("body") or ""), rules)
        out = {"id": item.get("id"), "type": result.type, "urgent": result.urgent}
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
    return errors


def triage_command(
    source: Annotated[
        str,
        typer.Argument(
            help="Message RFC 5322 ou texte (- : entrée standard) / message or text (- : stdin).",
            metavar="FILE|-",
        ),
    ],
    practice: Annotated[
        int | None,
        typer.Option("--practice", help="Cabinet dont les règles s'appliquent / practice id."),
    ] = None,
    jsonl: Annotated[
        bool,
        typer.Option(
            "--jsonl",
            help='Un objet {"id", "subject", "body"} par ligne / one JSON object per line.',
        ),
    ] = False,
    types: Annotated[
        Path | None,
        typer.Option(
            "--types",
            help="Types à essayer (JSON) au lieu de ceux du cabinet / types to try (JSON).",
        ),
    ] = None,
    data: DataOption = DEFAULT_DATA,
) -> None:
    """Trier un message de patient : type, urgence, signes d'alerte (JSON).
    / Triage a patient message: type, urgency, warning signs (JSON)."""
    rules = _rules(practice, types, data)
    given = _read(source)
    if jsonl:
        if _jsonl(given, rules):
            raise typer.Exit(1)
        return
    subject, body = message_text(given)
    result = classify(subject, body, rules)
    document = result.as_json(rules, "en" if language() == "en" else "fr")
    sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
