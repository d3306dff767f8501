"""``open_store``: one object holding the engine and the repositories."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

from sqlalchemy import Engine

from edge_agent.store.database import Database, default_db_url, make_engine
from edge_agent.store.keys import KeyRepository
from edge_agent.store.ledger import LedgerRepository
from edge_agent.store.migrate import upgrade
from edge_agent.store.repository import ProfileRepository


@dataclass(frozen=True)
class Store:
    url: str
    db: Database
    profiles: ProfileRepository
    ledger: LedgerRepository
    keys: KeyRepository

    @property
    def engine(self) -> Engine:
        return self.db.engine

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_store(url: str | None = None, *, migrate: bool = True) -> Store:
    """Open (and create or upgrade in place, unless ``migrate=False``) the private store.

    ``url`` is any SQLAlchemy URL; the default is a SQLite file in the user's data dir.
    """
    url = url or default_db_url()
    engine = make_engine(url)
    if migrate:
        upgrade(engine)
    db = Database(engine)
    return Store(
        url=url,
        db=db,
        profiles=ProfileRepository(db),
        ledger=LedgerRepository(db),
        keys=KeyRepository(db),
    )
