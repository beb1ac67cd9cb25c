"""``caducee triage``: classify a patient message with a practice's triage rules, so the
practice can try them: type, urgency and the warning signs found, as JSON.

    caducee triage message.eml            an RFC 5322 message, or plain text taken as its body
    caducee triage -                      the same from standard input
    caducee triage --jsonl messages.jsonl one {"id", "subject", "body"} per line → one
                                          {"id", "type", "urgent"} per line
    caducee triage --types rules.json …   try types before saving them (see rules_from_json)

``--practice ID`` names the practice whose rules apply. Until practices store their triage
settings, every practice has the default rules: ``practice_rules`` is the one place that will
read them (the JSON of ``--types`` is the shape to store).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from caducee.cli.common import fail
from caducee.domain.triage import DEFAULT_RULES, TriageRules, classify
from caducee.domain.triage_input import message_text, rules_from_json
from caducee.i18n import language, tr

#: A message or a JSONL file bigger than this is refused (a patient message is a few kB).
MAX_INPUT = 16 * 1024 * 1024


def practice_rules(practice_id: int | None) -> TriageRules:
    """The triage rules of a practice. Hook: practices do not store triage settings yet, so
    every practice (and none) gets the default types; the settings will be read here."""
    return DEFAULT_RULES


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


def _rules(practice: int | None, types: Path | None) -> TriageRules:
    if types is None:
        return practice_rules(practice)
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
) -> None:
    """Trier un message de patient : type, urgence, signes d'alerte (JSON).
    / Triage a patient message: type, urgency, warning signs (JSON)."""
    rules = _rules(practice, types)
    data = _read(source)
    if jsonl:
        if _jsonl(data, rules):
            raise typer.Exit(1)
        return
    subject, body = message_text(data)
    result = classify(subject, body, rules)
    document = result.as_json(rules, "en" if language() == "en" else "fr")
    sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
