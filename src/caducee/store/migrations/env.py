"""Alembic environment: always run with a connection handed over by ``caducee.store.migrate``."""

from __future__ import annotations

from alembic import context

from caducee.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Run migrations through caducee (caducee init / caducee doctor).")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
