"""The last use of an account and of its mailbox is recorded on every door (issue 19: web,
IMAP, POP3, SMTP, API), through a real ``caducee serve`` process and real clients — what the
admin console's lists and the CNIL inactivity rule read. One practitioner per door, so that
each door alone must write it (a node writes a given account's last use once an hour)."""

from __future__ import annotations

import asyncio
import imaplib
import poplib
import smtplib
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import update

from caducee.app import open_app
from caducee.config import Settings
from caducee.services import accounts, api_tokens, mailboxes, mfa
from caducee.services.app_passwords import create_app_password
from caducee.store import tables
from tests.interop.test_lifecycle_doors import web_login
from tests.services.helpers import person, practice
from tests.serving import prepare, serve_process, wait_listeners

DOORS = ("imap", "pop3", "smtp", "api", "web")


def login(door: str) -> str:
    return f"dr.{door}@cabinet.test"


def last_uses(settings: Settings) -> dict[str, tuple[datetime | None, datetime | None]]:
    """Per door's practitioner: (account's last use, personal mailbox's last use)."""

    async def go() -> dict[str, tuple[datetime | None, datetime | None]]:
        async with open_app(settings) as app:
            return {
                door: (
                    (await accounts.get_account(app, login(door))).last_used_at,
                    (await mailboxes.get_mailbox(app, login(door))).last_used_at,
                )
                for door in DOORS
            }

    return asyncio.run(go())


def test_every_door_records_the_last_use(settings: Settings, tmp_path: Path) -> None:
    settings.hostname = "localhost"
    prepare(settings, {name: "127.0.0.1:0" for name in ("imaps", "pop3s", "submissions", "https")})

    async def setup() -> tuple[dict[str, str], str, int]:
        async with open_app(settings) as app:
            place = await practice(app)
            await mfa.set_second_factor_required(app, place.id, False, actor="t", source="t")
            passwords = {}
            for door in DOORS:
                await person(app, login(door))
                passwords[door] = await create_app_password(app, login(door), "Thunderbird")
            token, _ = await api_tokens.create_token(
                app, login("api"), "Logiciel", [login("api")], ["lecture"], actor="t", source="t"
            )
            box = await mailboxes.get_mailbox(app, login("api"))
            async with app.db.write() as conn:  # setting up is no use: start from none
                await conn.execute(update(tables.accounts).values(last_used_at=None))
                await conn.execute(update(tables.mailboxes).values(last_used_at=None))
            return passwords, token, box.id

    passwords, token, api_box = asyncio.run(setup())
    assert set(last_uses(settings).values()) == {(None, None)}
    began = datetime.now(UTC) - timedelta(seconds=1)
    with serve_process(settings, tmp_path) as proc:
        bound = wait_listeners(settings, proc, tmp_path, timeout=120)  # a loaded machine
        ports = {name: int(address.rsplit(":", 1)[1]) for name, address in bound.items()}
        context = ssl.create_default_context(cafile=str(settings.tls_dir / "ca.crt"))

        with imaplib.IMAP4_SSL("localhost", ports["imaps"], ssl_context=context) as imap:
            imap.login(login("imap"), passwords["imap"])
            assert imap.select("INBOX")[0] == "OK"
        pop3 = poplib.POP3_SSL("localhost", ports["pop3s"], context=context, timeout=10)
        pop3.user(login("pop3"))
        pop3.pass_(passwords["pop3"])
        pop3.stat()
        pop3.quit()
        with smtplib.SMTP_SSL("localhost", ports["submissions"], context=context) as smtp:
            smtp.login(login("smtp"), passwords["smtp"])
            raw = f"From: {login('smtp')}\r\nTo: {login('imap')}\r\nSubject: avis\r\n\r\nx\r\n"
            smtp.sendmail(login("smtp"), [login("imap")], raw.encode())
        with httpx.Client(base_url=f"https://localhost:{ports['https']}", verify=context) as http:
            auth = {"authorization": f"Bearer {token}"}
            assert http.get(f"/api/v1/boites/{api_box}/dossiers", headers=auth).status_code == 200
        with httpx.Client(base_url=f"https://localhost:{ports['https']}", verify=context) as http:
            assert web_login(http, login("web")) == 303
            assert http.get("/courrier", follow_redirects=True).status_code == 200
        proc.terminate()
        proc.wait(15)
    used = last_uses(settings)
    for door in DOORS:
        account, mailbox = used[door]
        assert account is not None and account >= began, (door, used[door])
        assert mailbox is not None and mailbox >= began, (door, used[door])
