"""PostgreSQL for tests: the DSN from $CRYPTOSCALP_PG_DSN or CI's default; a test that
needs it skips with the reason when none answers, except under CI=true, where it fails."""
from __future__ import annotations

import os

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def pg_dsn() -> str:
    import pytest
    dsn = os.environ.get("CRYPTOSCALP_PG_DSN", DEFAULT_DSN)
    try:
        import psycopg
        with psycopg.connect(dsn, connect_timeout=3) as c:
            c.execute("select 1")
    except Exception as e:
        msg = f"PostgreSQL not reachable at {dsn}: {type(e).__name__}: {e}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " (CI=true: PostgreSQL must be there)")
        pytest.skip(msg)
    return dsn


JOURNAL_TABLES = ("cs_orders", "cs_execs", "cs_rejects", "cs_events", "cs_market", "cs_journal_progress")


def drop_journal_rows(dsn: str, name: str) -> None:
    """Remove a test journal's rows (tests share CI's database)."""
    import psycopg
    with psycopg.connect(dsn, autocommit=True) as c:
        for t in JOURNAL_TABLES:
            c.execute(f"DELETE FROM {t} WHERE journal = %s", (name,))
