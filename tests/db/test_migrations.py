"""alembic upgrade head on an empty database installs everything; downgrade base removes it all."""
from helpers import alembic, db_url


def objects(conn):
    return {
        "schema": conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'pgbert'").fetchone()[0],
        "functions": conn.execute("SELECT count(*) FROM pg_proc WHERE proname IN ('embed', 'embed_batch', 'search')"
                                  " AND pronamespace = 'public'::regnamespace").fetchone()[0],
        "extensions": conn.execute("SELECT count(*) FROM pg_extension WHERE extname IN ('vector', 'plpython3u')"
                                   ).fetchone()[0],
    }


def test_upgrade_then_downgrade(empty_db, tiny_bundle):
    empty_db.autocommit = True
    name = empty_db.info.dbname
    assert objects(empty_db) == {"schema": 0, "functions": 0, "extensions": 0}

    alembic(db_url(name), "upgrade", "head", bundle=tiny_bundle)
    installed = objects(empty_db)
    assert installed["schema"] == 1 and installed["extensions"] == 2 and installed["functions"] >= 2
    assert empty_db.execute("SELECT vector_dims(embed('after install'))").fetchone() == (32,)
    assert empty_db.execute("SELECT bundle_path, dimension FROM pgbert.active_model").fetchone() == (tiny_bundle, 32)

    # Re-running upgrade is harmless (objects are re-applied idempotently).
    alembic(db_url(name), "upgrade", "head", bundle=tiny_bundle)

    alembic(db_url(name), "downgrade", "base")
    assert objects(empty_db) == {"schema": 0, "functions": 0, "extensions": 0}

    alembic(db_url(name), "upgrade", "head", bundle=tiny_bundle)
    assert objects(empty_db)["schema"] == 1
