"""A patient's reply from the pickup portal (issue 7) as a flow: each file the patient attaches
is scanned by the antivirus (:mod:`caducee.flows.antivirus`) before the reply is delivered
into the practice's mailbox by :func:`caducee.health.pickup.reply`."""

from __future__ import annotations

from caducee.app import App
from caducee.flows import antivirus
from caducee.health import pickup
from caducee.health.pickup_mail import ReplyFile
from caducee.health.pickup_store import Pickup


async def reply(app: App, found: Pickup, text: str, files: list[ReplyFile], *, source: str) -> None:
    for file in files:
        await antivirus.check(app, file.data, door="portal", source=source, actor="patient")
    await pickup.reply(app, found, text, files, source=source)
