"""`collector db analyst-role NAME`: a role that reads every table and view, now and later, and
writes nothing; idempotent; its password sent as a SCRAM verifier PostgreSQL itself would compute.

Roles belong to the whole server: each test's role has a name of its own and is dropped after it."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from collector.store.db import make_engine
from collector.store.roles import scram_sha_256

PASSWORD = "Analyst-Pa55word"


def collector(args: list[str], cwd, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("COLLECTOR_")}
    return subprocess.run(
        [sys.executable, "-m", "collector", *args],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def role(db_url: str) -> Iterator[str]:
    name = f"analyst_{uuid.uuid4().hex[:10]}"
    yield name
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            if conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": name}).first():
                conn.execute(text(f"DROP OWNED BY {name}"))  # its privileges here, and its defaults
                conn.execute(text(f"DROP ROLE {name}"))
    finally:
        engine.dispose()


def as_role(db_url: str, name: str, password: str | None = PASSWORD) -> psycopg.Connection:
    url = make_url(db_url)
    return psycopg.connect(
        host=url.query.get("host") or url.host,
        port=url.port or 5432,
        dbname=url.database,
        user=name,
        password=password,
        autocommit=True,
    )


def grant(db_url: str, name: str, cwd, *extra: str, **env: str) -> subprocess.CompletedProcess:
    done = collector(["db", "analyst-role", name, *extra], cwd, COLLECTOR_DATABASE_URL=db_url, **env)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return done


def test_the_role_reads_every_table_and_view_and_writes_nothing(db_url, engine, role, tmp_path):
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO option_symbols (symbol, option_type) VALUES ('BTC0925CALL', 'CALL')"))
    done = grant(db_url, role, tmp_path, "--password-env", "JEX_ANALYST_PW", JEX_ANALYST_PW=PASSWORD)
    assert done.stdout.splitlines()[0].startswith(f"role {role} created: reads every table and view")
    assert make_url(done.stdout.splitlines()[1]).username == role
    with as_role(db_url, role) as conn:
        assert conn.execute("SELECT symbol FROM option_symbols").fetchall() == [("BTC0925CALL",)]
        for relation in ("klines", "trades", "tickers_24hr", "option_chain", "trades_enriched", "position_marks"):
            conn.execute(f"SELECT * FROM {relation} LIMIT 1")
        conn.execute("SELECT * FROM option_chain_at(now())")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):  # its sessions are read-only ...
            conn.execute("INSERT INTO option_symbols (symbol) VALUES ('X')")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE TABLE mine (x int)")
        conn.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # ... and even then it may not write
            conn.execute("INSERT INTO option_symbols (symbol) VALUES ('X')")
        for statement in ("UPDATE option_symbols SET status = 'x'", "DELETE FROM klines", "TRUNCATE trades"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM option_symbols")).scalar() == 1


def test_tables_made_later_are_readable_too(db_url, engine, role, tmp_path):
    grant(db_url, role, tmp_path, "--password-env", "JEX_ANALYST_PW", JEX_ANALYST_PW=PASSWORD)
    with engine.begin() as conn:  # as a later migration would, as the tables' owner
        conn.execute(text("CREATE TABLE made_later (x int)"))
        conn.execute(text("INSERT INTO made_later VALUES (7)"))
    with as_role(db_url, role) as conn:
        assert conn.execute("SELECT x FROM made_later").fetchall() == [(7,)]


def test_running_it_again_changes_nothing_and_keeps_the_password(db_url, role, tmp_path):
    grant(db_url, role, tmp_path, "--password-env", "JEX_ANALYST_PW", JEX_ANALYST_PW=PASSWORD)
    again = grant(db_url, role, tmp_path)
    assert f"role {role} updated" in again.stdout and "an existing one is kept" in again.stdout
    with as_role(db_url, role) as conn:
        assert conn.execute("SELECT count(*) FROM option_symbols").fetchone() == (0,)
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)


def test_a_role_that_may_do_more_is_refused(db_url, engine, role, tmp_path):
    with engine.begin() as conn:
        current = conn.execute(text("SELECT current_user")).scalar_one()
        conn.execute(text(f"CREATE ROLE {role} CREATEDB"))
    for name, said in ((current, "is the user this command connects as"), (role, "may do more than read")):
        done = collector(["db", "analyst-role", name], tmp_path, COLLECTOR_DATABASE_URL=db_url)
        errors = [line for line in done.stderr.splitlines() if line.startswith("collector: error:")]
        assert done.returncode == 2 and len(errors) == 1 and said in errors[0], done.stderr
    with engine.connect() as conn:
        assert conn.execute(text("SELECT rolcreatedb FROM pg_roles WHERE rolname = :n"), {"n": role}).scalar()


def test_the_verifier_is_the_one_postgresql_computes(engine, role):
    """PostgreSQL hashes a password itself; given its salt and iterations, ours is the same string."""
    with engine.begin() as conn:
        if not conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar():
            pytest.skip("reading pg_authid takes a superuser")
        conn.execute(text("SET LOCAL password_encryption = 'scram-sha-256'"))
        conn.execute(text(f"CREATE ROLE {role} PASSWORD '{PASSWORD}'"))
        stored = conn.execute(text("SELECT rolpassword FROM pg_authid WHERE rolname = :n"), {"n": role}).scalar_one()
    iterations, salt = stored.split("$")[1].split(":")
    assert scram_sha_256(PASSWORD, salt=base64.b64decode(salt), iterations=int(iterations)) == stored
