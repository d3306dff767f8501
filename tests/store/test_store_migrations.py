"""Alembic migrations: a database from an older release is upgraded in place."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from edge_agent.store import open_store
from edge_agent.store.database import make_engine
from edge_agent.store.migrate import alembic_config, current_revision, head_revision, upgrade
from edge_agent.store.models import Base


def test_open_store_creates_the_schema_at_head(db_url: str) -> None:
    with open_store(db_url) as store:
        assert current_revision(store.engine) == head_revision() == "0004"
        tables = set(inspect(store.engine).get_table_names())
    assert {
        "users",
        "writing_samples",
        "tasks",
        "user_extra_fields",
        "ledger_entries",
        "api_keys",
    } <= tables


def test_a_0001_database_is_upgraded_in_place_and_keeps_its_data(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine, "0001")
    assert current_revision(engine) == "0001"
    columns = {c["name"] for c in inspect(engine).get_columns("ledger_entries")}
    assert "guard_policy" not in columns and "tasks" not in inspect(engine).get_table_names()
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (id, name, age, location, private_information, data_version,"
                " created_at, updated_at) VALUES ('u_old', 'Ada Moss', '41', 'Tacoma',"
                " 'Keeps bees', 3, '2024-05-01 10:00:00', '2024-05-01 10:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO writing_samples (user_id, position, title, text)"
                " VALUES ('u_old', 0, 'Spring', 'Tulips again.')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO ledger_entries (created_at, user_id, mode, endpoint, method,"
                " payload, bytes_up, status) VALUES ('2024-05-01 10:00:00', 'u_old', 'sketch',"
                " '/v1/sketch', 'POST', X'7B7D', 2, 'ok')"
            )
        )
    engine.dispose()

    with open_store(db_url) as store:
        assert current_revision(store.engine) == "0004"
        ctx = store.profiles.load_context("u_old")
        assert (ctx.name, ctx.data_version, ctx.fields["Privacy_info"]) == (
            "Ada Moss",
            3,
            "Keeps bees",
        )
        assert ctx.history == (("Spring", "Tulips again."),)
        entries, total = store.ledger.query(user_id="u_old")
        assert total == 1 and entries[0].payload == b"{}"
        assert entries[0].guard_policy is None and entries[0].guard_findings is None
        # The new schema works on the old data.
        new_id = store.ledger.begin("u_old", "sketch", "/v1/sketch", "POST", b"[]", "redact", {})
        assert store.ledger.get(new_id).guard_policy == "redact"


def test_opening_twice_is_a_no_op(db_url: str) -> None:
    with open_store(db_url) as store:
        store.ledger.begin(None, "sketch", "/v1/sketch", "POST", b"{}")
    with open_store(db_url) as store:
        assert store.ledger.query()[1] == 1


def test_the_models_match_the_migrations(db_url: str) -> None:
    with open_store(db_url) as store, store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_migrations_downgrade_to_nothing_and_back(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.begin() as connection:
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}

    upgrade(engine)
    assert current_revision(engine) == head_revision()
    engine.dispose()
