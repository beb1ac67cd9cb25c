"""The connection types the layers above pass back to the store's repositories.

Services hold a transaction open across several repository calls (and the audit append), so
they name its type; they import it from here, never from SQLAlchemy: only ``store/`` knows
SQL (import-linter contract « only store/ knows SQL »).
"""

from __future__ import annotations

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["AsyncConnection", "Connection"]
