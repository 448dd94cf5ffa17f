"""Least privilege on PostgreSQL: the flows' role can append, never rewrite.

The schema belongs to an owner role used only by `changeflow migrate`; the flows run as a
role that may read and append. Whatever that role's credentials can do, someone holding
them can do: so each rewrite below must be refused by the database itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
import sqlalchemy as sa

from config.loader import load_config
from config.settings import PROJECT_ROOT, Settings
from integrations.changelog_sql import SchemaMissing, SqlChangeLog
from integrations.factory import migrate_change_log
from tests.support.history import submission
from tests.support.keys import TEST_KEY_TEXT, TEST_KEYS
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.postgres
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
CONFIG = load_config(PROJECT_ROOT / "config")


def _admin(server: PostgresServer, database: str, *statements: str) -> None:
    with psycopg.connect(f"host=127.0.0.1 port={server.port} user=postgres dbname={database}",
                         autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.fixture
def roles(postgres: PostgresServer) -> Iterator[tuple[str, str]]:
    """A database owned by an owner role, and a flows' role: (owner URL, flows' URL)."""
    tag = uuid.uuid4().hex[:8]
    owner, app = f"cf_owner_{tag}", f"cf_app_{tag}"
    url = postgres.create_database()
    database = sa.make_url(url).database
    _admin(postgres, "postgres", f"CREATE ROLE {owner} LOGIN", f"CREATE ROLE {app} LOGIN",
           f"ALTER DATABASE {database} OWNER TO {owner}")
    _admin(postgres, str(database), f"ALTER SCHEMA public OWNER TO {owner}")
    yield (url.replace("postgres@", f"{owner}@"), url.replace("postgres@", f"{app}@"))


def _settings(owner_url: str, app_url: str) -> Settings:
    return Settings(database_url=app_url, migrate_database_url=owner_url,
                    chain_key=TEST_KEY_TEXT)  # type: ignore[arg-type]


def test_the_flows_role_cannot_create_the_schema(roles: tuple[str, str]) -> None:
    with pytest.raises(SchemaMissing, match="run `changeflow migrate`"):
        SqlChangeLog(roles[1], keys=TEST_KEYS)


@pytest.mark.parametrize("statement", [
    "UPDATE change_events SET actor = 'mallory'",
    "DELETE FROM change_events",
    "TRUNCATE change_events",
    "DROP TABLE change_events",
    "ALTER TABLE change_events DISABLE TRIGGER change_events_guard",
    "DROP TRIGGER change_events_guard ON change_events",
    "DELETE FROM chain_head",
    "DELETE FROM chain_checkpoints",
    "CREATE OR REPLACE FUNCTION change_events_guard() RETURNS trigger AS "
    "$$ BEGIN RETURN NEW; END $$ LANGUAGE plpgsql",
])
def test_the_flows_role_appends_but_cannot_rewrite(roles: tuple[str, str],
                                                   statement: str) -> None:
    owner_url, app_url = roles
    assert migrate_change_log(_settings(owner_url, app_url), CONFIG) == \
        sa.make_url(app_url).username
    log = SqlChangeLog(app_url, keys=TEST_KEYS)
    log.append("CHG-1", "change_submitted", "alice", submission("CHG-1"), NOW)
    log.append("CHG-1", "note", "alice", {"text": "n"}, NOW)
    with pytest.raises(sa.exc.ProgrammingError) as refused, log.engine.begin() as conn:
        conn.exec_driver_sql(statement)
    assert isinstance(refused.value.orig, psycopg.errors.InsufficientPrivilege)
    assert log.verify().ok and log.count() == 2
    log.close()


def test_migrate_is_idempotent_and_the_log_works_as_the_flows_role(
        roles: tuple[str, str]) -> None:
    owner_url, app_url = roles
    settings = _settings(owner_url, app_url)
    migrate_change_log(settings, CONFIG)
    migrate_change_log(settings, CONFIG)
    log = SqlChangeLog(app_url, keys=TEST_KEYS)
    log.append("CHG-1", "change_submitted", "alice", submission("CHG-1"), NOW)
    assert [r.change_id for r in log.changes()] == ["CHG-1"]
    with log.change_lock("CHG-1"):
        assert log.check_change("CHG-1") == []
    assert log.verify(fold_changes=True).ok
    log.close()
