"""The webmail: reading (:mod:`.reading`), writing (:mod:`.compose`), address books
(:mod:`.books`), the portal pickups of sent mail (:mod:`.pickups`), the télétransmission lots
(:mod:`.teletransmission`)."""

from __future__ import annotations

from caducee.web.webmail import books, compose, pickups, reading, teletransmission

# The books' fixed paths ("/carnet/pros") come before the parameterised ones.
routes = [
    *books.routes,
    *reading.routes,
    *compose.routes,
    *pickups.routes,
    *teletransmission.routes,
]
