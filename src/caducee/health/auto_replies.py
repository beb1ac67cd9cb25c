"""PLACEHOLDER — owned by the AUTO-REPLY engineer of issue 16, whose module replaces this one
when the branches are merged (the integrator keeps theirs). Only the shared interface is here,
so the patient doors (triage wiring) can call it: it sends nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import Enum

from caducee.app import App
from caducee.domain.model import StoredMessage
from caducee.domain.triage import Triage


class Channel(Enum):
    MAIL = "mail"
    PORTAL = "portal"
    MES = "mes"


async def after_delivery(
    app: App,
    *,
    raw: bytes,
    sender: str,
    stored: Sequence[StoredMessage],
    channel: Channel,
    triage: Triage | None = None,
    patient: bool = False,
    now: datetime | None = None,
) -> None:
    """Placeholder: the auto-replies (absence, first message, outside opening hours, urgent,
    out of scope) are decided and sent by the AUTO-REPLY engineer's module."""
    return None
