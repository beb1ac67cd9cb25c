"""Webmail benchmark: server time to render the message list of a 10,000-message folder, to
search it, and to open a message (issue #5 target: p95 under 150 ms). The web application runs
in process (ASGI, no network); the store is real (SQLite or a throwaway PostgreSQL), encrypted.

Prints figures; never decides pass or fail.

    python -m bench.web_inbox [-n 10000] [-r 30] [--backend sqlite|postgres|both]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import time
from collections.abc import Awaitable, Callable

import httpx

from bench.backends import CHOICES, each_backend
from bench.store_bench import prepare, sample
from caducee.config import Settings
from caducee.services import mailboxes, mfa
from caducee.services.delivery import deliver_local
from caducee.web import create_web_app
from caducee.web.config import WebConfig

LOGIN = "dr@bench.test"
PASSWORD = "Bench-Password-2026!"


async def _timed(label: str, repeat: int, call: Callable[[], Awaitable[httpx.Response]]) -> None:
    timings: list[float] = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = await call()
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (label, response.status_code)
    timings.sort()
    p95 = timings[max(0, int(len(timings) * 0.95) - 1)]
    print(
        f"  {label:<38} p50 {statistics.median(timings):7.1f} ms   p95 {p95:7.1f} ms"
        f"   max {timings[-1]:7.1f} ms"
    )


async def run(settings: Settings, label: str, count: int, repeat: int) -> None:
    app, _box = await prepare(settings)
    # A password login opens a full session (the default asks new practices for a 2nd factor).
    practice_id = (await mailboxes.get_mailbox(app, LOGIN)).practice_id
    await mfa.set_second_factor_required(app, practice_id, False, actor="bench", source="")
    started = time.perf_counter()
    batch = 200
    for first in range(0, count, batch):
        await asyncio.gather(
            *(
                deliver_local(app, sample(n), [LOGIN])
                for n in range(first, min(count, first + batch))
            )
        )
    print(f"{label}: {count} messages stored in {time.perf_counter() - started:.1f} s")
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
        folder = (await client.get("/courrier")).headers["location"]
        inbox = (await client.get(folder)).headers["location"]
        listing = await client.get(inbox)
        message = re.search(r'href="([^"]+/m/\d+)"', listing.text)
        assert message
        await client.get(inbox + "?tri=objet")  # warms the metadata cache, like a first visit
        await _timed("list, newest first (page 1)", repeat, lambda: client.get(inbox))
        await _timed("list, page 100", repeat, lambda: client.get(inbox + "?page=100"))
        await _timed("list, sorted by subject", repeat, lambda: client.get(inbox + "?tri=objet"))
        await _timed(
            "search subject", repeat, lambda: client.get(inbox + "?q=rendu+9999&champ=objet")
        )
        await _timed("open a message", repeat, lambda: client.get(message.group(1)))
        await _timed(
            "message body (sandboxed frame)",
            repeat,
            lambda: client.get(message.group(1) + "/corps"),
        )
    await app._bench_cm.__aexit__(None, None, None)  # type: ignore[attr-defined]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--count", type=int, default=10_000)
    parser.add_argument("-r", "--repeat", type=int, default=30)
    parser.add_argument("--backend", choices=CHOICES, default="sqlite")
    args = parser.parse_args()
    await each_backend(
        args.backend, lambda settings, label: run(settings, label, args.count, args.repeat)
    )


if __name__ == "__main__":
    asyncio.run(main())
