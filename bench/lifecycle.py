"""Accounts and mailboxes (issue 19): what the last-use note costs on the paths every door
takes, and how long a mailbox's deletion takes.

- ``open_mailbox`` per second: the authorization every IMAP SELECT, POP3 session, webmail page
  and API call goes through (it now notes the last use, one UPDATE an hour at most);
- ``authenticate_mail`` per second: an app-password login (IMAP, POP3, SMTP AUTH);
- the deletion of a mailbox of ``-n`` messages (key shredded, rows and blobs removed), when the
  code under test has it (``services.lifecycle``).

Runs in-process on SQLite (or a throwaway PostgreSQL with ``--backend postgres``); prints
figures, never decides pass or fail. To compare with the code before, run the same file with
``PYTHONPATH`` set to the other tree's ``src``, alternating runs:

    PYTHONPATH=src:. python -m bench.lifecycle [-n 2000] [--calls 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import time

from bench.backends import CHOICES, each_backend
from caducee.app import open_app
from caducee.config import Settings
from caducee.domain.model import MailboxType, Role
from caducee.services import accounts, mailboxes, practices
from caducee.services.app_passwords import create_app_password
from caducee.services.auth import authenticate_mail
from caducee.services.messages import Delivery, store_batch
from caducee.store.keyring import create_master_key_file

PASSWORD = "Correct-Horse-42-Battery"
OWNER = "dr@cabinet.test"
SHARED = "accueil@cabinet.test"


async def run(settings: Settings, label: str, messages: int, calls: int) -> None:
    print(f"--- {label}")
    create_master_key_file(settings)
    async with open_app(settings, upgrade=True) as app:
        place = await practices.create_practice(app, "Cabinet", ["cabinet.test"])
        assert place.id
        await accounts.add_account(
            app,
            accounts.NewAccount(
                login=OWNER, last_name="Martin", role=Role.PRATICIEN, password=PASSWORD
            ),
        )
        box = await mailboxes.add_mailbox(app, SHARED, MailboxType.ORG, OWNER)
        secret = await create_app_password(app, OWNER, "bench")

        started = time.perf_counter()
        for _ in range(calls):
            await mailboxes.open_mailbox(app, OWNER, SHARED)
        elapsed = time.perf_counter() - started
        print(f"open_mailbox: {calls / elapsed:8.0f} /s ({elapsed * 1e6 / calls:.0f} µs each)")

        started = time.perf_counter()
        logins = max(1, calls // 4)
        for _ in range(logins):
            await authenticate_mail(app, OWNER, secret, "imap", "127.0.0.1")
        elapsed = time.perf_counter() - started
        each = elapsed * 1e6 / logins
        print(f"authenticate_mail: {logins / elapsed:8.0f} /s ({each:.0f} µs each)")

        body = b"Subject: Compte rendu\r\n\r\n" + b"Texte du compte rendu.\r\n" * 40
        big = b"Subject: Imagerie\r\n\r\n" + b"x" * 200_000 + b"\r\n"
        for start in range(0, messages, 100):
            batch = [
                Delivery(raw=big if (start + i) % 20 == 0 else body, mailbox_ids=[box.id])
                for i in range(min(100, messages - start))
            ]
            await store_batch(app, batch)
        try:
            lifecycle = importlib.import_module("caducee.services.lifecycle")
        except ImportError:
            print(f"delete a mailbox of {messages} messages: (not in this tree)")
            return
        started = time.perf_counter()
        deleted = await lifecycle.delete_mailbox(app, SHARED, confirm=SHARED)
        elapsed = time.perf_counter() - started
        print(
            f"delete a mailbox of {deleted.messages} messages ({messages // 20} blob files): "
            f"{elapsed:.2f} s ({messages / elapsed:.0f} messages/s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=2000, help="messages in the deleted mailbox")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--backend", choices=CHOICES, default="sqlite")
    args = parser.parse_args()
    asyncio.run(
        each_backend(args.backend, lambda settings, label: run(settings, label, args.n, args.calls))
    )


if __name__ == "__main__":
    main()
