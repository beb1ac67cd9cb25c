"""The webmail: reading (:mod:`.reading`) and writing (:mod:`.compose`)."""

from __future__ import annotations

from caducee.web.webmail import compose, reading

routes = [*reading.routes, *compose.routes]
