"""Alembic environment of the private store.

Normally run through ``edge_agent.store.migrate.upgrade``, which passes a connection in
``config.attributes["connection"]``. Developers can also run the alembic CLI with
``-c edge_agent/store/alembic.ini -x url=sqlite:///path/to/edge.db``.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from edge_agent.store.models import Base

config = context.config
target_metadata = Base.metadata
if config.config_file_name is not None:  # the alembic CLI: show what it does
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite can only ALTER through table copies
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    return context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    from edge_agent.store.database import make_engine

    if not _url():
        raise RuntimeError("no database: pass -x url=sqlite:///path/to/edge.db")
    engine = make_engine(_url())
    with engine.begin() as connection:
        _configure_and_run(connection)
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
