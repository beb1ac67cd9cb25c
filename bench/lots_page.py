"""Télétransmission benchmark: server time of the webmail's « Télétransmission » page and of
``GET /api/v1/lots`` over a TLT mailbox holding 10,000 lots (issue 15 target: p95 under
100 ms). The web application runs in process (ASGI, no network); the store is real (SQLite or
a throwaway PostgreSQL).

Lots span 200 days the way a practice sends them (about 50 a day): most acknowledged, some
with a negative ARL, undelivered, without ARL or sent again, and a few from the last two days
still awaiting their ARL; ARL and NOEMIE returns for most, some returns matched to no lot. The
watchdog has flagged the lots needing action (the navigation's badge counts them).

Prints figures; never decides pass or fail.

    python -m bench.lots_page [-n 10000] [-r 100] [--backend sqlite|postgres|both]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import insert, select, text

from bench.backends import CHOICES, each_backend
from bench.store_bench import prepare
from caducee.config import Settings
from caducee.domain.model import MailboxType
from caducee.services import api_tokens, mailboxes, mfa
from caducee.store.tables import tlt_lots, tlt_returns
from caducee.web import create_web_app
from caducee.web.config import WebConfig

LOGIN = "dr@bench.test"
PASSWORD = "Bench-Password-2026!"
TLT = "tlt@bench.test"
SENDER = "12345678901234"


def _lots_and_returns(
    practice_id: int, mailbox_id: int, count: int, now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows of ``count`` lots (ids 1..count, oldest first) and of their returns."""
    rng = random.Random(15)
    lots: list[dict[str, Any]] = []
    returns: list[dict[str, Any]] = []
    span = timedelta(days=200)
    for n in range(count):
        sent = now - span + span * (n / count) + timedelta(seconds=rng.randint(0, 600))
        lot_id = n + 1
        row: dict[str, Any] = {
            "id": lot_id,
            "practice_id": practice_id,
            "mailbox_id": mailbox_id,
            "sender_number": SENDER,
            "compostage": sent.strftime("%Y%m%d%H%M%S") + f"{n % 100000:05d}",
            "sequence": f"{n % 1000000:06d}",
            "invoice_count": rng.randint(1, 40),
            "fund": "01422@422.01.rss.fr",
            "test_mode": False,
            "size": rng.randint(4_000, 60_000),
            "message_id": f"<lot-{n}@facturation.test>",
            "queue_id": None,
            "sent_at": sent,
            "delivery": "delivered",
            "delivery_detail": "250 2.0.0 ok",
            "delivery_at": sent + timedelta(seconds=5),
            "arl": None,
            "arl_at": None,
            "notified_at": None,
        }
        recent = now - sent < timedelta(days=2)
        draw = rng.random()
        if recent and draw < 0.7:
            pass  # awaiting its ARL
        elif draw < 0.93 or recent:
            row["arl"], row["arl_at"] = "arl_positive", sent + timedelta(hours=3)
        elif draw < 0.96:
            row["arl"], row["arl_at"] = "arl_negative", sent + timedelta(hours=3)
        elif draw < 0.98:
            row["delivery"], row["delivery_detail"] = "failed", "550 5.1.1 inconnu"
        # else: no ARL ever came
        if row["arl"] is None and row["delivery"] != "failed" and not recent:
            row["notified_at"] = sent + timedelta(days=5)
        if row["arl"] == "arl_negative":
            row["notified_at"] = sent + timedelta(days=1)
        lots.append(row)
        if row["arl"]:
            returns.append(_return(practice_id, mailbox_id, lot_id, row, row["arl"]))
            if row["arl"] == "arl_positive" and rng.random() < 0.5:
                returns.append(_return(practice_id, mailbox_id, lot_id, row, "noemie", days=10))
    # A tenth of the lots needing action were sent again by the next lot (which takes the
    # question over).
    for row in lots:
        row.setdefault("resend_of", None)
        row["resent_by"] = None
    for row in lots[:-1]:
        if row["notified_at"] is not None and rng.random() < 0.1:
            row["resent_by"] = row["id"] + 1
            lots[row["id"]]["resend_of"] = row["id"]
    for n in range(60):  # returns the recogniser could not match
        returns.append(
            {
                "practice_id": practice_id,
                "mailbox_id": mailbox_id,
                "lot_id": None,
                "kind": "unknown",
                "description": "XYZ",
                "compostage": None,
                "sender_number": None,
                "size": 2_000,
                "stored_message_id": None,
                "received_at": now - timedelta(days=n),
            }
        )
    return lots, returns


