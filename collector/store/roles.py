"""The optional read-only role for analysts (``collector db analyst-role``): it may log in, connect
to the collector's database and SELECT every table and view of ``public``, now and later; nothing
else. Its password goes to the server as a SCRAM-SHA-256 verifier, never as text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass

import psycopg
from sqlalchemy import Engine, text

from collector.errors import ConfigError, DatabaseError
from collector.store.db import transaction

ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class ReadOnlyRole:
    name: str
    database: str
    created: bool  # False: it existed, and was brought to read-only
    password_set: bool


def check_role_name(name: str) -> None:
    """ConfigError unless ``name`` is a plain lowercase identifier (no quoting needed, none possible)."""
    if not ROLE_NAME.fullmatch(name):
        raise ConfigError(
            f"role name {name!r}: use lowercase letters, digits and _ (starting with a letter or _), at most 63"
        )


def grant_read_only(engine: Engine, name: str, *, password: str | None = None) -> ReadOnlyRole:
    """Create (or bring up to date) role ``name``: it may log in, connect to this database and read
    every table and view of ``public`` (SELECT, nothing else; sessions read-only by default), now and
    for the tables made later by their owners (default privileges). Idempotent. ``password`` sets
    its password (sent as a SCRAM-SHA-256 verifier, never as text); None leaves it as it was.

    An existing role that may do more (a superuser, one that may create roles or databases, the
    current user, or one owning tables here) is refused rather than demoted."""
    check_role_name(name)
    verifier = None if password is None else scram_sha_256(password)
    try:
        with transaction(engine) as conn:
            found = conn.execute(
                text(
                    "SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls, "
                    "rolname = current_user, "
                    "EXISTS (SELECT 1 FROM pg_class c WHERE c.relowner = r.oid) "
                    "FROM pg_roles r WHERE rolname = :name"
                ),
                {"name": name},
            ).first()
            if found is not None and any(found):
                why = (
                    "is the user this command connects as"
                    if found[1]
                    else "owns tables here"
                    if found[2]
                    else "may do more than read"
                )
                raise ConfigError(f"role {name} exists and {why}: the read-only role must be a role of its own")
            role = f'"{name}"'  # the name is checked above: quoting cannot be escaped
            conn.execute(text(f"{'CREATE' if found is None else 'ALTER'} ROLE {role} LOGIN"))
            if verifier is not None:
                # text() would read ':name' as a parameter: the verifier's colons are escaped
                conn.execute(text(f"ALTER ROLE {role} PASSWORD '{verifier}'".replace(":", "\\:")))
            conn.execute(text(f"ALTER ROLE {role} SET default_transaction_read_only = on"))
            database = conn.execute(text("SELECT current_database()")).scalar_one()
            conn.execute(text(f"GRANT CONNECT ON DATABASE {_ident(database)} TO {role}"))
            conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
            conn.execute(text(f"REVOKE CREATE ON SCHEMA public FROM {role}"))
            conn.execute(text(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}"))
            conn.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"))  # views too
            owners = (
                conn.execute(
                    text(
                        "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
                        "UNION SELECT current_user"
                    )
                )
                .scalars()
                .all()
            )
            for owner in sorted(owners):  # tables made later by whoever owns these (migrations, partitions)
                conn.execute(
                    text(
                        f"ALTER DEFAULT PRIVILEGES FOR ROLE {_ident(owner)} IN SCHEMA public "
                        f"GRANT SELECT ON TABLES TO {role}"
                    )
                )
    except DatabaseError as exc:
        if isinstance(exc.__cause__, psycopg.errors.InsufficientPrivilege) or isinstance(
            getattr(exc.__cause__, "orig", None), psycopg.errors.InsufficientPrivilege
        ):
            raise ConfigError(
                f"{exc}: run it as a user that may create roles and owns the tables (or a superuser), "
                "e.g. with --database-url"
            ) from None
        raise
    return ReadOnlyRole(name, database, created=found is None, password_set=verifier is not None)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def scram_sha_256(password: str, *, salt: bytes | None = None, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802/7677, as psql's
    ``\\password`` computes it): the server never sees the password itself, nor do its logs.

    Only ASCII passwords: PostgreSQL normalises others (SASLprep) before hashing, which this does not."""
    if not password:
        raise ConfigError("the password is empty")
    if not password.isascii() or not password.isprintable():
        raise ConfigError(
            "the password must be printable ASCII (e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
        )
    salt = os.urandom(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"
