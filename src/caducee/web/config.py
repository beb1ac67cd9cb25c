"""Settings of the web door: session lifetimes, request limits, the clock.

They are read from the ``[web]`` table of ``caducee.toml`` and ``CADUCEE_WEB_*`` environment
variables (the node's :class:`~caducee.config.Settings` does not know them yet)::

    [web]
    session_idle_minutes = 30       # log out after this long without a request
    session_absolute_hours = 12     # and in any case this long after the login
    max_body_bytes = 1048576        # larger requests get 413
    login_attempts_per_minute = 10  # per client address, on the login forms
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from caducee.config import Settings
from caducee.errors import ConfigurationError
from caducee.services.lockout import utcnow
from caducee.services.web_sessions import SessionPolicy


def _positive(value: object, name: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        number = 0
    if number <= 0:
        raise ConfigurationError(
            f"Paramètre {name} : nombre entier positif attendu, reçu {value!r}.",
            f"Setting {name}: positive integer expected, got {value!r}.",
        )
    return number


@dataclass
class WebConfig:
    session_idle: timedelta = timedelta(minutes=30)
    session_absolute: timedelta = timedelta(hours=12)
    max_body_bytes: int = 1024 * 1024
    login_attempts_per_minute: int = 10
    #: The current time (UTC); tests inject a fake clock.
    clock: Callable[[], datetime] = field(default=utcnow)

    @property
    def session_policy(self) -> SessionPolicy:
        return SessionPolicy(idle=self.session_idle, absolute=self.session_absolute)

    @classmethod
    def from_settings(cls, settings: Settings) -> WebConfig:
        config = cls()
        table: dict[str, object] = {}
        if settings.config_path.exists():
            try:
                doc = tomllib.loads(settings.config_path.read_text("utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError):
                doc = {}  # load_settings already refused an unreadable file
            web = doc.get("web", {})
            table = dict(web) if isinstance(web, dict) else {}
        env = os.environ
        values = {
            "session_idle_minutes": env.get(
                "CADUCEE_WEB_SESSION_IDLE_MINUTES", table.get("session_idle_minutes")
            ),
            "session_absolute_hours": env.get(
                "CADUCEE_WEB_SESSION_ABSOLUTE_HOURS", table.get("session_absolute_hours")
            ),
            "max_body_bytes": env.get("CADUCEE_WEB_MAX_BODY_BYTES", table.get("max_body_bytes")),
            "login_attempts_per_minute": env.get(
                "CADUCEE_WEB_LOGIN_ATTEMPTS_PER_MINUTE", table.get("login_attempts_per_minute")
            ),
        }
        if values["session_idle_minutes"] is not None:
            config.session_idle = timedelta(
                minutes=_positive(values["session_idle_minutes"], "web.session_idle_minutes")
            )
        if values["session_absolute_hours"] is not None:
            config.session_absolute = timedelta(
                hours=_positive(values["session_absolute_hours"], "web.session_absolute_hours")
            )
        if values["max_body_bytes"] is not None:
            config.max_body_bytes = _positive(values["max_body_bytes"], "web.max_body_bytes")
        if values["login_attempts_per_minute"] is not None:
            config.login_attempts_per_minute = _positive(
                values["login_attempts_per_minute"], "web.login_attempts_per_minute"
            )
        return config