def _return(
    practice_id: int, mailbox_id: int, lot_id: int, lot: dict[str, Any], kind: str, days: int = 0
) -> dict[str, Any]:
    return {
        "practice_id": practice_id,
        "mailbox_id": mailbox_id,
        "lot_id": lot_id,
        "kind": kind,
        "description": kind.upper(),
        "compostage": lot["compostage"],
        "sender_number": SENDER,
        "size": 3_000,
        "stored_message_id": None,
        "received_at": lot["sent_at"] + timedelta(hours=3, days=days),
    }


async def _timed(label: str, repeat: int, call: Callable[[], Awaitable[httpx.Response]]) -> None:
    timings: list[float] = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = await call()
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (label, response.status_code, response.text[:300])
    timings.sort()
    p95 = timings[max(0, int(len(timings) * 0.95) - 1)]
    print(
        f"  {label:<44} p50 {statistics.median(timings):7.1f} ms   p95 {p95:7.1f} ms"
        f"   max {timings[-1]:7.1f} ms"
    )


async def run(settings: Settings, label: str, count: int, repeat: int) -> None:
    app, _box = await prepare(settings)
    box = await mailboxes.add_mailbox(app, TLT, MailboxType.TLT, LOGIN)
    # A password login opens a full session (the default asks new practices for a 2nd factor).
    await mfa.set_second_factor_required(app, box.practice_id, False, actor="bench", source="")
    now = datetime.now(UTC)
    lots, returns = _lots_and_returns(box.practice_id, box.id, count, now)
    started = time.perf_counter()
    async with app.db.write() as conn:
        for first in range(0, len(lots), 1000):
            await conn.execute(insert(tlt_lots), lots[first : first + 1000])
        for first in range(0, len(returns), 1000):
            await conn.execute(insert(tlt_returns), returns[first : first + 1000])
    if label == "PostgreSQL":  # explicit ids: move the sequence past them
        async with app.db.write() as conn:
            await conn.execute(
                text("SELECT setval('tlt_lots_id_seq', (SELECT max(id) FROM tlt_lots))")
            )
    async with app.db.read() as conn:
        stored = len((await conn.execute(select(tlt_lots.c.id))).all())
    print(
        f"{label}: {stored} lots and {len(returns)} returns stored in "
        f"{time.perf_counter() - started:.1f} s"
    )
    token, _ = await api_tokens.create_token(
        app, LOGIN, "bench", [TLT], ["lots"], actor="bench", source="bench"
    )
    bearer = {"authorization": f"Bearer {token}"}
    web = create_web_app(app, WebConfig(login_attempts_per_minute=10_000))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=web), base_url="https://bench.test"
    ) as client:
        page = await client.get("/connexion")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        await client.post(
            "/connexion",
            data={"csrf": csrf.group(1), "identifiant": LOGIN, "mot_de_passe": PASSWORD},
        )
        first = await client.get("/teletransmission")
        assert "lots-badge" in first.text, (first.status_code, first.headers, first.text[-3000:])
        assert '<tr class="action">' in first.text, first.text[-3000:]
        pages = (
            ("home page (navigation badge)", "/accueil"),
            ("lots page 1 (to send again first)", "/teletransmission"),
            ("lots page 50", "/teletransmission?page=50"),
            ("lots, state filter (arl_positif)", "/teletransmission?etat=arl_positif"),
            (
                "lots, state filter (sans_arl) + since",
                "/teletransmission?etat=sans_arl&du=2020-01-01",
            ),
        )
        for name, path in pages:
            await _timed(name, repeat, lambda path=path: client.get(path))  # type: ignore[misc]
        calls = (
            ("API /lots (100)", "/api/v1/lots"),
            ("API /lots?state=arl_negatif", "/api/v1/lots?state=arl_negatif"),
            ("API /lots?per_page=500&page=3", "/api/v1/lots?per_page=500&page=3"),
        )
        for name, path in calls:
            await _timed(
                name,
                repeat,
                lambda path=path: client.get(path, headers=bearer),  # type: ignore[misc]
            )
        await _timed(
            "CSV export of every lot",
            max(3, repeat // 10),
            lambda: client.get("/teletransmission/lots.csv"),
        )
    await app._bench_cm.__aexit__(None, None, None)  # type: ignore[attr-defined]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--count", type=int, default=10_000)
    parser.add_argument("-r", "--repeat", type=int, default=100)
    parser.add_argument("--backend", choices=CHOICES, default="both")
    args = parser.parse_args()
    await each_backend(
        args.backend, lambda settings, label: run(settings, label, args.count, args.repeat)
    )


if __name__ == "__main__":
    asyncio.run(main())
