"""Triage benchmark: urgency precision and recall, type accuracy, confusions and throughput on
the corpus of patient messages (tests/domain/triage_corpus.jsonl, or any JSONL file of
``{"id", "subject", "body", "type", "urgent"}`` lines).

Prints figures; never decides pass or fail (tests/domain/test_triage.py holds the targets).

    python -m bench.triage [--corpus FILE] [--errors] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from caducee.domain.triage import Triage, classify

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "domain" / "triage_corpus.jsonl"


@dataclass
class Figures:
    total: int
    true_pos: int
    false_pos: int
    false_neg: int
    type_right: int
    confusions: Counter[tuple[str, str]]

    @property
    def recall(self) -> float:
        found = self.true_pos + self.false_neg
        return self.true_pos / found if found else 1.0

    @property
    def precision(self) -> float:
        raised = self.true_pos + self.false_pos
        return self.true_pos / raised if raised else 1.0

    @property
    def type_accuracy(self) -> float:
        return self.type_right / self.total if self.total else 1.0


def load(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def evaluate(
    cases: list[dict[str, object]],
) -> tuple[Figures, list[tuple[dict[str, object], Triage]]]:
    figures = Figures(len(cases), 0, 0, 0, 0, Counter())
    wrong: list[tuple[dict[str, object], Triage]] = []
    for case in cases:
        result = classify(str(case.get("subject", "")), str(case.get("body", "")))
        expected_urgent = bool(case["urgent"])
        if result.urgent and expected_urgent:
            figures.true_pos += 1
        elif result.urgent:
            figures.false_pos += 1
        elif expected_urgent:
            figures.false_neg += 1
        if result.type == case["type"]:
            figures.type_right += 1
        else:
            figures.confusions[(str(case["type"]), result.type)] += 1
        if result.type != case["type"] or result.urgent != expected_urgent:
            wrong.append((case, result))
    return figures, wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--errors", action="store_true", help="list the misclassified messages")
    parser.add_argument("--repeat", type=int, default=20, help="passes for the throughput")
    args = parser.parse_args()
    cases = load(args.corpus)

    started = time.perf_counter()
    classify("", "premier appel : chargement du lemmatiseur")
    warmup = time.perf_counter() - started
    figures, wrong = evaluate(cases)

    started = time.perf_counter()
    for _ in range(args.repeat):
        for case in cases:
            classify(str(case.get("subject", "")), str(case.get("body", "")))
    elapsed = time.perf_counter() - started
    rate = args.repeat * len(cases) / elapsed

    urgent = figures.true_pos + figures.false_neg
    print(f"corpus: {args.corpus.name}, {figures.total} messages, {urgent} urgent")
    print(
        f"urgency: recall {figures.recall:.1%} ({figures.true_pos}/{urgent}), "
        f"precision {figures.precision:.1%} ({figures.true_pos}/"
        f"{figures.true_pos + figures.false_pos})"
    )
    print(f"type accuracy: {figures.type_accuracy:.1%} ({figures.type_right}/{figures.total})")
    if figures.confusions:
        print("confusions (expected → found):")
        for (expected, found), count in figures.confusions.most_common():
            print(f"  {expected:>15} → {found:<15} {count}")
    print(
        f"throughput: {rate:,.0f} messages/s ({1000 / rate:.3f} ms each, cached); "
        f"first call with lemmatizer load {warmup * 1000:.0f} ms"
    )
    if args.errors:
        for case, result in wrong:
            mark = "URGENCY" if result.urgent != bool(case["urgent"]) else "type"
            print(
                f"\n[{mark}] {case['id']} expected {case['type']}/{case['urgent']} "
                f"got {result.type}/{result.urgent} {result.scores}"
            )
            print(f"  {case.get('subject', '')} | {case['body']}")
            for sign in result.signs:
                print(f"  + {sign.kind}: {sign.words}")
            for sign in result.set_aside:
                print(f"  - {sign.kind}: {sign.words} ({sign.set_aside})")


if __name__ == "__main__":
    main()
