"""The URLs `collector db url` prints, the psql `db shell` picks and the password verifier, without a
database (tests/integration/test_connect.py and test_analyst_role.py use them against real servers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.cli.access import choose_psql
from collector.errors import ConfigError
from collector.store.access import EmbeddedServer, client_url, embedded_url, jdbc_url, tcp_url
from collector.store.roles import scram_sha_256


def test_a_server_url_becomes_a_libpq_url_with_its_password_masked_unless_asked():
    url = "postgresql+psycopg://jex:p%40ss@db.example:5433/jex?sslmode=require"
    assert client_url(url) == "postgresql://jex:***@db.example:5433/jex?sslmode=require"
    assert client_url(url, show_password=True) == "postgresql://jex:p%40ss@db.example:5433/jex?sslmode=require"
    assert client_url(url, without_password=True) == "postgresql://jex@db.example:5433/jex?sslmode=require"
    assert client_url(url, user="reader") == "postgresql://reader@db.example:5433/jex?sslmode=require"
    # an empty password (the embedded test server's URLs) is no password
    assert (
        client_url("postgresql+psycopg://postgres:@/db1?host=/tmp/x/pg") == "postgresql://postgres@/db1?host=/tmp/x/pg"
    )


def test_the_embedded_url_names_the_socket_directory_readably_and_escapes_what_must_be():
    server = EmbeddedServer(Path("/home/a b/data/pg"), Path("/home/a b/data/pg"), 5432, None)
    assert embedded_url(server) == "postgresql://postgres@/postgres?host=/home/a%20b/data/pg"
    other = EmbeddedServer(Path("/d/pg"), Path("/run/user/1/x"), 5433, 42)
    assert embedded_url(other, user="reader") == "postgresql://reader@/postgres?host=/run/user/1/x&port=5433"
    assert tcp_url(5433) == "postgresql://postgres@127.0.0.1:5433/postgres"


def test_jdbc_needs_tcp():
    assert jdbc_url("postgresql://jex:pw@db:5433/jex?sslmode=require") == (
        "jdbc:postgresql://db:5433/jex?sslmode=require&user=jex"
    )
    assert (
        jdbc_url("postgresql://jex:pw@db/jex", show_password=True)
        == "jdbc:postgresql://db:5432/jex?user=jex&password=pw"
    )
    for socket in ("postgresql://postgres@/postgres?host=/tmp/pg", "postgresql://u@/d"):
        with pytest.raises(ConfigError, match="need TCP"):
            jdbc_url(socket)


def test_psql_not_older_than_the_server_in_order_of_preference_else_the_newest():
    bundled, debian = (Path("/b/psql"), 18), (Path("/usr/bin/psql"), 15)
    assert choose_psql([bundled, debian], 18) == bundled
    assert choose_psql([debian, bundled], 18) == bundled  # Debian's 15 fails on \l against 18
    assert choose_psql([debian, bundled], 15) == debian  # the preferred one, when it is new enough
    assert choose_psql([debian], 18) == debian  # older is better than none (with a warning)
    assert choose_psql([], 18) is None


def test_the_verifier_has_postgresqls_format_and_refuses_what_it_cannot_hash():
    verifier = scram_sha_256("secret", salt=b"0123456789abcdef")
    method, rest = verifier.split("$", 1)
    assert method == "SCRAM-SHA-256" and rest.startswith("4096:MDEyMzQ1Njc4OWFiY2RlZg==$")
    assert scram_sha_256("secret") != scram_sha_256("secret")  # a fresh salt each time
    for bad in ("", "pässword", "new\nline"):
        with pytest.raises(ConfigError):
            scram_sha_256(bad)
