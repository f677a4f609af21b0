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


def assert_pg_holds_journal(dsn: str, name: str, entries) -> None:
    """After a run with the journal process (``run --pg``): PostgreSQL holds every journal
    record once, up to the journal process's own stop event (the last record, which its
    next start copies), orders in journal order."""
    import psycopg

    from engine.journal.journal import RK_EVENT, RK_EXEC, RK_ORDER, RK_REJECT
    es = list(entries)
    with psycopg.connect(dsn, autocommit=True) as c:
        last = c.execute("SELECT last_seq FROM cs_journal_progress WHERE journal = %s", (name,)).fetchone()[0]
        assert last == es[-1].seq - 1, (last, es[-1].seq)
        assert es[-1].kind == RK_EVENT and es[-1].record()["event"] == "process_stopped" \
            and es[-1].record()["process"] == "journal", es[-1].record()
        for table, kind in (("cs_orders", RK_ORDER), ("cs_execs", RK_EXEC), ("cs_rejects", RK_REJECT),
                            ("cs_events", RK_EVENT)):
            n = c.execute(f"SELECT count(*) FROM {table} WHERE journal = %s", (name,)).fetchone()[0]
            assert n == sum(1 for e in es[:-1] if e.kind == kind), table
        seqs = [r[0] for r in c.execute("SELECT journal_seq FROM cs_orders WHERE journal = %s ORDER BY journal_seq",
                                        (name,))]
        assert seqs == [e.seq for e in es if e.kind == RK_ORDER]
